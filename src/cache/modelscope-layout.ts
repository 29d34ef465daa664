import { readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { replaceWithTempFile } from './atomic.js';
import { fingerprintOf, sameFingerprint, type Fingerprint } from './blob-store.js';
import { fileMatchesDigest } from '../core/hash/file-digest.js';
import type { FileStore } from './file-store.js';
import { assertRepoId } from '../core/repo-ref.js';
import { writeCacheFile } from './snapshot.js';
import { readTreeListing, writeTreeListing } from './tree-listing.js';
import type { RepoFile } from '../core/types.js';
import { assertSafeRelativePath, isSha1Hex } from '../core/validate.js';

/**
 * The cache layout the `modelscope` library reads, and the one place that knows it:
 *
 *   {MODELSCOPE_CACHE}/models/{org}/{name with "." as "___"}/{path}   the files themselves
 *   …/{name}/.mdl   pickle {'id': 'org/name'}                         which model the folder holds
 *   …/{name}/.msc   pickle [{'Path': path, 'Revision': commit}, …]    which files are complete, at which commit
 *   …/{name}/.mv    text "Revision:{rev},CreatedAt:{unix time}"        the revision last downloaded
 *
 * modelscope treats a file as cached when `.msc` lists its path at the commit it asks for and the
 * file is there (newer versions also compare its SHA-256), so `.msc` is written last.
 * modelfetch's own state (partial downloads, locks, stamps, listings) lives in
 * {MODELSCOPE_CACHE}/.modelfetch/{org}/{name}/, outside `models/`, on the same file system, so a
 * finished file is renamed into place.
 */

/** MODELSCOPE_CACHE, else ~/.cache/modelscope/hub. */
export function resolveModelScopeCache(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  return env.MODELSCOPE_CACHE || join(home, '.cache', 'modelscope', 'hub');
}

export class ModelScopePaths {
  readonly dir: string;
  readonly stateDir: string;

  constructor(
    readonly root: string,
    readonly repoId: string,
  ) {
    const [org, name] = assertRepoId(repoId).split('/');
    // modelscope stores `Qwen2.5` as `Qwen2___5` (a dot in a folder name breaks Python imports).
    const folder = name!.replaceAll('.', '___');
    this.dir = join(root, 'models', org!, folder);
    this.stateDir = join(root, '.modelfetch', org!, folder);
  }

  /** The id `.mdl` records: org and the folder name, as modelscope writes it. */
  get metaId(): string {
    return `${this.repoId.split('/')[0]}/${this.dir.split(/[\\/]/).at(-1)}`;
  }

  file(path: string): string {
    return join(this.dir, assertSafeRelativePath(path, 'ModelScope file'));
  }

  get meta(): string {
    return join(this.dir, '.mdl');
  }

  get keys(): string {
    return join(this.dir, '.msc');
  }

  get version(): string {
    return join(this.dir, '.mv');
  }

  /** A partial download of one file (the engine's journal sits beside it). */
  partial(file: RepoFile): string {
    return join(this.stateDir, 'partial', `${fileKey(file)}.part`);
  }

  /** The cross-process download lock of one file. */
  lock(file: RepoFile): string {
    return join(this.stateDir, 'locks', `${fileKey(file)}.lock`);
  }

  /** Stat fingerprint of a file at the time its bytes were checked. */
  stamp(path: string): string {
    return join(this.stateDir, 'stamps', `${encodeURIComponent(assertSafeRelativePath(path, 'ModelScope file'))}.json`.slice(-240));
  }

  /** The full listing of a commit (huggingface_hub's tree format), so a later pull knows it offline. */
  treeListing(commit: string): string {
    return join(this.stateDir, 'trees', `${isSha1Hex(commit) ? commit : 'invalid'}.json`);
  }

  /** The commit ModelScope listed for each file of `commit` (what `.msc` records). */
  revisions(commit: string): string {
    return join(this.stateDir, 'trees', `${isSha1Hex(commit) ? commit : 'invalid'}.revisions.json`);
  }
}

function fileKey(file: RepoFile): string {
  return `${file.digest.hex}-${encodeURIComponent(assertSafeRelativePath(file.path, 'ModelScope file'))}`.slice(0, 240);
}

interface FileStamp extends Fingerprint {
  sha256: string;
}

/**
 * One model in the modelscope layout, as `pull` drives it (the same surface as a local dir): real
 * files at their paths, verified once and then known by a stat stamp, and the metadata that makes
 * modelscope treat them as complete written after every file is in place.
 */
export class ModelScopeFolder {
  constructor(
    readonly paths: ModelScopePaths,
    private readonly revision: string,
  ) {}

  get root(): string {
    return this.paths.dir;
  }

  /** Offline, a branch name cannot be resolved here: pass the commit. */
  async onlyCommit(): Promise<string | undefined> {
    return undefined;
  }

  /** The listing a previous pull recorded for `commit`, with each file's own revision. */
  async readListing(commit: string): Promise<RepoFile[] | undefined> {
    const listing = await readTreeListing(this.paths.treeListing(commit));
    if (!listing) return undefined;
    const revisions = JSON.parse((await readFile(this.paths.revisions(commit), 'utf8').catch(() => undefined)) ?? '{}') as Record<string, unknown>;
    return listing.map((f) => {
      const revision = revisions[f.path];
      return typeof revision === 'string' && isSha1Hex(revision) ? { ...f, revision } : f;
    });
  }

  store(commit: string): FileStore {
    const paths = this.paths;
    const stampNow = async (file: RepoFile): Promise<void> => {
      const info = await stat(paths.file(file.path));
      const stamp: FileStamp = { sha256: file.digest.hex, ...fingerprintOf(info) };
      await writeCacheFile(paths.root, paths.stamp(file.path), JSON.stringify(stamp));
    };
    /** Whether the file is there with the size and stamp of this content (no hashing). */
    const stamped = async (file: RepoFile): Promise<boolean | 'unstamped'> => {
      const info = await stat(paths.file(file.path)).catch(() => undefined);
      if (!info?.isFile() || info.size !== file.size) return false;
      const stamp = JSON.parse((await readFile(paths.stamp(file.path), 'utf8').catch(() => undefined)) ?? 'null') as Partial<FileStamp> | null;
      return (stamp && stamp.sha256 === file.digest.hex && sameFingerprint(stamp, fingerprintOf(info))) || 'unstamped';
    };
    const state = async (file: RepoFile): Promise<'present' | 'missing'> => {
      const known = await stamped(file);
      if (known !== 'unstamped') return known ? 'present' : 'missing';
      // Written by the modelscope library, or changed since: the bytes decide, once.
      if (!(await fileMatchesDigest(paths.file(file.path), file.digest))) return 'missing';
      await stampNow(file);
      return 'present';
    };
    return {
      root: paths.root,
      sharesContent: false,
      state,
      tempPath: (file) => paths.partial(file),
      lockPath: (file) => paths.lock(file),
      hasContent: async (file) => (await state(file)) === 'present',
      commit: async (file, tempPath) => {
        // modelscope keeps one version per path: a newer revision's file replaces the old one.
        await replaceWithTempFile(paths.root, tempPath, paths.file(file.path), `moving ${file.path} into ${paths.dir}`);
        await stampNow(file);
      },
      link: async () => {},
      writeListing: async (listing) => {
        if (!(await this.readListing(commit))) {
          await writeCacheFile(paths.root, paths.revisions(commit), JSON.stringify(Object.fromEntries(listing.flatMap((f) => (f.revision ? [[f.path, f.revision]] : [])))));
          await writeTreeListing(paths.root, paths.treeListing(commit), listing);
        }
        // Only files known to hold this commit's bytes; a same-named file of another revision is not listed.
        const present = await Promise.all(listing.map(async (f) => (await stamped(f)) === true));
        await writeModelScopeMetadata(paths, this.revision, commit, listing.filter((_, i) => present[i]));
      },
    };
  }
}

type PickleValue = string | PickleValue[] | { [key: string]: PickleValue };

/**
 * Python pickle (protocol 2) of strings, lists and dicts: all `.mdl` and `.msc` hold. Written by hand
 * because nothing else is needed; Python's `pickle.load` reads it.
 */
export function encodePickle(value: PickleValue): Buffer {
  const parts: Buffer[] = [Buffer.from([0x80, 0x02])];
  const emit = (v: PickleValue): void => {
    if (typeof v === 'string') {
      const bytes = Buffer.from(v, 'utf8');
      const length = Buffer.alloc(4);
      length.writeUInt32LE(bytes.length);
      parts.push(Buffer.from('X'), length, bytes);
    } else if (Array.isArray(v)) {
      parts.push(Buffer.from(']('));
      v.forEach(emit);
      parts.push(Buffer.from('e'));
    } else {
      parts.push(Buffer.from('}('));
      for (const [key, item] of Object.entries(v)) {
        emit(key);
        emit(item);
      }
      parts.push(Buffer.from('u'));
    }
  };
  emit(value);
  parts.push(Buffer.from('.'));
  return Buffer.concat(parts);
}

/**
 * Marks the download complete for modelscope: `.mdl`, `.mv`, then `.msc` (last: it is what
 * modelscope trusts), each file at the commit ModelScope lists for it (else `commit`).
 */
export async function writeModelScopeMetadata(paths: ModelScopePaths, revision: string, commit: string, files: Array<{ path: string; revision?: string }>, now: number = Date.now()): Promise<void> {
  await writeCacheFile(paths.root, paths.meta, encodePickle({ id: paths.metaId }));
  await writeCacheFile(paths.root, paths.version, `Revision:${revision},CreatedAt:${Math.floor(now / 1000)}`);
  await writeCacheFile(paths.root, paths.keys, encodePickle(files.map((f) => ({ Path: f.path, Revision: f.revision ?? commit }))));
}
