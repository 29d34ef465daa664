import type { Dispatcher } from 'undici';
import { describeConnectFailure, dispatcherForDefaults } from '../transfer/proxy.js';
import { headerValue, sendPaced } from '../transfer/http.js';
import { systemClock } from '../transfer/options.js';
import { rateLimitsFor } from '../transfer/rate-limit.js';
import { getJson as getApiJson, warmJsonClient, type AnswerHead, type JsonApi, type JsonClientOptions, type JsonResponse } from './json-client.js';
import { assertRepoId } from '../core/repo-ref.js';
import { assertCommit, assertDigest, assertSafeRelativePath, assertSafeRevision, isSha1Hex } from '../core/validate.js';
import { DEFAULT_MAX_FILES, tooManyFiles } from './listing-limit.js';
import { ModelfetchError } from '../core/errors.js';
import { redactUrl } from '../core/redact.js';
import type { FileDigest, RepoFile, RepoType, Snapshot } from '../core/types.js';

/**
 * The Hugging Face Hub HTTP API, the way huggingface_hub uses it:
 *   GET {endpoint}/api/{models|datasets|spaces}/{repo}/revision/{rev}          -> commit sha
 *   GET {endpoint}/api/{…}/{repo}/tree/{commit}?recursive=true&expand=true     -> files (Link: rel="next" pages)
 *   GET {endpoint}/{datasets/|spaces/}{repo}/resolve/{commit}/{path}            -> bytes (may 302 to a CDN)
 * Everything a response says is validated before it can name a file on disk.
 * undici is imported lazily so a cache hit never loads it.
 */


export interface HfRepo {
  repoType: RepoType;
  repoId: string;
}

export interface HfClientOptions extends JsonClientOptions {
  token?: string;
}

/** The request headers that carry the token; the engine sends them only to the endpoint's origin. */
export function hfAuthHeaders(token: string | undefined): Record<string, string> {
  return token ? { authorization: `Bearer ${token}` } : {};
}

function apiBase(endpoint: string, repo: HfRepo): string {
  return `${endpoint}/api/${repo.repoType}s/${assertRepoId(repo.repoId)}`;
}

function encodePath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/');
}

/** Where the Hub hands out Xet read tokens for a commit (called with the Hub token, same origin as the endpoint). */
export function hfXetTokenUrl(endpoint: string, repo: HfRepo, commit: string): string {
  return `${apiBase(endpoint, repo)}/xet-read-token/${assertCommit(commit, 'the Xet token URL')}`;
}

/** `{endpoint}/{datasets/|spaces/}{repo}/resolve/{rev}/{path}`; the revision is one URL segment, as huggingface_hub quotes it. */
export function hfResolveUrl(endpoint: string, repo: HfRepo, revision: string, path: string): string {
  const prefix = repo.repoType === 'model' ? '' : `${repo.repoType}s/`;
  return `${endpoint}/${prefix}${assertRepoId(repo.repoId)}/resolve/${encodeURIComponent(revision)}/${encodePath(path)}`;
}

/** A modelfetch mirror's torrent of one file (`serve --swarm`): `{endpoint}/api/swarm/{type}s/{repo}/{commit}/{path}.torrent`. */
export function hfSwarmTorrentUrl(endpoint: string, repo: HfRepo, commit: string, path: string): string {
  return `${endpoint}/api/swarm/${repo.repoType}s/${assertRepoId(repo.repoId)}/${assertCommit(commit, 'the torrent URL')}/${encodePath(path)}.torrent`;
}

/** The page a user opens to accept a gated repo's terms. */
export function hfRepoPage(endpoint: string, repo: HfRepo): string {
  const prefix = repo.repoType === 'model' ? '' : `${repo.repoType}s/`;
  return `${endpoint}/${prefix}${repo.repoId}`;
}

interface ErrorContext extends HfRepo {
  endpoint: string;
  revision?: string;
  path?: string;
  hadToken: boolean;
}

