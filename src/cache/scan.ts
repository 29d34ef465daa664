import type { Dirent, Stats } from 'node:fs';
import { lstat, readdir, readFile, readlink, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { fromSystemError, ModelfetchError } from '../core/errors.js';
import type { FileDigest, RepoType } from '../core/types.js';
import { parseRepoFolderName, RepoPaths } from './layout.js';
import { resolveCacheDir } from '../core/env.js';
import { readLastUsed } from './usage.js';
import { isSha1Hex, isSha256Hex } from '../core/validate.js';

/**
 * Reads a cache as it is on disk (written by modelfetch or by huggingface_hub) into plain data:
 * repos, revisions with the refs that point at them, blobs, sizes and times. Never writes, never
 * throws on odd entries: what does not belong is listed in `issues` instead.
 */

export type CacheIssueKind =
  /** An entry that is not part of the layout (unknown file or folder, a blob not named by a digest). */
  | 'foreign'
  /** A leftover temp file (`*.incomplete`, `*.tmp`) in blobs/ or a snapshot. */
  | 'temp'
  /** A snapshot link whose blob is missing. */
  | 'dangling'
  /** A snapshot link that points outside its repo's blobs/. */
  | 'outside'
  /** A ref that is malformed or points at a revision that is not in the cache. */
  | 'ref'
  /** A symlink (or a file) where the layout has a folder: never followed, never acted through. */
  | 'link';

export interface CacheIssue {
  kind: CacheIssueKind;
  /** Absolute path of the entry. */
  path: string;
  /** Repo folder (`models--org--name`) it belongs to, when inside one. */
  folder?: string;
  detail: string;
}

export interface ScannedFile {
  /** Path inside the snapshot (POSIX separators). */
  path: string;
  /** Size of the content it resolves to; 0 when it resolves to nothing. */
  size: number;
  /** Name of the blob it links to (absent for copies and broken links). */
  blob?: string;
  /** A plain file in the snapshot (copy mode) instead of a link. */
  copy?: boolean;
}

export interface ScannedRevision {
  commit: string;
  refs: string[];
  path: string;
  /** Bytes of distinct content this revision uses (shared blobs counted once). */
  sizeOnDisk: number;
  nbFiles: number;
  lastModified: number;
  /**
   * Last use (ms): max of modelfetch's record and the atime of the content only this revision uses
   * (its own blobs, its copies; all its blobs when it shares every one); the snapshot's mtime when
   * neither is known. A blob shared with another revision says nothing about which one was used.
   * (Link atimes are no signal either: reading a link, as any scan does, updates it.)
   */
  lastUsed: number;
  /** Names of the blobs its links resolve to. */
  blobs: string[];
  files: ScannedFile[];
}

export interface ScannedBlob {
  name: string;
  /** The digest its name encodes, or undefined for a name that is not a digest (then it is foreign). */
  digest?: FileDigest;
  path: string;
  size: number;
  lastAccessed: number;
  lastModified: number;
}

export interface ScannedRepo {
  repoType: RepoType;
  repoId: string;
  folder: string;
  path: string;
  /** Bytes of the repo on disk: every blob once, plus snapshot copies. */
  sizeOnDisk: number;
  nbFiles: number;
  lastAccessed: number;
  lastModified: number;
  /** ref name -> commit */
  refs: Record<string, string>;
  revisions: ScannedRevision[];
  /** Digest-named blobs in blobs/ (foreign files there are in issues, not here). */
  blobs: ScannedBlob[];
}

export interface CacheScan {
  root: string;
  repos: ScannedRepo[];
  /** Bytes on disk over all repos; content hard-linked between repos counted once. */
  sizeOnDisk: number;
  issues: CacheIssue[];
}

export interface ScanOptions {
  /** Cache root; default from the environment (HF_HUB_CACHE, HF_HOME…). */
  cacheDir?: string;
  env?: NodeJS.ProcessEnv;
  /** Only these repos (`org/name` or a folder name); all when absent or empty. */
  repos?: string[];
  repoType?: RepoType;
}

const TEMP_NAME = /(\.incomplete|\.tmp|\.part|\.lock)$/;

const LAYOUT_FOLDERS = ['blobs', 'snapshots', 'refs', '.no_exist', 'trees'];
/** modelfetch's state folders of a repo (layout.ts: RepoPaths.stateDir and below). */
const STATE_FOLDERS = ['partial', 'stamps', 'used', 'in-use', 'locks'];
const LINKED_FOLDER = 'a symbolic link (or file) where the cache layout has a folder: never followed or acted through; remove it';

type Note = (kind: CacheIssueKind, path: string, detail: string) => void;

/** Whether `path` is a real folder or absent; anything else is noted as a 'link' issue. */
async function isRealFolderOrAbsent(path: string, note: Note): Promise<boolean> {
  const stats = await lstatOrUndefined(path);
  if (!stats || stats.isDirectory()) return true;
  note('link', path, LINKED_FOLDER);
  return false;
}

/** The digest a blob name encodes: 64-hex is SHA-256, 40-hex is a git blob SHA-1. */
export function digestFromBlobName(name: string): FileDigest | undefined {
  if (isSha256Hex(name)) return { algorithm: 'sha256', hex: name };
  if (isSha1Hex(name)) return { algorithm: 'git-sha1', hex: name };
  return undefined;
}

async function entries(dir: string): Promise<Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw fromSystemError(error, `reading ${dir}`);
  }
}

