import { readHfToken, resolveHfEndpoint } from '../core/env.js';
import { systemClock } from '../transfer/options.js';
import { fetchRevisionCommit, hfAuthHeaders, hfResolveUrl, hfSwarmTorrentUrl, hfXetTokenUrl, listRepoFiles } from './hf.js';
import { RateLimitPacer } from './rate-limit.js';
import type { Remote, RemoteOptions } from './remote.js';

/** The Hugging Face Hub (or a mirror speaking its API) as a `Remote`: one rate-limit pacer for the pull's API calls. */
export async function hubRemote(options: RemoteOptions): Promise<Remote> {
  const endpoint = resolveHfEndpoint(options.endpoint, options.env);
  const token = options.token === null ? undefined : await readHfToken(options.token, options.env);
  const pacer = new RateLimitPacer(options.clock ?? systemClock);
  const onRateLimitWait = (ms: number, bucket: string): void => options.onWarning?.(`the hub's "${bucket}" rate limit is spent; waiting ${Math.ceil(ms / 1000)} s for its window to reset`);
  const client = { endpoint, pacer, onRateLimitWait, ...(options.clock && { clock: options.clock }), ...(options.onRetry && { onRetry: options.onRetry }), ...(token && { token }), ...(options.dispatcher && { dispatcher: options.dispatcher }), ...(options.signal && { signal: options.signal }), ...(options.apiTimeoutMs !== undefined && { requestTimeoutMs: options.apiTimeoutMs }) };
  const repo = { repoType: options.repoType, repoId: options.repoId };
  const listed = new Set<string>(); // commits whose listing came from the hub this run
  return {
    fetchCommit: (revision) => fetchRevisionCommit(repo, revision, client),
    listFiles: async (commit) => {
      const files = await listRepoFiles(repo, commit, client, options.maxFiles);
      listed.add(commit);
      return files;
    },
    job: (commit, file) => ({
      urls: [hfResolveUrl(endpoint, repo, commit, file.path)],
      identity: `hf:${repo.repoType}:${repo.repoId}:${file.digest.algorithm}:${file.digest.hex}`,
      headers: hfAuthHeaders(token),
      // In Xet when the hub's listing says so; with a listing from elsewhere, the resolve answer tells (LFS files only).
      ...(file.xetHash ? { xet: { fileHash: file.xetHash, tokenUrl: hfXetTokenUrl(endpoint, repo, commit) } } : file.digest.algorithm === 'sha256' && !listed.has(commit) && { xet: {} }),
    }),
    swarmTorrent: (commit, file) => ({ url: hfSwarmTorrentUrl(endpoint, repo, commit, file.path), headers: hfAuthHeaders(token) }),
  };
}
