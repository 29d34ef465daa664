import type { Dispatcher } from 'undici';
import { describeConnectFailure, dispatcherForDefaults } from '../transfer/proxy.js';
import type { RateLimitPacer } from './rate-limit.js';
import { assertRepoId } from '../core/repo-ref.js';
import { assertCommit, assertDigest, assertSafeRelativePath, assertSafeRevision, isSha1Hex } from '../core/validate.js';
import { DEFAULT_MAX_FILES, tooManyFiles } from './listing-limit.js';
import { ModelfetchError } from '../core/errors.js';
import { redactUrl } from '../core/redact.js';
import { UNREACHABLE_MAX_ATTEMPTS } from '../transfer/retry-policy.js';
import type { FileDigest, RemoteFile, RepoType, Snapshot } from '../core/types.js';

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

export interface HfClientOptions {
  /** Normalised endpoint origin (+ optional path prefix), no trailing slash. */
  endpoint: string;
  token?: string;
  dispatcher?: Dispatcher;
  signal?: AbortSignal;
  /** Paces API requests by the Hub's RateLimit headers (one per pull, shared by its requests). */
  pacer?: RateLimitPacer;
  /** Told when the pacer holds a request until its bucket's window resets. */
  onRateLimitWait?: (ms: number, bucket: string) => void;
  /** How long one API request may take (HF_HUB_ETAG_TIMEOUT); none by default. */
  requestTimeoutMs?: number;
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

type HeaderValue = string | string[] | undefined;

function header(headers: Record<string, HeaderValue>, name: string): string | undefined {
  const value = headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

/** Maps a Hub error answer (X-Error-Code first, then the status) to a ModelfetchError with a hint. */
export function hubError(status: number, headers: Record<string, HeaderValue>, url: string, context: ErrorContext): ModelfetchError {
  const code = header(headers, 'x-error-code');
  const serverMessage = header(headers, 'x-error-message');
  const what = `${context.repoType} ${context.repoId}`;
  const page = hfRepoPage(context.endpoint, context);
  const detail = serverMessage ? ` (${serverMessage.slice(0, 200)})` : '';
  const base = { url, status };
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

const MAX_REDIRECTS = 5;
/** The same budget as a download's first contact with a host, so get and pull give up on a dead address alike. */
const MAX_API_ATTEMPTS = UNREACHABLE_MAX_ATTEMPTS;
const MAX_JSON_BYTES = 64 * 1024 * 1024;

interface JsonResponse {
  body: unknown;
  url: string;
  headers: Record<string, HeaderValue>;
}

function isRetryable(status: number): boolean {
  return status === 429 || status >= 500;
}

/**
 * GETs JSON from the hub; retries 429/5xx and network errors a few times, nothing else.
 */
async function getJson(url: string, options: HfClientOptions, context: ErrorContext): Promise<JsonResponse> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await getJsonOnce(url, options, context);
    } catch (error) {
      const retryable = error instanceof ModelfetchError && (error.code === 'ERR_NETWORK' || (error.code === 'ERR_HTTP' && isRetryable(error.status ?? 0)));
      if (!retryable || attempt >= MAX_API_ATTEMPTS || options.signal?.aborted) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250 * 2 ** (attempt - 1)));
    }
  }
}

/** Loads undici (~80 ms), which the gating and reachability checks use, ahead of their first call: for long-lived callers such as the mirror. */
export function warmHubClient(): void {
  void import('undici').catch(() => undefined);
}

/** A hub answer, whichever client carried it. */
interface HubAnswer {
  status: number;
  headers: Record<string, HeaderValue>;
  /** The body as text, refused beyond MAX_JSON_BYTES whatever the headers said. */
  text(): Promise<string>;
  discard(): Promise<void>;
}

