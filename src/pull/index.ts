import { isOfflineEnv } from '../core/hf-env.js';
import { lstat, readdir, readlink, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Dispatcher } from 'undici';
import { RepoPaths } from '../cache/layout.js';
import { readHfToken, resolveCacheDir, resolveHfEndpoint } from '../core/env.js';
import { parseRepoReference } from '../core/repo-ref.js';
import { acquireLock, markRevisionInUse, tryAcquireLock, type HeldLock } from '../cache/lock.js';
import { hashFile } from '../cache/blob-store.js';
import { cacheStore, type FileStore } from '../cache/file-store.js';
import { LocalDir } from '../cache/local-dir.js';
import { makeRealFolders } from '../cache/safe-path.js';
import { markNoExist, readRef, writeRef } from '../cache/snapshot.js';
import { touchRevision } from '../cache/usage.js';
import { readRepoTreeListing, type ListedFile } from '../cache/tree-listing.js';
import { assertSafeRelativePath, isSha1Hex } from '../core/validate.js';
import { assertDiskSpace, type SpaceCheckOptions } from '../core/disk-space.js';
import { isModelfetchError, ModelfetchError, type ErrorCode } from '../core/errors.js';
import { resolveMaxFiles, tooManyFiles } from '../source/listing-limit.js';
import type { FileDigest, RepoType } from '../core/types.js';
import type { Clock, ProgressEvent, TransferJob, TransferOptions, TransferResult } from '../transfer/types.js';

/**
 * `pull`: the one place that knows source, cache and transfer. Resolves `org/name@rev` to a commit
 * and its files, finds what the cache already holds (stamped blobs cost a stat, not a hash), fetches
 * the rest in ONE transfer batch (small files concurrently, large ones segmented, one connection
 * budget), commits blobs, links the snapshot. A cache hit pinned to a commit makes no request at all.
 */

export type TransferFilesFn = (jobs: TransferJob[], options?: TransferOptions) => Promise<TransferResult[]>;

export interface PullOptions {
  /** `org/name` or `org/name@revision`. */
  repo: string;
  /** Overrides an `@revision` in `repo`. Default `main`. */
  revision?: string;
  repoType?: RepoType;
  /** Exact repo paths to pull (default: every file). */
  files?: string[];
  /**
   * A trusted listing of `revision`, which must then be a commit (e.g. from a lockfile): no hub call
   * resolves or lists it, and only these sizes and digests are accepted, whatever the hub says.
   */
  listing?: ListedFile[];
  /** Globs; a pattern without `/` matches the file name at any depth. */
  include?: string[];
  exclude?: string[];
  /** The hub cache root (default HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub). */
  cacheDir?: string;
  /** Write real files into this folder instead of the cache (huggingface_hub's `local_dir` mode). */
  localDir?: string;
  /** Connection budget per host. */
  connections?: number;
  /** No request at all; everything must be cached (also HF_HUB_OFFLINE=1). */
  offline?: boolean;
  /** Download nothing; fail with ERR_INCOMPLETE when something is missing. */
  check?: boolean;
  /** Skip the free-space check made before the first byte (ERR_NO_SPACE when the missing bytes do not fit). */
  ignoreDiskSpace?: boolean;
  /** Free bytes of the folder the check asks about; default `statfs` (injectable for tests). */
  freeBytes?: SpaceCheckOptions['freeBytes'];
  /** With `localDir`: replace files edited since they were downloaded (kept, with a warning, otherwise). */
  forceDownload?: boolean;
  /** The command that fetches what `check` or `offline` found missing, for the hint (default: this pull, without those flags). */
  fixCommand?: string;
  /** One-line warnings (the hub unreachable and the cache used instead; a local-dir file kept because it was edited). */
  onWarning?: (message: string) => void;
  endpoint?: string;
  /** The token (default: HF_TOKEN, its file, …); `null` sends none and reads none from the environment (the caller decided). */
  token?: string | null;
  env?: NodeJS.ProcessEnv;
  dispatcher?: Dispatcher;
  clock?: Clock;
  signal?: AbortSignal;
  onProgress?: (event: ProgressEvent) => void;
  /** Told once what will be fetched, before any byte moves. */
  onPlan?: (plan: PullPlan) => void;
  /** The most files a repo listing may have (default MODELFETCH_MAX_FILES, else 200,000); a larger one is refused while it streams in. */
  maxFiles?: number;
  /** How long one hub API request may take (the CLI sets it from HF_HUB_ETAG_TIMEOUT); none by default. */
  apiTimeoutMs?: number;
  /** Engine overrides (segment sizes, timeouts) for tests and tuning. */
  transfer?: Omit<TransferOptions, 'connections' | 'dispatcher' | 'clock' | 'signal' | 'onProgress'>;
  /** The transfer engine; default `transferFiles` from ./transfer/index.js. */
  transferFiles?: TransferFilesFn;
  /** Where files are listed and fetched: the Hugging Face Hub (default) or ModelScope (`ms://org/name` implies it). */
  source?: 'hf' | 'modelscope';
  /**
   * ModelScope only: 'modelscope' (default) writes where the modelscope library reads
   * (MODELSCOPE_CACHE, or --cache-dir); 'hf' writes the hub cache like any Hub pull.
   */
  layout?: 'hf' | 'modelscope';
  /** Then convert the safetensors weights to f16/bf16 into a derived snapshot (`path` is then that one). */
  dtype?: string;
  /** With `dtype`: tensor-name globs left as they are. */
  keep?: string[];
  /** false (`--no-xet`, also HF_HUB_DISABLE_XET=1): Hub files stored in Xet come through the plain path. */
  xet?: boolean;
  /** Told one line when a Xet download fell back to the plain path (default: stderr). */
  onXetFallback?: (line: string) => void;
}

