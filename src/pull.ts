import { lstat, mkdir, readdir, readlink, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Dispatcher } from 'undici';
import { resolveCacheDir, RepoPaths } from './cache/layout.js';
import { acquireLock, markRevisionInUse, tryAcquireLock, type HeldLock } from './cache/lock.js';
import { hashFile } from './cache/blob-store.js';
import { cacheStore, type FileStore } from './cache/file-store.js';
import { LocalDir } from './cache/local-dir.js';
import { markNoExist, readRef, writeRef } from './cache/snapshot.js';
import { touchRevision } from './cache/usage.js';
import { readRepoTreeListing, type ListedFile } from './cache/tree-listing.js';
import { assertSafeRelativePath, isSha1Hex } from './cache/validate.js';
import { ModelfetchError } from './errors.js';
import type { FileDigest, RepoType } from './source/types.js';
import type { Clock, ProgressEvent, TransferJob, TransferOptions, TransferResult } from './transfer/types.js';

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
  endpoint?: string;
  token?: string;
  env?: NodeJS.ProcessEnv;
  dispatcher?: Dispatcher;
  clock?: Clock;
  signal?: AbortSignal;
  onProgress?: (event: ProgressEvent) => void;
  /** Told once what will be fetched, before any byte moves. */
  onPlan?: (plan: PullPlan) => void;
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
}

interface Resolved {
  commit: string;
  listing: ListedFile[];
  /** Where the listing came from: the hub or a cached tree listing (authoritative), or the snapshot folder. */
  authoritative: boolean;
  fromHub: boolean;
}