/** Maps a Hub error answer (X-Error-Code first, then the status) to a ModelfetchError with a hint. */
export function hubError({ status, headers, url, retryAfterMs }: AnswerHead, context: ErrorContext): ModelfetchError {
  const code = headerValue(headers, 'x-error-code');
  const serverMessage = headerValue(headers, 'x-error-message');
  const what = `${context.repoType} ${context.repoId}`;
  const page = hfRepoPage(context.endpoint, context);
  const detail = serverMessage ? ` (${serverMessage.slice(0, 200)})` : '';
  const base = { url, status, ...(retryAfterMs !== undefined && { retryAfterMs }) };
  if (code === 'GatedRepo') {
    return new ModelfetchError('ERR_GATED', `The ${what} is gated: access requires accepting its terms${detail}`, {
      ...base,
      reason: 'gated',
      hint: context.hadToken
        ? `The token was refused. Accept the terms at ${page} with the account the token belongs to, then retry.`
        : `Set HF_TOKEN (or --token) and accept the terms at ${page}.`,
    });
  }
  if (code === 'RepoNotFound' || (status === 401 && !code && !context.hadToken)) {
    return new ModelfetchError('ERR_NOT_FOUND', `Repository ${context.repoId} (${context.repoType}) not found${detail}`, {
      ...base,
      reason: 'repo-not-found',
      hint: context.hadToken
        ? 'Check the repo name and --repo-type, and that the token can read it.'
        : 'Check the repo name and --repo-type; if the repo is private, set HF_TOKEN (or --token).',
    });
  }
  if (code === 'RevisionNotFound') {
    return new ModelfetchError('ERR_NOT_FOUND', `Revision ${JSON.stringify(context.revision ?? '')} of ${context.repoId} not found${detail}`, {
      ...base,
      reason: 'revision-not-found',
      hint: 'Check the branch, tag or commit after "@" (for example @main).',
    });
  }
  if (code === 'EntryNotFound') {
    return new ModelfetchError('ERR_NOT_FOUND', `File ${JSON.stringify(context.path ?? '')} not found in ${context.repoId}${detail}`, {
      ...base,
      reason: 'entry-not-found',
      hint: 'Check the file name and revision; list the repo files on its page.',
    });
  }
  if (status === 401 || status === 403) {
    return new ModelfetchError('ERR_AUTH', `The hub refused access to ${context.repoId} (HTTP ${status})${detail}`, {
      ...base,
      hint: context.hadToken ? 'Check that HF_TOKEN (or --token) is valid and has read access to this repo.' : `Set HF_TOKEN (or --token); if the repo is gated, accept the terms at ${page}.`,
    });
  }
  if (status === 404) {
    return new ModelfetchError('ERR_NOT_FOUND', `Not found: ${context.repoId}${context.path ? ` ${context.path}` : ''}${detail}`, {
      ...base,
      hint: 'Check the repo name, --repo-type and revision, and that the endpoint is a Hugging Face hub.',
    });
  }
  return new ModelfetchError('ERR_HTTP', `The hub answered HTTP ${status} for ${context.repoId}${detail}`, {
    ...base,
    hint: 'The hub may be overloaded or down; retry later, or point HF_ENDPOINT at a mirror.',
  });
}

/** The Hub's API as the shared JSON client speaks it: every status but 200 is an error, read from the headers alone. */
function hubApi(context: ErrorContext): JsonApi {
  return {
    serviceName: 'the hub',
    apiName: 'hub',
    endpointSetting: 'HF_ENDPOINT',
    unreachableHint: 'Check the network and HF_ENDPOINT; with everything already cached, use --offline.',
    noLocation: (url, status) => new ModelfetchError('ERR_BAD_RESPONSE', `Redirect without Location from ${redactUrl(url)}`, { url, status }),
    tooLarge: (url, limit, declared) =>
      declared === undefined
        ? new ModelfetchError('ERR_BAD_RESPONSE', `The hub sent more than ${limit} bytes of JSON from ${redactUrl(url)}`, { url })
        : new ModelfetchError('ERR_BAD_RESPONSE', `The hub sent a ${declared}-byte listing, more than modelfetch accepts`, { url }),
    headError: (answer) => (answer.status === 200 ? undefined : hubError(answer, context)),
    answerError: ({ url, body, parseError }) =>
      body === undefined
        ? new ModelfetchError('ERR_BAD_RESPONSE', `The hub sent invalid JSON from ${redactUrl(url)}`, { url, cause: parseError, hint: 'Check that HF_ENDPOINT points at a Hugging Face hub, not a web page or proxy login.' })
        : undefined,
  };
}