export interface PullPlan {
  repoId: string;
  commit: string;
  files: number;
  cacheHits: number;
  toFetch: number;
  bytesToFetch: number;
}

export interface PullResult {
  /** The snapshot folder (or the local dir): point the application here. */
  path: string;
  repoId: string;
  repoType: RepoType;
  revision: string;
  commit: string;
  /** Files in the pulled selection. */
  files: number;
  /** Files that were already complete (no transfer). */
  cacheHits: number;
  /** Files fetched by this pull (or by a concurrent one this pull waited for). */
  downloaded: number;
  bytesFetched: number;
  bytesResumed: number;
  /** File bytes that cost no download: Xet chunks from the chunk cache or fetched once for several places. */
  bytesDeduplicated: number;
  /** Network bytes by the path that fetched them. */
  bytesBySource: { xet: number; plain: number };
  elapsedMs: number;
  /** What `dtype` converted. */
  converted?: import('../safetensors/convert.js').ConvertResult;
}

interface Resolved {
  commit: string;
  listing: ListedFile[];
  /** Where the listing came from: the hub or a cached tree listing (authoritative), or the snapshot folder. */
  authoritative: boolean;
  fromHub: boolean;
  /** Set when the hub could not be reached and the revision was resolved from the cache instead. */
  fallback?: { error: ModelfetchError };
}

/** Splits `org/name@rev` (kept free of the HTTP client so cache hits never load it). */
function parseReference(reference: string): { repoId: string; revision?: string } {
  const at = reference.indexOf('@');
  return at === -1 ? { repoId: reference } : { repoId: reference.slice(0, at), revision: reference.slice(at + 1) };
}

