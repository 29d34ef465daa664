import { modelScopeAuthHeaders, modelScopeFileUrl, readModelScopeToken, resolveModelScopeEndpoint, resolveModelScopeSnapshot } from './modelscope.js';
import type { Remote, RemoteOptions } from './remote.js';
import type { Snapshot } from '../core/types.js';

/** ModelScope as a `Remote`: one listing gives both the commit and the files; downloads are pinned to that commit. */
export function modelScopeRemote(options: RemoteOptions): Remote {
  const { repoId } = options;
  const endpoint = resolveModelScopeEndpoint(options.endpoint, options.env);
  const token = options.token === null ? undefined : readModelScopeToken(options.token, options.env);
  const client = { endpoint, ...(options.clock && { clock: options.clock }), ...(options.onRetry && { onRetry: options.onRetry }), ...(options.onRateLimitWait && { onRateLimitWait: options.onRateLimitWait }), ...(token && { token }), ...(options.dispatcher && { dispatcher: options.dispatcher }), ...(options.signal && { signal: options.signal }) };
  const listed = new Map<string, Snapshot>();
  const list = async (revision: string): Promise<Snapshot> => {
    const snapshot = listed.get(revision) ?? (await resolveModelScopeSnapshot(repoId, revision, client));
    listed.set(revision, snapshot).set(snapshot.commit, snapshot);
    return snapshot;
  };
  return {
    fetchCommit: async (revision) => (await list(revision)).commit,
    listFiles: async (commit) => (await list(commit)).files.map(({ path, size, digest, revision }) => ({ path, size, digest, ...(revision && { revision }) })),
    job: (commit, file) => ({
      urls: listed.get(commit)?.files.find((f) => f.path === file.path)?.urls ?? [modelScopeFileUrl(endpoint, repoId, commit, file.path)],
      identity: `ms:${repoId}:${file.digest.hex}`,
      headers: modelScopeAuthHeaders(token),
    }),
  };
}