function getJson(url: string, options: HfClientOptions, context: ErrorContext): Promise<JsonResponse> {
  return getApiJson(hubApi(context), url, hfAuthHeaders(options.token), options);
}

/** Loads undici (~80 ms), which the gating and reachability checks use, ahead of their first call: for long-lived callers such as the mirror. */
export function warmHubClient(): void {
  warmJsonClient();
}

function asRecord(value: unknown, what: string, url: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ModelfetchError('ERR_BAD_RESPONSE', `Malformed ${what} from the hub`, { url, hint: 'Check that HF_ENDPOINT points at a Hugging Face hub.' });
  }
  return value as Record<string, unknown>;
}

/** The commit a revision points to now (`GET …/revision/{rev}` → `sha`). */
export async function fetchRevisionCommit(repo: HfRepo, revision: string, options: HfClientOptions): Promise<string> {
  const url = `${apiBase(options.endpoint, repo)}/revision/${encodeURIComponent(assertSafeRevision(revision))}`;
  const { body } = await getJson(url, options, { ...repo, endpoint: options.endpoint, revision, hadToken: !!options.token });
  const sha = asRecord(body, 'repo info', url).sha;
  if (typeof sha !== 'string') throw new ModelfetchError('ERR_BAD_RESPONSE', 'The hub repo info has no commit sha', { url });
  return assertCommit(sha, `${repo.repoId}@${revision}`);
}

/** The `Link: <…>; rel="next"` target, if any. */
export function nextPageUrl(link: string | undefined, base: string): string | undefined {
  if (!link) return undefined;
  for (const part of link.split(',')) {
    const match = /<([^>]*)>\s*;(.*)$/.exec(part.trim());
    if (match && /(^|;)\s*rel="?next"?\s*(;|$)/.test(match[2] ?? '')) return new URL(match[1] ?? '', base).toString();
  }
  return undefined;
}

function sizeOf(value: unknown, what: string, url: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new ModelfetchError('ERR_BAD_RESPONSE', `The hub listed an invalid size ${JSON.stringify(value)} for ${what}`, { url, hint: 'Nothing was written. Check that HF_ENDPOINT points at a Hugging Face hub.' });
  }
  return value;
}

/** A file as the tree listing describes it: `blobId` is the git blob (of the LFS pointer for LFS files). */
export type HfListedFile = RepoFile & { blobId: string };

/** One file from a tree entry, everything validated; undefined for folders. */
function treeFile(entry: unknown, url: string): HfListedFile | undefined {
  const record = asRecord(entry, 'tree entry', url);
  if (record.type !== 'file') {
    if (record.type === 'directory') return undefined;
    throw new ModelfetchError('ERR_BAD_RESPONSE', `Unknown tree entry type ${JSON.stringify(record.type)}`, { url });
  }
  if (typeof record.path !== 'string') throw new ModelfetchError('ERR_BAD_RESPONSE', 'Tree entry without a path', { url });
  const path = assertSafeRelativePath(record.path, 'the hub listing');
  const size = sizeOf(record.size, path, url);
  const blobId = assertDigest({ algorithm: 'git-sha1', hex: typeof record.oid === 'string' ? record.oid : '' }, `${path} in the hub listing`).hex;
  if (record.lfs !== undefined && record.lfs !== null) {
    const lfs = asRecord(record.lfs, `LFS info of ${path}`, url);
    const hex = typeof lfs.oid === 'string' ? lfs.oid.replace(/^sha256:/, '') : '';
    const digest = assertDigest({ algorithm: 'sha256', hex }, `${path} in the hub listing`);
    if (lfs.size !== undefined && sizeOf(lfs.size, path, url) !== size) {
      throw new ModelfetchError('ERR_BAD_RESPONSE', `The hub listed two sizes for ${path}`, { url, expected: size, found: String(lfs.size) });
    }
    const xetHash = typeof record.xetHash === 'string' && /^[0-9a-f]{64}$/.test(record.xetHash) ? record.xetHash : undefined;
    return { path, size, digest, blobId, ...(xetHash && { xetHash }) };
  }
  return { path, size, digest: { algorithm: 'git-sha1', hex: blobId }, blobId };
}