async function lstatOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch {
    return undefined;
  }
}

/** Whether a repo matches one of the user's selectors (`org/name` or `models--org--name`). */
function selected(folder: string, repoId: string, repoType: RepoType, options: ScanOptions): boolean {
  if (options.repoType && options.repoType !== repoType) return false;
  if (!options.repos || options.repos.length === 0) return true;
  return options.repos.some((want) => want === repoId || want === folder);
}

export async function scanCache(options: ScanOptions = {}): Promise<CacheScan> {
  const root = options.cacheDir ?? resolveCacheDir(options.env);
  const issues: CacheIssue[] = [];
  // The root itself may be a link (a cache moved to a bigger disk); nothing below it is followed.
  const rootStat = await stat(root).catch(() => undefined);
  if (!rootStat) return { root, repos: [], sizeOnDisk: 0, issues };
  if (!rootStat.isDirectory()) {
    throw new ModelfetchError('ERR_USAGE', `Cache directory ${root} is not a directory`, { hint: 'Point --cache-dir (or HF_HUB_CACHE) at the hub cache folder.' });
  }
  const repos: ScannedRepo[] = [];
  const seen = new Set<string>();
  let sizeOnDisk = 0;
  const locks = join(root, '.locks');
  const rootNote: Note = (kind, path, detail) => void issues.push({ kind, path, detail });
  const stateUsable = (await isRealFolderOrAbsent(locks, rootNote)) && (await isRealFolderOrAbsent(join(locks, 'modelfetch'), rootNote));
  for (const entry of (await entries(root)).sort((a, b) => a.name.localeCompare(b.name))) {
    // huggingface_hub's lock folder (modelfetch's state lives inside it) and its cache marker.
    if (entry.name === '.locks' || entry.name === 'CACHEDIR.TAG') continue;
    const parsed = entry.isDirectory() ? parseRepoFolderName(entry.name) : undefined;
    if (!parsed) {
      if (!options.repos?.length) issues.push({ kind: 'foreign', path: join(root, entry.name), detail: 'not a repo folder of the hub cache' });
      continue;
    }
    if (!selected(entry.name, parsed.repoId, parsed.repoType, options)) continue;
    const paths = new RepoPaths(root, parsed.repoType, parsed.repoId);
    const repo = await scanRepo(paths, issues);
    if (stateUsable) await checkStateFolders(paths, (kind, path, detail) => void issues.push({ kind, path, folder: paths.folder, detail }));
    repos.push(repo.scanned);
    for (const [key, size] of repo.inodes) {
      if (seen.has(key)) continue;
      seen.add(key);
      sizeOnDisk += size;
    }
  }
  return { root, repos, sizeOnDisk, issues };
}

/** modelfetch's state folders of a repo, and huggingface_hub's lock folder: links there are reported. */
async function checkStateFolders(paths: RepoPaths, note: Note): Promise<void> {
  await isRealFolderOrAbsent(join(paths.root, '.locks', paths.folder), note);
  if (!(await isRealFolderOrAbsent(paths.stateDir, note))) return;
  for (const name of STATE_FOLDERS) await isRealFolderOrAbsent(join(paths.stateDir, name), note);
}