async function readCapped(body: AsyncIterable<Uint8Array> | null, url: string): Promise<string> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body ?? []) {
    size += chunk.byteLength;
    if (size > MAX_JSON_BYTES) throw new ModelfetchError('ERR_BAD_RESPONSE', `The hub sent more than ${MAX_JSON_BYTES} bytes of JSON from ${redactUrl(url)}`, { url });
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The caller's signal, plus a deadline for this one request when a request timeout is set. */
function withRequestTimeout(options: HfClientOptions): HfClientOptions {
  if (options.requestTimeoutMs === undefined) return options;
  const deadline = AbortSignal.timeout(options.requestTimeoutMs);
  return { ...options, signal: options.signal ? AbortSignal.any([options.signal, deadline]) : deadline };
}

/**
 * One GET, redirects not followed. Node's built-in fetch needs no module load (the undici package
 * takes ~80 ms to load, a quarter of a cache-hit pull); a caller's dispatcher, or a proxy or CA
 * bundle configured (src/transfer/proxy.ts), goes through undici.
 */
async function sendHubGet(url: string, headers: Record<string, string>, clientOptions: HfClientOptions): Promise<HubAnswer> {
  const options = withRequestTimeout(clientOptions);
  const dispatcher = options.dispatcher ?? (await dispatcherForDefaults());
  if (dispatcher) {
    const { request } = await import('undici');
    const response = await request(url, { method: 'GET', headers, dispatcher, ...(options.signal && { signal: options.signal }) });
    return { status: response.statusCode, headers: response.headers, text: () => readCapped(response.body, url), discard: () => response.body.dump() };
  }
  const response = await fetch(url, { headers, redirect: 'manual', ...(options.signal && { signal: options.signal }) });
  return {
    status: response.status,
    headers: Object.fromEntries(response.headers),
    text: () => readCapped(response.body, url),
    discard: async () => void (await response.body?.cancel().catch(() => undefined)),
  };
}

/** The innermost reason of a network failure (fetch wraps it as "fetch failed"). */
function networkReason(cause: unknown): string {
  const inner = cause instanceof Error && cause.cause instanceof Error ? cause.cause : cause;
  return inner instanceof Error ? inner.message : String(inner);
}

/** One GET, following same-origin redirects (relative ones included) and refusing others, so the token never leaves the endpoint's origin. */
async function getJsonOnce(url: string, options: HfClientOptions, context: ErrorContext): Promise<JsonResponse> {
  const origin = new URL(options.endpoint).origin;
  let current = url;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    if (new URL(current).origin !== origin) {
      throw new ModelfetchError('ERR_REDIRECT', `The hub API redirected to another origin (${redactUrl(current)})`, { url: current, hint: 'API calls only follow redirects within the endpoint; check HF_ENDPOINT.' });
    }
    let response: HubAnswer;
    await options.pacer?.beforeRequest('api', options.signal, options.onRateLimitWait);
    try {
      response = await sendHubGet(current, { accept: 'application/json', 'user-agent': 'modelfetch', ...hfAuthHeaders(options.token) }, options);
    } catch (cause) {
      if (options.signal?.aborted) throw new ModelfetchError('ERR_ABORTED', 'Aborted', { cause });
      throw describeConnectFailure(cause, current) ?? new ModelfetchError('ERR_NETWORK', `Could not reach the hub at ${redactUrl(options.endpoint)}: ${networkReason(cause)}`, {
        url: current,
        cause,
        hint: 'Check the network and HF_ENDPOINT; with everything already cached, use --offline.',
      });
    }
    const { status, headers } = response;
    options.pacer?.observe('api', header(headers, 'ratelimit'));
    if (status >= 300 && status < 400 && status !== 304) {
      await response.discard();
      const location = header(headers, 'location');
      if (!location) throw new ModelfetchError('ERR_BAD_RESPONSE', `Redirect without Location from ${redactUrl(current)}`, { url: current, status });
      current = new URL(location, current).toString();
      continue;
    }
    if (status !== 200) {
      await response.discard();
      throw hubError(status, headers, current, context);
    }
    const declared = Number(header(headers, 'content-length') ?? 0);
    if (declared > MAX_JSON_BYTES) {
      await response.discard();
      throw new ModelfetchError('ERR_BAD_RESPONSE', `The hub sent a ${declared}-byte listing, more than modelfetch accepts`, { url: current });
    }
    const text = await response.text();
    try {
      return { body: JSON.parse(text) as unknown, url: current, headers };
    } catch (cause) {
      throw new ModelfetchError('ERR_BAD_RESPONSE', `The hub sent invalid JSON from ${redactUrl(current)}`, { url: current, cause, hint: 'Check that HF_ENDPOINT points at a Hugging Face hub, not a web page or proxy login.' });
    }
  }
  throw new ModelfetchError('ERR_REDIRECT', `Too many redirects from ${redactUrl(url)}`, { url });
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
export interface HfListedFile {
  path: string;
  size: number;
  digest: FileDigest;
  blobId: string;
  /** The Xet file hash when the Hub stores the file in Xet (tree `xetHash`). */
  xetHash?: string;
}

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
    const next = nextPageUrl(header(page.headers, 'link'), page.url);
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
  const remote: RemoteFile[] = files.map((file) => ({
    path: file.path,
    size: file.size,
    digest: file.digest,
    urls: [hfResolveUrl(endpoint, repo, commit, file.path)],
    etag: file.digest.hex,
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
  const anonymous: HfClientOptions = { endpoint: options.endpoint, ...(options.dispatcher && { dispatcher: options.dispatcher }), ...(options.signal && { signal: options.signal }) };
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
  let response: Dispatcher.ResponseData;
  try {
    response = await request(url, {
      method: 'HEAD',
      headers: { 'user-agent': 'modelfetch', ...hfAuthHeaders(options.token) },
      ...(dispatcher && { dispatcher }),
      ...(options.signal && { signal: options.signal }),
    });
  } catch (cause) {
    throw describeConnectFailure(cause, url) ?? new ModelfetchError('ERR_NETWORK', `Could not reach the hub at ${redactUrl(options.endpoint)}: ${(cause as Error).message}`, { url, cause });
  }
  await response.body.dump();
  const { statusCode, headers } = response;
  if (statusCode < 400) return true;
  if (statusCode === 404 && header(headers, 'x-error-code') === 'EntryNotFound') return true;
  if (statusCode === 401 || statusCode === 403 || statusCode === 404) return false;
  throw hubError(statusCode, headers, url, { ...repo, endpoint: options.endpoint, revision, path, hadToken: !!options.token });
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