/**
 * Every file at `commit`, following `Link: rel="next"` pages within the endpoint's origin. Beyond
 * `maxFiles` files the listing is refused as soon as a page passes it, before the rest is fetched.
 */
export async function listRepoFiles(repo: HfRepo, commit: string, options: HfClientOptions, maxFiles: number = DEFAULT_MAX_FILES): Promise<HfListedFile[]> {
  assertCommit(commit, repo.repoId);
  const origin = new URL(options.endpoint).origin;
  const context = { ...repo, endpoint: options.endpoint, revision: commit, hadToken: !!options.token };
  const files = new Map<string, HfListedFile>();
  let url: string | undefined = `${apiBase(options.endpoint, repo)}/tree/${commit}?recursive=true&expand=true`;
  const seen = new Set<string>();
  while (url) {
    if (seen.has(url)) throw new ModelfetchError('ERR_BAD_RESPONSE', 'The hub tree listing pages loop', { url });
    seen.add(url);
    const page = await getJson(url, options, context);
    if (!Array.isArray(page.body)) throw new ModelfetchError('ERR_BAD_RESPONSE', 'The hub tree listing is not a list', { url });
    for (const entry of page.body) {
      const file = treeFile(entry, url);
      if (!file) continue;
      if (files.has(file.path)) throw new ModelfetchError('ERR_BAD_RESPONSE', `The hub listed ${file.path} twice`, { url });
      files.set(file.path, file);
      if (files.size > maxFiles) throw tooManyFiles(repo.repoId, maxFiles);
    }
    const next = nextPageUrl(headerValue(page.headers, 'link'), page.url);
    if (next && new URL(next).origin !== origin) {
      throw new ModelfetchError('ERR_REDIRECT', `The hub tree listing points its next page at another origin (${redactUrl(next)})`, { url: next, hint: 'Refused so the token stays with the endpoint; check HF_ENDPOINT.' });
    }
    url = next;
  }
  assertNoFileFolderClash([...files.keys()]);
  return [...files.values()];
}

/** A path cannot be both a file and a folder (`a` and `a/b`): on disk one would overwrite the other. */
function assertNoFileFolderClash(paths: string[]): void {
  const set = new Set(paths);
  for (const path of paths) {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      if (set.has(parent)) {
        throw new ModelfetchError('ERR_UNSAFE_PATH', `The hub listed ${parent} both as a file and as a folder`, { hint: 'Nothing was written. Check the endpoint you are pulling from.' });
      }
    }
  }
}

export interface ResolveHfOptions extends HfClientOptions {
  /** A commit already known (e.g. the revision is a commit hash): skips the revision call. */
  commit?: string;
}

/**
 * Resolves `repo@revision` to a Snapshot pinned to one commit: every URL resolves by commit, not by
 * branch, so all files come from the same commit even if the branch moves during the download.
 */
export async function resolveHfSnapshot(repo: HfRepo, revision: string, options: ResolveHfOptions): Promise<Snapshot> {
  const commit = options.commit ?? (isSha1Hex(revision) ? revision : await fetchRevisionCommit(repo, revision, options));
  const files = await listRepoFiles(repo, commit, options);
  return snapshotFromListing(repo, revision, commit, files, options.endpoint);
}

/** Builds the Snapshot for a listing (fresh from the hub, or a cached tree listing). */
export function snapshotFromListing(repo: HfRepo, revision: string, commit: string, files: Array<{ path: string; size: number; digest: FileDigest }>, endpoint: string): Snapshot {
  const remote: Snapshot['files'] = files.map((file) => ({
    path: file.path,
    size: file.size,
    digest: file.digest,
    urls: [hfResolveUrl(endpoint, repo, commit, file.path)],
  }));
  return { source: 'hf', repoType: repo.repoType, repoId: repo.repoId, revision, commit: assertCommit(commit, repo.repoId), files: remote };
}