interface RepoScanResult {
  scanned: ScannedRepo;
  /** dev:ino -> size, to count content once over the whole cache. */
  inodes: Map<string, number>;
}

async function scanRepo(paths: RepoPaths, issues: CacheIssue[]): Promise<RepoScanResult> {
  const folder = paths.folder;
  const inodes = new Map<string, number>();
  const note = (kind: CacheIssueKind, path: string, detail: string): void => void issues.push({ kind, path, folder, detail });

  // A layout folder that is a link is reported and never read: its entries are not this repo's.
  const linked = new Set<string>();
  for (const entry of await entries(paths.dir)) {
    if (!LAYOUT_FOLDERS.includes(entry.name)) note('foreign', join(paths.dir, entry.name), 'not part of the cache layout');
    else if (!entry.isDirectory()) {
      note('link', join(paths.dir, entry.name), LINKED_FOLDER);
      linked.add(entry.name);
    }
  }
  const layoutEntries = async (name: string): Promise<Dirent[]> => (linked.has(name) ? [] : entries(join(paths.dir, name)));

  const blobs = new Map<string, ScannedBlob>();
  for (const entry of await layoutEntries('blobs')) {
    const path = join(paths.blobsDir, entry.name);
    const digest = digestFromBlobName(entry.name);
    const stats = await lstatOrUndefined(path);
    if (!stats) continue;
    if (!entry.isFile() || !digest) {
      const temp = entry.isFile() && TEMP_NAME.test(entry.name);
      note(temp ? 'temp' : 'foreign', path, temp ? 'leftover temporary file' : entry.isFile() ? 'file in blobs/ not named by a digest' : 'not a regular file');
      if (entry.isFile()) inodes.set(`${stats.dev}:${stats.ino}`, stats.size);
      continue;
    }
    inodes.set(`${stats.dev}:${stats.ino}`, stats.size);
    blobs.set(entry.name, { name: entry.name, digest, path, size: stats.size, lastAccessed: stats.atimeMs, lastModified: stats.mtimeMs });
  }

  const refs: Record<string, string> = {};
  const refsByCommit = new Map<string, string[]>();
  const refsDir = join(paths.dir, 'refs');
  for (const file of linked.has('refs') ? [] : await walkFiles(refsDir)) {
    const name = relative(refsDir, file).split(sep).join('/');
    const commit = (await readFile(file, 'utf8').catch(() => '')).trim();
    if (!isSha1Hex(commit) && !isSha256Hex(commit)) {
      note('ref', file, `ref ${name} does not hold a commit id`);
      continue;
    }
    refs[name] = commit;
    refsByCommit.set(commit, [...(refsByCommit.get(commit) ?? []), name]);
  }

  const revisions: ScannedRevision[] = [];
  const snapshotsDir = join(paths.dir, 'snapshots');
  for (const entry of await layoutEntries('snapshots')) {
    const dir = join(snapshotsDir, entry.name);
    const commitName = isSha1Hex(entry.name) || isSha256Hex(entry.name);
    if (commitName && !entry.isDirectory()) {
      note('link', dir, LINKED_FOLDER);
      continue;
    }
    if (!entry.isDirectory() || !commitName) {
      note('foreign', dir, 'snapshot entry not named by a commit id');
      continue;
    }
    revisions.push(await scanRevision(paths, entry.name, dir, blobs, refsByCommit.get(entry.name) ?? [], inodes, note));
  }
  for (const [name, commit] of Object.entries(refs)) {
    if (!revisions.some((r) => r.commit === commit)) note('ref', join(refsDir, ...name.split('/')), `ref ${name} points at ${commit}, which is not in the cache`);
  }
  const users = new Map<string, number>();
  for (const revision of revisions) for (const blob of revision.blobs) users.set(blob, (users.get(blob) ?? 0) + 1);
  for (const revision of revisions) {
    const own = revision.blobs.filter((name) => users.get(name) === 1);
    const accessed = (own.length > 0 ? own : revision.blobs).reduce((max, name) => Math.max(max, blobs.get(name)?.lastAccessed ?? 0), 0);
    revision.lastUsed = Math.max(revision.lastUsed, accessed) || revision.lastModified;
  }
  revisions.sort((a, b) => b.lastUsed - a.lastUsed || a.commit.localeCompare(b.commit));

  const blobList = [...blobs.values()].sort((a, b) => a.name.localeCompare(b.name));
  const sizeOnDisk = [...inodes.values()].reduce((sum, size) => sum + size, 0);
  const dirStats = await lstatOrUndefined(paths.dir);
  const times = (pick: (b: ScannedBlob) => number): number => blobList.reduce((max, b) => Math.max(max, pick(b)), 0) || (dirStats?.mtimeMs ?? 0);
  return {
    inodes,
    scanned: {
      repoType: paths.repoType,
      repoId: paths.repoId,
      folder,
      path: paths.dir,
      sizeOnDisk,
      nbFiles: new Set(revisions.flatMap((r) => r.files.map((f) => f.blob ?? `${r.commit}/${f.path}`))).size,
      lastAccessed: times((b) => b.lastAccessed),
      lastModified: times((b) => b.lastModified),
      refs,
      revisions,
      blobs: blobList,
    },
  };
}