export async function pull(options: PullOptions): Promise<PullResult> {
  const started = Date.now();
  const env = options.env ?? process.env;
  const repoType = options.repoType ?? 'model';
  const modelscope = options.source === 'modelscope' || options.repo.startsWith('ms://');
  const reference = parseReference(modelscope ? options.repo.replace(/^ms:\/\//, '') : options.repo);
  const revision = options.revision ?? reference.revision ?? (modelscope ? 'master' : 'main');
  if (modelscope && repoType !== 'model') throw new ModelfetchError('ERR_USAGE', 'ModelScope pulls are models only', { hint: 'Drop --repo-type.' });
  const offline = options.offline === true || isOfflineEnv(env);
  if (options.localDir && options.cacheDir) throw new ModelfetchError('ERR_USAGE', 'Use either --cache-dir or --local-dir, not both');
  if (options.dtype && (options.localDir || modelscope)) throw new ModelfetchError('ERR_USAGE', '--dtype converts into the hub cache, not a local dir or the ModelScope layout', { hint: 'Pull into the cache, or run modelfetch convert FOLDER --dtype … --out DIR.' });
  const msLayout = modelscope && (options.layout ?? 'modelscope') === 'modelscope';
  const repo = new RepoPaths(msLayout ? resolveCacheDir(env) : (options.cacheDir ?? resolveCacheDir(env)), repoType, reference.repoId);
  if (!revision) throw new ModelfetchError('ERR_USAGE', `Empty revision in ${JSON.stringify(options.repo)}`, { hint: 'Write org/name@main or org/name@<commit>.' });
  const requested = (options.files ?? []).map((path) => assertSafeRelativePath(path.replace(/^\.\//, ''), 'the command line'));
  const maxFiles = resolveMaxFiles(options.maxFiles, env);
  const local: FolderOfFiles | undefined = options.localDir ? new LocalDir(options.localDir) : msLayout ? await modelScopeFolder(options, env, reference.repoId, revision) : undefined;
  if (options.include?.length || options.exclude?.length) await loadGlobSupport();

  let client: Remote | undefined;
  const online = async () => (client ??= modelscope ? await modelScopeRemote(options, env, offline, reference.repoId) : await hubClient(options, env, offline, reference.repoId, repoType, maxFiles));

  const resolved = options.listing ? pinnedListing(revision, options.listing) : await resolveListing({ repo, local, revision, offline, online, mayFallBack: !options.check });
  // Whatever the listing came from (hub pages, ModelScope, a cached tree listing, a lockfile).
  if (resolved.listing.length > maxFiles) throw tooManyFiles(reference.repoId, maxFiles);
  const selection = selectFiles(resolved.listing, requested, options.include, options.exclude);
  // A snapshot folder (not a full listing) cannot say a file does not exist: the network error stands.
  if (resolved.fallback && !resolved.authoritative && (selection.missing.length || !selection.files.length)) throw resolved.fallback.error;
  if (selection.missing.length) {
    if (resolved.authoritative && !local) for (const path of selection.missing) await markNoExist(repo, resolved.commit, path);
    throw new ModelfetchError(offline && !resolved.authoritative ? 'ERR_OFFLINE' : 'ERR_NOT_FOUND', `${selection.missing.slice(0, 5).join(', ')}${selection.missing.length > 5 ? ` and ${selection.missing.length - 5} more` : ''} not found in ${reference.repoId}@${resolved.commit.slice(0, 12)}`, {
      hint: 'Check the file names (they are case-sensitive and relative to the repo root) and the revision.',
    });
  }
  if (selection.files.length === 0 && !options.listing) throw emptySelection(reference.repoId, resolved, offline, options);
  if (resolved.fromHub && !local && revision !== resolved.commit) await writeRef(repo, revision, resolved.commit);

  const store = local ? local.store(resolved.commit, localDirOptions(options)) : cacheStore(repo, resolved.commit);
  // What is on disk before planning, which removes wrong blobs: lets an error tell "corrupt" from "missing".
  const foundBefore = options.check || offline ? await pathsOnDisk(selection.files, (file) => (local ? undefined : repo.blob(file.digest))) : new Set<string>();
  const plan = await planFiles(store, selection.files);
  if (resolved.fallback) {
    // The hub could not be reached: the cache may stand in only for a selection it holds completely.
    if (plan.missing.length) throw resolved.fallback.error;
    options.onWarning?.(`${resolved.fallback.error.message.replace(/[.\s]+$/, '')}; using the cached ${reference.repoId}@${resolved.commit.slice(0, 12)} (${revision})`);
  }
  const result: PullResult = {
    path: local ? local.root : repo.snapshotDir(resolved.commit),
    repoId: reference.repoId,
    repoType,
    revision,
    commit: resolved.commit,
    files: selection.files.length,
    cacheHits: selection.files.length - plan.missing.length,
    downloaded: 0,
    bytesFetched: 0,
    bytesResumed: 0,
    bytesDeduplicated: 0,
    bytesBySource: { xet: 0, plain: 0 },
    elapsedMs: 0,
  };
  const unique = store.sharesContent ? uniqueByDigest(plan.missing) : plan.missing;
  options.onPlan?.({ repoId: reference.repoId, commit: resolved.commit, files: result.files, cacheHits: result.cacheHits, toFetch: plan.missing.length, bytesToFetch: unique.reduce((sum, f) => sum + f.size, 0) });

  const absent = options.check ? plan.unlinked : plan.missing;
  if (absent.length && (options.check || offline)) {
    const names = absent.map((f) => f.path);
    const corrupt = names.filter((path) => foundBefore.has(path));
    const gone = names.filter((path) => !foundBefore.has(path));
    const list = (paths: string[]): string => `${paths.slice(0, 5).join(', ')}${paths.length > 5 ? ', …' : ''}`;
    const what = [...(gone.length ? [`${gone.length} missing (${list(gone)})`] : []), ...(corrupt.length ? [`${corrupt.length} corrupt, now removed (${list(corrupt)})`] : [])].join(', ');
    const fix = options.fixCommand ?? pullCommandLine(options, reference.repoId, reference.revision ? revision : undefined);
    throw new ModelfetchError(options.check ? 'ERR_INCOMPLETE' : 'ERR_OFFLINE', `${names.length} of ${selection.files.length} files of ${reference.repoId}@${resolved.commit.slice(0, 12)} are not in the cache: ${what}`, {
      hint: options.check
        ? `Run \`${fix}\` to fetch them${corrupt.length ? ' again; `modelfetch verify --fix` also repairs the rest of the cache' : ''}.`
        : `Run \`${fix}\` once with network access (HF_HUB_OFFLINE unset${options.fixCommand ? '' : ', no --offline'}) to fetch them.`,
      expected: selection.files.length,
      found: selection.files.length - names.length,
    });
  }

  const inUse = local ? undefined : await markRevisionInUse(repo, resolved.commit);
  try {
    if (plan.missing.length) {
      await assertDiskSpace(
        unique.map((file) => ({ path: store.tempPath(file), size: file.size })),
        { ...(options.ignoreDiskSpace && { ignore: true }), ...(options.freeBytes && { freeBytes: options.freeBytes }), elsewhere: local ? 'pull into another --local-dir' : 'point --cache-dir (or HF_HUB_CACHE) at a larger disk' },
      );
      const hub = await online();
      const fetched = await fetchBlobs(store, unique, resolved.commit, hub, options).catch((error: unknown) => {
        throw withPullHint(error, options.fixCommand ?? pullCommandLine(options, reference.repoId, reference.revision ? revision : undefined));
      });
      result.downloaded = plan.missing.length;
      result.bytesFetched = fetched.bytesFetched;
      result.bytesResumed = fetched.bytesResumed;
      result.bytesDeduplicated = fetched.bytesDeduplicated;
      result.bytesBySource = fetched.bytesBySource;
    }
    for (const file of plan.unlinked) await store.link(file);
    if (resolved.fromHub) await store.writeListing(resolved.listing);
    if (!local) await touchRevision(repo, resolved.commit); // gc's last-use record
  } finally {
    await inUse?.release();
  }
  if (options.dtype) {
    const { convertAfterPull } = await import('../safetensors/convert.js');
    result.converted = await convertAfterPull(result.path, repo, resolved.commit, options);
    result.path = result.converted.path;
  }
  result.elapsedMs = Date.now() - started;
  return result;
}

/** What pull needs from a source: the commit of a revision, the files of a commit, and where each file's bytes are. */
interface Remote {
  fetchCommit(revision: string): Promise<string>;
  listFiles(commit: string): Promise<ListedFile[]>;
  job(commit: string, file: ListedFile): Pick<TransferJob, 'urls' | 'identity' | 'headers' | 'xet'>;
}

function refuseOffline(offline: boolean, repoId: string): void {
  if (offline) {
    throw new ModelfetchError('ERR_OFFLINE', `${repoId} is not fully cached and offline mode is on`, { hint: 'Run the same pull once without --offline / HF_HUB_OFFLINE=1.' });
  }
}

/** Loads the hub client only when the network is needed; refuses in offline mode. */
async function hubClient(options: PullOptions, env: NodeJS.ProcessEnv, offline: boolean, repoId: string, repoType: RepoType, maxFiles: number): Promise<Remote> {
  refuseOffline(offline, repoId);
  const hf = await import('../source/hf.js');
  const endpoint = resolveHfEndpoint(options.endpoint, env);
  const token = options.token === null ? undefined : await readHfToken(options.token, env);
  const { RateLimitPacer } = await import('../source/rate-limit.js');
  const { systemClock } = await import('../transfer/options.js');
  const pacer = new RateLimitPacer(options.clock ?? systemClock);
  const onRateLimitWait = (ms: number, bucket: string): void => options.onWarning?.(`the hub's "${bucket}" rate limit is spent; waiting ${Math.ceil(ms / 1000)} s for its window to reset`);
  const client = { endpoint, pacer, onRateLimitWait, ...(token && { token }), ...(options.dispatcher && { dispatcher: options.dispatcher }), ...(options.signal && { signal: options.signal }), ...(options.apiTimeoutMs !== undefined && { requestTimeoutMs: options.apiTimeoutMs }) };
  const repo = { repoType, repoId: parseRepoReference(repoId).repoId };
  const xetHashes = new Map<string, string>(); // commit/path -> Xet hash, from the tree listing
  const listed = new Set<string>(); // commits whose listing came from the hub this run
  return {
    fetchCommit: (revision) => hf.fetchRevisionCommit(repo, revision, client),
    listFiles: async (commit) => {
      const files = await hf.listRepoFiles(repo, commit, client, maxFiles);
      for (const file of files) if (file.xetHash) xetHashes.set(`${commit}/${file.path}`, file.xetHash);
      listed.add(commit);
      return files;
    },
    job: (commit, file) => {
      const xetHash = xetHashes.get(`${commit}/${file.path}`);
      return {
        urls: [hf.hfResolveUrl(endpoint, repo, commit, file.path)],
        identity: `hf:${repo.repoType}:${repo.repoId}:${file.digest.algorithm}:${file.digest.hex}`,
        headers: hf.hfAuthHeaders(token),
        // In Xet when the hub's listing says so; with a listing from elsewhere, the resolve answer tells (LFS files only).
        ...(xetHash ? { xet: { fileHash: xetHash, tokenUrl: hf.hfXetTokenUrl(endpoint, repo, commit) } } : file.digest.algorithm === 'sha256' && !listed.has(commit) && { xet: {} }),
      };
    },
  };
}

/** ModelScope: one listing gives both the commit and the files; downloads are pinned to that commit. */
async function modelScopeRemote(options: PullOptions, env: NodeJS.ProcessEnv, offline: boolean, repoId: string): Promise<Remote> {
  refuseOffline(offline, repoId);
  const ms = await import('../source/modelscope.js');
  const endpoint = ms.resolveModelScopeEndpoint(options.endpoint, env);
  const token = options.token === null ? undefined : ms.readModelScopeToken(options.token, env);
  const client = { endpoint, ...(token && { token }), ...(options.dispatcher && { dispatcher: options.dispatcher }), ...(options.signal && { signal: options.signal }) };
  const listed = new Map<string, Awaited<ReturnType<typeof ms.resolveModelScopeSnapshot>>>();
  const list = async (revision: string) => {
    const snapshot = listed.get(revision) ?? (await ms.resolveModelScopeSnapshot(repoId, revision, client));
    listed.set(revision, snapshot).set(snapshot.commit, snapshot);
    return snapshot;
  };
  return {
    fetchCommit: async (revision) => (await list(revision)).commit,
    listFiles: async (commit) => (await list(commit)).files.map(({ path, size, digest, revision }) => ({ path, size, digest, ...(revision && { revision }) })),
    job: (commit, file) => ({
      urls: listed.get(commit)?.files.find((f) => f.path === file.path)?.urls ?? [ms.modelScopeFileUrl(endpoint, repoId, commit, file.path)],
      identity: `ms:${repoId}:${file.digest.hex}`,
      headers: ms.modelScopeAuthHeaders(token),
    }),
  };
}

function localDirOptions(options: PullOptions): { forceDownload?: boolean; onKept?: (path: string) => void } {
  return {
    ...(options.forceDownload && { forceDownload: true }),
    onKept: (path) => options.onWarning?.(`${path} was changed since it was downloaded; kept as it is (--force-download replaces it)`),
  };
}

/** The modelscope-layout folder of a model (MODELSCOPE_CACHE, or --cache-dir). */
async function modelScopeFolder(options: PullOptions, env: NodeJS.ProcessEnv, repoId: string, revision: string): Promise<import('../cache/modelscope-layout.js').ModelScopeFolder> {
  const layout = await import('../cache/modelscope-layout.js');
  return new layout.ModelScopeFolder(new layout.ModelScopePaths(options.cacheDir ?? layout.resolveModelScopeCache(env), repoId), revision);
}

/** A folder of real files instead of the hub cache: a local dir, or a model in the modelscope layout. */
type FolderOfFiles = Pick<LocalDir, 'root' | 'onlyCommit' | 'readListing' | 'store'>;

interface ResolveInput {
  repo: RepoPaths;
  local: FolderOfFiles | undefined;
  revision: string;
  offline: boolean;
  online: () => Promise<Remote>;
  /** Whether an unreachable hub may be replaced by the cache (not for --check). */
  mayFallBack: boolean;
}

/** A listing the caller vouches for (a lockfile's): not written as the commit's tree listing, which it may only be part of. */
function pinnedListing(revision: string, listing: ListedFile[]): Resolved {
  if (!isSha1Hex(revision)) throw new ModelfetchError('ERR_USAGE', `A pinned listing needs a commit as revision, not ${JSON.stringify(revision)}`);
  return { commit: revision, listing, authoritative: false, fromHub: false };
}

/** The commit and its file listing, from the cache when it can answer, else from the hub. */
async function resolveListing(input: ResolveInput): Promise<Resolved> {
  try {
    return await resolveListingOnce(input);
  } catch (error) {
    if (input.offline || !input.mayFallBack || !isModelfetchError(error) || !isUnreachable(error)) throw error;
    // As huggingface_hub does: the hub is unreachable, so the cache answers if it can (pull checks it is complete).
    const cached = await resolveListingOnce({ ...input, offline: true }).catch(() => undefined);
    if (!cached) throw error;
    return { ...cached, fallback: { error } };
  }
}

/** Failures that mean "the hub could not be reached", as opposed to an answer (401, 404, gated). */
const UNREACHABLE: ReadonlySet<ErrorCode> = new Set(['ERR_NETWORK', 'ERR_STALL']);

function isUnreachable(error: ModelfetchError): boolean {
  return (UNREACHABLE.has(error.code) || (error.code === 'ERR_HTTP' && (error.status ?? 0) >= 500));
}

async function resolveListingOnce({ repo, local, revision, offline, online }: ResolveInput): Promise<Resolved> {
  let commit: string | undefined = isSha1Hex(revision) ? revision : undefined;
  if (!commit && offline) commit = local ? await local.onlyCommit() : await readRef(repo, revision);
  if (!commit && offline) {
    throw new ModelfetchError('ERR_OFFLINE', `Revision ${JSON.stringify(revision)} of ${repo.repoId} is not in the cache and offline mode is on`, {
      hint: 'Pull it once online, or pass the commit hash as @<commit>.',
    });
  }
  let hub: Remote | undefined;
  if (!commit) {
    hub = await online();
    commit = await hub.fetchCommit(revision);
  }
  const cached = local ? await local.readListing(commit) : await readRepoTreeListing(repo, commit);
  if (cached) return { commit, listing: cached, authoritative: true, fromHub: !!hub };
  if (offline) {
    const scanned = local ? undefined : await listSnapshotFolder(repo, commit);
    if (!scanned) throw new ModelfetchError('ERR_OFFLINE', `${repo.repoId}@${commit.slice(0, 12)} is not in the cache and offline mode is on`, { hint: 'Pull it once online first.' });
    return { commit, listing: scanned, authoritative: false, fromHub: false };
  }
  hub ??= await online();
  return { commit, listing: await hub.listFiles(commit), authoritative: true, fromHub: true };
}

/**
 * Offline and without a tree listing (a cache written by an older huggingface_hub): the snapshot
 * folder itself says what is there. Symlinks name their blob; copies are taken as they are.
 */
async function listSnapshotFolder(repo: RepoPaths, commit: string): Promise<ListedFile[] | undefined> {
  const root = repo.snapshotDir(commit);
  const entries = await readdir(root, { recursive: true }).catch(() => undefined);
  if (!entries) return undefined;
  const files: ListedFile[] = [];
  for (const entry of entries) {
    const path = entry.split('\\').join('/');
    const full = join(root, path);
    const info = await lstat(full);
    if (info.isDirectory()) continue;
    const name = info.isSymbolicLink() ? basename(await readlink(full)) : undefined;
    const digest: FileDigest | undefined = name && /^[0-9a-f]{64}$/.test(name) ? { algorithm: 'sha256', hex: name } : name && isSha1Hex(name) ? { algorithm: 'git-sha1', hex: name } : undefined;
    const size = (await stat(full).catch(() => undefined))?.size;
    if (size === undefined) continue;
    files.push({ path, size, digest: digest ?? { algorithm: 'sha256', hex: '' } });
  }
  return files;
}

/** The `modelfetch pull` command line that fetches this selection (for hints): the same repo, revision, files and filters. */
function pullCommandLine(options: PullOptions, repoId: string, revision: string | undefined): string {
  const quote = (text: string): string => (/^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, "'\\''")}'`);
  const words = ['modelfetch', 'pull', `${options.repo.startsWith('ms://') ? 'ms://' : ''}${repoId}${revision ? `@${revision}` : ''}`, ...(options.files ?? [])];
  for (const glob of options.include ?? []) words.push('--include', glob);
  for (const glob of options.exclude ?? []) words.push('--exclude', glob);
  if (options.repoType && options.repoType !== 'model') words.push('--repo-type', options.repoType);
  if (options.localDir) words.push('--local-dir', options.localDir);
  else if (options.cacheDir) words.push('--cache-dir', options.cacheDir);
  return words.map(quote).join(' ');
}

/**
 * The engine's hints speak of URLs and `get`'s flags; a pull's user gave a repo. Errors from the
 * download phase get a hint in terms of the command that ran (`--endpoint`, `--token`, rerun to resume).
 */
function withPullHint(error: unknown, fix: string): unknown {
  if (!isModelfetchError(error)) return error;
  let hint: string | undefined;
  if (isUnreachable(error) || error.code === 'ERR_HTTP') hint = `Check the network and --endpoint (or HF_ENDPOINT), then run \`${fix}\` again: finished files and ranges are kept.`;
  else if (error.code === 'ERR_NOT_FOUND') hint = 'The endpoint does not serve this file at this commit: check --endpoint (or HF_ENDPOINT).';
  else if (error.code === 'ERR_AUTH' || error.code === 'ERR_GATED') hint = 'Set HF_TOKEN (or --token) to a token that can read this repo; a gated repo also needs its terms accepted on its page.';
  if (hint === undefined) return error;
  const { code, message, expected, found, url, status } = error;
  return new ModelfetchError(code, message, { hint, cause: error, ...(expected !== undefined && { expected }), ...(found !== undefined && { found }), ...(url !== undefined && { url }), ...(status !== undefined && { status }) });
}

/** Which files have something at their content path (a blob, or a file in a folder), before planning decides on it. */
async function pathsOnDisk(files: ListedFile[], contentPath: (file: ListedFile) => string | undefined): Promise<Set<string>> {
  const found = new Set<string>();
  for (const file of files) {
    const path = contentPath(file);
    if (path && (await lstat(path).then(() => true, () => false))) found.add(file.path);
  }
  return found;
}

/** A selection that matches nothing is an error that shows what there is, never an empty success. */
function emptySelection(repoId: string, resolved: Resolved, offline: boolean, options: PullOptions): ModelfetchError {
  const filters = [...(options.include ?? []).map((g) => `--include ${JSON.stringify(g)}`), ...(options.exclude ?? []).map((g) => `--exclude ${JSON.stringify(g)}`)];
  const at = `${repoId}@${resolved.commit.slice(0, 12)}`;
  const sample = resolved.listing.map((f) => f.path).sort();
  const shown = sample.slice(0, 10).join(', ');
  const has = sample.length === 0 ? `${at} has no files` : `${at} has ${sample.length} file${sample.length === 1 ? '' : 's'}: ${shown}${sample.length > 10 ? `, … (${sample.length - 10} more)` : ''}`;
  const code = offline && !resolved.authoritative ? 'ERR_OFFLINE' : 'ERR_NOT_FOUND';
  return new ModelfetchError(code, `No file matches ${filters.length ? filters.join(' ') : 'the selection'}; ${has}`, {
    expected: 'at least one file',
    found: 0,
    hint: 'Check the patterns: a pattern without "/" matches the file name at any depth, "dir/" matches everything under dir, and names are case-sensitive.',
  });
}

/** Files to pull: exact paths if given, then include/exclude globs. */
function selectFiles(listing: ListedFile[], requested: string[], include: string[] = [], exclude: string[] = []): { files: ListedFile[]; missing: string[] } {
  let files = listing;
  let missing: string[] = [];
  if (requested.length) {
    const byPath = new Map(listing.map((f) => [f.path, f]));
    missing = requested.filter((path) => !byPath.has(path));
    files = [...new Set(requested)].flatMap((path) => byPath.get(path) ?? []);
  }
  if (include.length) files = files.filter((f) => include.some((pattern) => globMatch(pattern, f.path)));
  if (exclude.length) files = files.filter((f) => !exclude.some((pattern) => globMatch(pattern, f.path)));
  return { files, missing };
}

let picomatchModule: typeof import('picomatch') | undefined;

/** huggingface_hub's allow/ignore patterns: a pattern without `/` matches the name at any depth, `dir/` means everything under it. */
export function globMatch(pattern: string, path: string): boolean {
  const normalized = pattern.endsWith('/') ? `${pattern}**` : pattern;
  const subject = normalized.includes('/') ? path : (path.split('/').pop() ?? path);
  return picomatch().isMatch(subject, normalized, { dot: true });
}

function picomatch(): typeof import('picomatch') {
  if (!picomatchModule) throw new Error('picomatch not loaded');
  return picomatchModule;
}

/** Loads picomatch before selection when globs are used (kept off the plain cache-hit path). */
export async function loadGlobSupport(): Promise<void> {
  picomatchModule ??= (await import('picomatch')).default;
}

/** How many files are looked at at once while planning: enough to keep the disk busy, few enough that a huge listing does not hold a pending check per file. */
const PLAN_CONCURRENCY = 64;

/** What a store lacks of `files` ('missing': no content; 'unlinked': content there, entry not). */
export async function planFiles(store: FileStore, files: ListedFile[]): Promise<{ missing: ListedFile[]; unlinked: ListedFile[] }> {
  const states: Array<'present' | 'unlinked' | 'missing'> = new Array(files.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < files.length) {
      const i = next++;
      states[i] = await store.state(files[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(PLAN_CONCURRENCY, files.length) }, worker));
  return {
    missing: files.filter((_, i) => states[i] === 'missing'),
    unlinked: files.filter((_, i) => states[i] !== 'present'),
  };
}

export function uniqueByDigest(files: ListedFile[]): ListedFile[] {
  const seen = new Map<string, ListedFile>();
  for (const file of files) if (!seen.has(file.digest.hex)) seen.set(file.digest.hex, file);
  return [...seen.values()];
}

/**
 * Fetches every blob once across processes: take each blob's lock without waiting and fetch those in
 * one batch; for blobs another process is fetching, wait for its lock, then use its result (or fetch
 * it ourselves if that process failed).
 */
async function fetchBlobs(store: FileStore, files: ListedFile[], commit: string, hub: Remote, options: PullOptions): Promise<Pick<PullResult, 'bytesFetched' | 'bytesResumed' | 'bytesDeduplicated' | 'bytesBySource'>> {
  // Loaded only when bytes must move, so a cache hit never pays for the engine (or undici).
  const engine = await import('../transfer/index.js');
  const transferFiles = options.transferFiles ?? engine.transferFiles;
  const env = options.env ?? process.env;
  const xet = engine.xetSettings({ env, ...(options.xet !== undefined && { xet: options.xet }), cacheRoot: options.cacheDir ?? resolveCacheDir(env), ...(options.onXetFallback && { onFallback: options.onXetFallback }) });
  const totals = { bytesFetched: 0, bytesResumed: 0, bytesDeduplicated: 0, bytesBySource: { xet: 0, plain: 0 } };
  // Locks are taken in one global order, so processes waiting while holding some cannot wait in a cycle.
  let pending = [...files].sort((a, b) => (store.lockPath(a) < store.lockPath(b) ? -1 : 1));
  let wait = false;
  const prepared = new Set<string>();
  while (pending.length) {
    const held: Array<{ file: ListedFile; lock: HeldLock }> = [];
    const later: ListedFile[] = [];
    try {
      for (const file of pending) {
        // The temp and lock folders are made through real folders only, before anything is written there.
        for (const dir of [dirname(store.lockPath(file)), dirname(store.tempPath(file))]) {
          if (!prepared.has(dir)) await makeRealFolders(store.root, dir);
          prepared.add(dir);
        }
        const lock = wait ? await acquireLock(store.lockPath(file), options.signal ? { signal: options.signal } : {}) : await tryAcquireLock(store.lockPath(file));
        if (!lock) {
          later.push(file);
          continue;
        }
        if ((await store.hasContent(file)) || (await adoptFinishedTemp(store, file))) await lock.release();
        else held.push({ file, lock });
      }
      if (held.length) {
        const jobs: TransferJob[] = held.map(({ file }) => ({
          ...hub.job(commit, file),
          size: file.size,
          digest: file.digest,
          tempPath: store.tempPath(file),
        }));
        const results = await transferFiles(jobs, {
          ...options.transfer,
          ...(options.connections !== undefined && { connections: options.connections }),
          ...(options.dispatcher && { dispatcher: options.dispatcher }),
          ...(options.clock && { clock: options.clock }),
          ...(options.signal && { signal: options.signal }),
          ...(options.onProgress && { onProgress: options.onProgress }),
          ...(xet && { xet }),
        });
        for (const [i, { file }] of held.entries()) {
          await store.commit(file, results[i]!.tempPath);
          totals.bytesFetched += results[i]!.bytesFetched;
          totals.bytesResumed += results[i]!.bytesResumed;
          totals.bytesDeduplicated += results[i]!.bytesDeduplicated ?? 0;
          totals.bytesBySource[results[i]!.source === 'xet' ? 'xet' : 'plain'] += results[i]!.bytesFetched;
        }
      }
    } finally {
      for (const { lock } of held) await lock.release();
    }
    pending = later;
    wait = true;
  }
  return totals;
}

/**
 * A temp file the engine finished (complete, journal gone) whose commit never happened: a batch in
 * which another file failed, or a crash right after the transfer. Verified here, it is committed
 * instead of downloaded again.
 */
async function adoptFinishedTemp(store: FileStore, file: ListedFile): Promise<boolean> {
  const temp = store.tempPath(file);
  const info = await lstat(temp).catch(() => undefined);
  if (!info?.isFile() || info.size !== file.size) return false;
  if (await lstat(`${temp}.journal`).then(() => true, () => false)) return false;
  if ((await hashFile(temp, file.digest.algorithm)).hex !== file.digest.hex) return false;
  await store.commit(file, temp);
  return true;
}