/**
 * What an anonymous client may see of a repo, asked WITHOUT a token: `public` (readable by anyone),
 * `gated` (the hub says so, or refuses with GatedRepo) or `hidden` (private, or missing: the hub
 * does not tell them apart, and neither may the mirror). A missing revision of a visible repo
 * rejects with the hub's not-found error. Used by the mirror before it uses its own token.
 */
export type RepoVisibility = 'public' | 'gated' | 'hidden';

export async function fetchRepoVisibility(repo: HfRepo, revision: string, options: HfClientOptions): Promise<RepoVisibility> {
  const { endpoint, dispatcher, signal, clock, random } = options;
  const anonymous: HfClientOptions = { endpoint, ...(dispatcher && { dispatcher }), ...(signal && { signal }), ...(clock && { clock }), ...(random && { random }) };
  const url = `${apiBase(options.endpoint, repo)}/revision/${encodeURIComponent(assertSafeRevision(revision))}`;
  try {
    const { body } = await getJson(url, anonymous, { ...repo, endpoint: options.endpoint, revision, hadToken: false });
    const info = asRecord(body, 'repo info', url);
    if (info.private === true) return 'hidden';
    return info.gated !== undefined && info.gated !== false && info.gated !== null ? 'gated' : 'public';
  } catch (error) {
    if (error instanceof ModelfetchError && error.code === 'ERR_GATED') return 'gated';
    if (error instanceof ModelfetchError && (error.code === 'ERR_AUTH' || (error.code === 'ERR_NOT_FOUND' && error.reason !== 'revision-not-found'))) return 'hidden';
    throw error;
  }
}

/**
 * Whether `token` may download `path` at `revision`: a HEAD of the resolve URL that follows no
 * redirect (a redirect to the CDN means yes). A missing file still means the token can read the repo.
 */
export async function probeFileAccess(repo: HfRepo, revision: string, path: string, options: HfClientOptions): Promise<boolean> {
  const { request } = await import('undici');
  const url = hfResolveUrl(options.endpoint, repo, revision, path);
  const dispatcher = options.dispatcher ?? (await dispatcherForDefaults());
  // A resolve request: it counts against the Hub's "resolvers" bucket as downloads do.
  const pacing = { limits: rateLimitsFor(options.clock ?? systemClock), onWait: options.onRateLimitWait };
  const send = (): Promise<Dispatcher.ResponseData> =>
    request(url, {
      method: 'HEAD',
      headers: { 'user-agent': 'modelfetch', ...hfAuthHeaders(options.token) },
      ...(dispatcher && { dispatcher }),
      ...(options.signal && { signal: options.signal }),
    });
  const response = await sendPaced(pacing, new URL(url), 'resolve', options.signal, send, (cause) => describeConnectFailure(cause, url) ?? new ModelfetchError('ERR_NETWORK', `Could not reach the hub at ${redactUrl(options.endpoint)}: ${(cause as Error).message}`, { url, cause }));
  await response.body.dump();
  const { statusCode, headers } = response;
  if (statusCode < 400) return true;
  if (statusCode === 404 && headerValue(headers, 'x-error-code') === 'EntryNotFound') return true;
  if (statusCode === 401 || statusCode === 403 || statusCode === 404) return false;
  throw hubError({ status: statusCode, headers, url }, { ...repo, endpoint: options.endpoint, revision, path, hadToken: !!options.token });
}

/** Whether the hub answers HTTP at all within `timeoutMs` (any status counts): readiness of a mirror. */
export async function hubReachable(options: Pick<HfClientOptions, 'endpoint' | 'dispatcher'>, timeoutMs = 5_000): Promise<boolean> {
  const { request } = await import('undici');
  try {
    const dispatcher = options.dispatcher ?? (await dispatcherForDefaults());
    const response = await request(`${options.endpoint}/api/models?limit=1`, {
      method: 'HEAD',
      headersTimeout: timeoutMs,
      signal: AbortSignal.timeout(timeoutMs),
      ...(dispatcher && { dispatcher }),
    });
    await response.body.dump();
    return true;
  } catch {
    return false;
  }
}