async function scanRevision(
  paths: RepoPaths,
  commit: string,
  dir: string,
  blobs: Map<string, ScannedBlob>,
  refs: string[],
  inodes: Map<string, number>,
  note: (kind: CacheIssueKind, path: string, detail: string) => void,
): Promise<ScannedRevision> {
  const files: ScannedFile[] = [];
  const used = new Map<string, number>();
  let copiesAccessed = 0;
  for (const file of await walkFiles(dir, (path, detail) => note('foreign', path, detail))) {
    const path = relative(dir, file).split(sep).join('/');
    const stats = await lstatOrUndefined(file);
    if (!stats) continue;
    if (stats.isFile()) {
      if (TEMP_NAME.test(file) && basename(file).includes('.mf-')) {
        note('temp', file, 'leftover temporary file');
        continue;
      }
      // A copy (where links fail): its own bytes, counted once per inode.
      inodes.set(`${stats.dev}:${stats.ino}`, stats.size);
      used.set(`copy:${stats.dev}:${stats.ino}`, stats.size);
      copiesAccessed = Math.max(copiesAccessed, stats.atimeMs);
      files.push({ path, size: stats.size, copy: true });
      continue;
    }
    const target = await readlink(file).catch(() => undefined);
    if (target === undefined) continue; // replaced while scanning
    const resolved = resolve(dirname(file), target);
    if (dirname(resolved) !== paths.blobsDir) {
      note('outside', file, `links to ${target}, outside ${paths.folder}/blobs`);
      files.push({ path, size: 0 });
      continue;
    }
    const blob = blobs.get(basename(resolved));
    if (!blob) {
      note('dangling', file, `links to ${target}, which does not exist`);
      files.push({ path, size: 0 });
      continue;
    }
    used.set(blob.name, blob.size);
    files.push({ path, size: blob.size, blob: blob.name });
  }
  files.sort((a, b) => a.path.localeCompare(b.path));
  const dirStats = await lstatOrUndefined(dir);
  return {
    commit,
    refs: refs.sort(),
    path: dir,
    sizeOnDisk: [...used.values()].reduce((sum, size) => sum + size, 0),
    nbFiles: files.length,
    lastModified: dirStats?.mtimeMs ?? 0,
    // Completed by scanRepo, which knows which blobs are shared.
    lastUsed: Math.max((await readLastUsed(paths, commit)) ?? 0, copiesAccessed),
    blobs: [...used.keys()].filter((key) => !key.startsWith('copy:')).sort(),
    files,
  };
}

/** Files and symlinks below `dir` (symlinked folders are not followed). Other entry types are reported. */
async function walkFiles(dir: string, odd?: (path: string, detail: string) => void): Promise<string[]> {
  const out: string[] = [];
  const visit = async (current: string): Promise<void> => {
    for (const entry of await entries(current)) {
      const path = join(current, entry.name);
      if (entry.isDirectory()) await visit(path);
      else if (entry.isFile() || entry.isSymbolicLink()) out.push(path);
      else odd?.(path, 'not a file, link or folder');
    }
  };
  await visit(dir);
  return out.sort();
}