export function isOfflineEnv(env: NodeJS.ProcessEnv): boolean {
  return /^(1|true|yes|on)$/i.test(env.HF_HUB_OFFLINE ?? '');
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
  const msLayout = modelscope && (options.layout ?? 'modelscope') === 'modelscope';
  const repo = new RepoPaths(msLayout ? resolveCacheDir(env) : (options.cacheDir ?? resolveCacheDir(env)), repoType, reference.repoId);
  if (!revision) throw new ModelfetchError('ERR_USAGE', `Empty revision in ${JSON.stringify(options.repo)}`, { hint: 'Write org/name@main or org/name@<commit>.' });
  const requested = (options.files ?? []).map((path) => assertSafeRelativePath(path.replace(/^\.\//, ''), 'the command line'));
  const local = options.localDir ? new LocalDir(options.localDir) : msLayout ? await modelScopeFolder(options, env, reference.repoId, revision) : undefined;
  if (options.include?.length || options.exclude?.length) await loadGlobSupport();

  let client: Remote | undefined;
  const online = async () => (client ??= modelscope ? await modelScopeRemote(options, env, offline, reference.repoId) : await hubClient(options, env, offline, reference.repoId, repoType));

  const resolved = options.listing ? pinnedListing(revision, options.listing) : await resolveListing({ repo, local, revision, offline, online });
  const selection = selectFiles(resolved.listing, requested, options.include, options.exclude);
  if (selection.missing.length) {
    if (resolved.authoritative && !local) for (const path of selection.missing) await markNoExist(repo, resolved.commit, path);
    throw new ModelfetchError(offline && !resolved.authoritative ? 'ERR_OFFLINE' : 'ERR_NOT_FOUND', `${selection.missing.slice(0, 5).join(', ')}${selection.missing.length > 5 ? ` and ${selection.missing.length - 5} more` : ''} not found in ${reference.repoId}@${resolved.commit.slice(0, 12)}`, {
      hint: 'Check the file names (they are case-sensitive and relative to the repo root) and the revision.',
    });
  }
  if (resolved.fromHub && !local && revision !== resolved.commit) await writeRef(repo, revision, resolved.commit);

  const store = local ? local.store(resolved.commit) : cacheStore(repo, resolved.commit);
  const plan = await planFiles(store, selection.files);
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
    throw new ModelfetchError(options.check ? 'ERR_INCOMPLETE' : 'ERR_OFFLINE', `${names.length} of ${selection.files.length} files of ${reference.repoId}@${resolved.commit.slice(0, 12)} are not in the cache: ${names.slice(0, 5).join(', ')}${names.length > 5 ? ', …' : ''}`, {
      hint: options.check ? `Run modelfetch pull ${reference.repoId}${reference.revision ? `@${revision}` : ''} without --check to fetch them.` : 'Run the same pull online once (without --offline / HF_HUB_OFFLINE) to fetch them.',
      expected: selection.files.length,
      found: selection.files.length - names.length,
    });
  }

  const inUse = local ? undefined : await markRevisionInUse(repo, resolved.commit);
  try {
    if (plan.missing.length) {
      const hub = await online();
      const fetched = await fetchBlobs(store, unique, resolved.commit, hub, options);
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
async function hubClient(options: PullOptions, env: NodeJS.ProcessEnv, offline: boolean, repoId: string, repoType: RepoType): Promise<Remote> {
  refuseOffline(offline, repoId);
  const hf = await import('./source/hf.js');
  const endpoint = hf.resolveHfEndpoint(options.endpoint, env);
  const token = await hf.readHfToken(options.token, env);
  const client = { endpoint, ...(token && { token }), ...(options.dispatcher && { dispatcher: options.dispatcher }), ...(options.signal && { signal: options.signal }) };
  const repo = { repoType, repoId: hf.parseRepoReference(repoId).repoId };
  const xetHashes = new Map<string, string>(); // commit/path -> Xet hash, from the tree listing
  const listed = new Set<string>(); // commits whose listing came from the hub this run
  return {
    fetchCommit: (revision) => hf.fetchRevisionCommit(repo, revision, client),
    listFiles: async (commit) => {
      const files = await hf.listRepoFiles(repo, commit, client);
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
  const ms = await import('./source/modelscope.js');
  const endpoint = ms.resolveModelScopeEndpoint(options.endpoint, env);
  const token = ms.readModelScopeToken(options.token, env);
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

/** The modelscope-layout folder of a model (MODELSCOPE_CACHE, or --cache-dir). */
async function modelScopeFolder(options: PullOptions, env: NodeJS.ProcessEnv, repoId: string, revision: string): Promise<import('./cache/modelscope-layout.js').ModelScopeFolder> {
  const layout = await import('./cache/modelscope-layout.js');
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
}

/** A listing the caller vouches for (a lockfile's): not written as the commit's tree listing, which it may only be part of. */
function pinnedListing(revision: string, listing: ListedFile[]): Resolved {
  if (!isSha1Hex(revision)) throw new ModelfetchError('ERR_USAGE', `A pinned listing needs a commit as revision, not ${JSON.stringify(revision)}`);
  return { commit: revision, listing, authoritative: false, fromHub: false };
}

/** The commit and its file listing, from the cache when it can answer, else from the hub. */
async function resolveListing({ repo, local, revision, offline, online }: ResolveInput): Promise<Resolved> {
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

async function planFiles(store: FileStore, files: ListedFile[]): Promise<{ missing: ListedFile[]; unlinked: ListedFile[] }> {
  const states = await Promise.all(files.map((file) => store.state(file)));
  return {
    missing: files.filter((_, i) => states[i] === 'missing'),
    unlinked: files.filter((_, i) => states[i] !== 'present'),
  };
}

function uniqueByDigest(files: ListedFile[]): ListedFile[] {
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
  const engine = await import('./transfer/index.js');
  const transferFiles = options.transferFiles ?? engine.transferFiles;
  const env = options.env ?? process.env;
  const xet = engine.xetSettings({ env, ...(options.xet !== undefined && { xet: options.xet }), cacheRoot: options.cacheDir ?? resolveCacheDir(env), ...(options.onXetFallback && { onFallback: options.onXetFallback }) });
  const totals = { bytesFetched: 0, bytesResumed: 0, bytesDeduplicated: 0, bytesBySource: { xet: 0, plain: 0 } };
  // Locks are taken in one global order, so processes waiting while holding some cannot wait in a cycle.
  let pending = [...files].sort((a, b) => (store.lockPath(a) < store.lockPath(b) ? -1 : 1));
  let wait = false;
  while (pending.length) {
    const held: Array<{ file: ListedFile; lock: HeldLock }> = [];
    const later: ListedFile[] = [];
    try {
      for (const file of pending) {
        const lock = wait ? await acquireLock(store.lockPath(file), options.signal ? { signal: options.signal } : {}) : await tryAcquireLock(store.lockPath(file));
        if (!lock) {
          later.push(file);
          continue;
        }
        if ((await store.hasContent(file)) || (await adoptFinishedTemp(store, file))) await lock.release();
        else held.push({ file, lock });
      }
      if (held.length) {
        for (const { file } of held) await mkdir(dirname(store.tempPath(file)), { recursive: true });
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
