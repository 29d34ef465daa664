import { open, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { replaceWithTempFile } from './atomic.js';
import type { FileStore } from './file-store.js';
import { makeRealFolders } from './safe-path.js';
import { writeCacheFile } from './snapshot.js';
import { readTreeListing, writeTreeListing } from './tree-listing.js';
import type { RepoFile } from '../core/types.js';
import { assertCommit, assertSafeRelativePath, isSha1Hex } from '../core/validate.js';
import { fileMatchesDigest } from '../core/hash/file-digest.js';

/**
 * huggingface_hub's `local_dir` mode: real files at `{dir}/{path}`, and for each one
 * `{dir}/.cache/huggingface/download/{path}.metadata` = "{commit}\n{etag}\n{timestamp}\n", where the
 * etag is the file's digest (SHA-256 for LFS, git blob SHA-1 otherwise). A file whose metadata names
 * its digest and whose mtime is not newer than the metadata is complete, as huggingface_hub decides.
 * modelfetch's partial files and locks live in `{dir}/.cache/huggingface/modelfetch/`.
 *
 * A file `pull --dtype` converted in place is no upstream file, and its metadata never says it is:
 * the metadata is removed before the converted file replaces the original, and written afterwards
 * as `modelfetch-converted\n{sha256 of the converted bytes}\n{timestamp}`, which names no commit, so
 * huggingface_hub (which trusts a metadata entry whose commit is the one asked for) compares etags,
 * finds they differ, and downloads the upstream file again. What the file was converted from lives in
 * modelfetch's own note, `{dir}/.cache/huggingface/modelfetch/converted/{path}.json`: with it, the
 * same `pull --dtype` again finds the file done (no download, no second conversion).
 */
export interface LocalDirStoreOptions {
  /** Replace files edited since they were downloaded (huggingface_hub's `force_download`). */
  forceDownload?: boolean;
  /** Told about each edited file that is kept. */
  onKept?: (path: string) => void;
  /** A `pull --dtype`: a file converted from this upstream file to this dtype is complete. */
  converted?: ConversionTarget;
}

/** What a conversion turns files into: the dtype and the tensor patterns kept as they were. */
export interface ConversionTarget {
  dtype: string;
  keep: string[];
}

/** modelfetch's note of a file it converted in place. */
export interface ConversionNote extends ConversionTarget {
  format: 1;
  /** The upstream file it was made from. */
  upstream: { commit: string; etag: string; size: number };
  /** The converted file: SHA-256, size, and mtime (a rename keeps it), so a file changed since is noticed. */
  sha256: string;
  size: number;
  mtimeMs: number;
}

/** The first line of a converted file's metadata: where huggingface_hub expects a commit, one that is none. */
export const CONVERTED_METADATA_COMMIT = 'modelfetch-converted';

export class LocalDir {
  readonly root: string;
  private readonly meta: string;

  constructor(root: string) {
    this.root = resolve(root);
    this.meta = join(this.root, '.cache', 'huggingface');
  }

  file(path: string): string {
    return join(this.root, assertSafeRelativePath(path, 'local dir'));
  }

  metadata(path: string): string {
    return join(this.meta, 'download', `${assertSafeRelativePath(path, 'local dir')}.metadata`);
  }

  treeListing(commit: string): string {
    return join(this.meta, 'trees', `${assertCommit(commit, 'local dir')}.json`);
  }

  readListing(commit: string): Promise<RepoFile[] | undefined> {
    return readTreeListing(this.treeListing(commit));
  }

  /** Offline with a branch name: the commit of the only listing in this dir, if there is exactly one. */
  async onlyCommit(): Promise<string | undefined> {
    const names = (await readdir(join(this.meta, 'trees')).catch(() => [] as string[])).filter((n) => n.endsWith('.json')).map((n) => n.slice(0, -5));
    return names.length === 1 && isSha1Hex(names[0]!) ? names[0] : undefined;
  }

  private async readMetadata(path: string): Promise<{ commit: string; etag: string; timestamp: number } | undefined> {
    const raw = await readFile(this.metadata(path), 'utf8').catch(() => undefined);
    const [commit = '', etag = '', timestamp = ''] = raw?.split('\n') ?? [];
    const time = Number(timestamp.trim());
    return raw && Number.isFinite(time) ? { commit: commit.trim(), etag: etag.trim(), timestamp: time } : undefined;
  }

  private note(path: string): string {
    return join(this.meta, 'modelfetch', 'converted', `${assertSafeRelativePath(path, 'local dir')}.json`);
  }

  /** Where modelfetch keeps its partial files (downloads and conversions), on the dir's file system. */
  get partialDir(): string {
    return join(this.meta, 'modelfetch', 'partial');
  }

  /** A temp file named `name` among the partial files. */
  tempPath(name: string): string {
    return join(this.partialDir, name);
  }

  /** The note of `path`, when it says the file on disk now is `upstream` converted to `target`. */
  async convertedNote(path: string, upstream: Pick<RepoFile, 'digest' | 'size'>, target: ConversionTarget): Promise<ConversionNote | undefined> {
    const note = await readFile(this.note(path), 'utf8').then((text) => JSON.parse(text) as ConversionNote, () => undefined);
    if (note?.format !== 1 || note.upstream?.etag !== upstream.digest.hex || note.upstream.size !== upstream.size) return undefined;
    if (note.dtype !== target.dtype || [...note.keep].sort().join('\0') !== [...target.keep].sort().join('\0')) return undefined;
    const info = await stat(this.file(path)).catch(() => undefined);
    return info?.isFile() && info.size === note.size && info.mtimeMs === note.mtimeMs ? note : undefined;
  }

  /** Whether the file on disk is `file` as downloaded: its metadata names that etag and it was not changed since. */
  async holdsUpstream(file: Pick<RepoFile, 'path' | 'digest' | 'size'>): Promise<boolean> {
    const [info, metadata] = await Promise.all([stat(this.file(file.path)).catch(() => undefined), this.readMetadata(file.path)]);
    return !!info?.isFile() && info.size === file.size && metadata?.etag === file.digest.hex && info.mtimeMs / 1000 - 1 <= metadata.timestamp;
  }

  /**
   * Puts a converted file (already checked) in place of the upstream one, in an order where a kill
   * at any point leaves either file whole and no metadata claiming the converted one is upstream:
   * metadata removed, note written, file renamed over the original, metadata marked.
   */
  async replaceWithConverted(path: string, tempPath: string, note: Omit<ConversionNote, 'format' | 'mtimeMs'>): Promise<void> {
    const info = await stat(tempPath);
    if (info.size !== note.size) throw new Error(`${tempPath} has ${info.size} bytes, expected ${note.size}`);
    await rm(this.metadata(path), { force: true });
    await writeCacheFile(this.root, this.note(path), `${JSON.stringify({ format: 1, ...note, mtimeMs: info.mtimeMs } satisfies ConversionNote, null, 2)}\n`);
    await replaceWithTempFile(this.root, tempPath, this.file(path), `moving the converted ${path} into ${this.root}`);
    await this.markConverted(path, note.sha256);
  }

  /** Metadata naming no commit and the converted bytes' SHA-256 (idempotent: a re-run repairs a kill after the rename). */
  async markConverted(path: string, sha256: string): Promise<void> {
    const metadata = await this.readMetadata(path);
    if (metadata?.commit === CONVERTED_METADATA_COMMIT && metadata.etag === sha256) return;
    await this.writeMetadata(path, CONVERTED_METADATA_COMMIT, sha256);
  }

  private async writeMetadata(path: string, commit: string, etag: string): Promise<void> {
    await makeRealFolders(this.root, this.meta);
    // huggingface_hub keeps .cache/huggingface out of git.
    await writeFileIfAbsent(join(this.meta, '.gitignore'), '*');
    await writeCacheFile(this.root, this.metadata(path), `${commit}\n${etag}\n${Date.now() / 1000}\n`);
  }

  /**
   * The store for one commit. A file is untouched when its metadata is not older than its mtime
   * (huggingface_hub's rule): then the metadata's etag says whether it is this commit's version, or
   * an older download to replace. A file changed since (or never recorded) is hashed once; when its
   * bytes are not this commit's, the user edited it: it is kept, and `onKept` told, unless `forceDownload`.
   */
  store(commit: string, options: LocalDirStoreOptions = {}): FileStore {
    const state = async (file: RepoFile): Promise<'present' | 'missing'> => {
      const info = await stat(this.file(file.path)).catch(() => undefined);
      if (!info?.isFile()) return 'missing';
      if (options.converted && (await this.convertedNote(file.path, file, options.converted))) return 'present';
      const metadata = await this.readMetadata(file.path);
      if (metadata && info.mtimeMs / 1000 - 1 <= metadata.timestamp) return metadata.etag === file.digest.hex && info.size === file.size ? 'present' : 'missing';
      // No (or outdated) metadata: the bytes decide, once.
      const same = info.size === file.size && (await fileMatchesDigest(this.file(file.path), file.digest));
      if (same) {
        await this.writeMetadata(file.path, commit, file.digest.hex);
        return 'present';
      }
      if (options.forceDownload) return 'missing';
      options.onKept?.(file.path);
      return 'present';
    };
    const work = join(this.meta, 'modelfetch');
    return {
      root: this.root,
      sharesContent: false,
      state,
      tempPath: (file) => this.tempPath(`${file.digest.hex}-${encodeURIComponent(file.path)}.part`.slice(-240)),
      lockPath: (file) => join(work, 'locks', `${file.digest.hex}-${encodeURIComponent(file.path)}.lock`.slice(-240)),
      hasContent: async (file) => (await state(file)) === 'present',
      commit: async (file, tempPath) => {
        await replaceWithTempFile(this.root, tempPath, this.file(file.path), `moving ${file.path} into ${this.root}`);
        await rm(this.note(file.path), { force: true }); // the upstream file again: no longer converted
        await this.writeMetadata(file.path, commit, file.digest.hex);
      },
      link: async () => {},
      writeListing: async (listing) => {
        if (!(await this.readListing(commit))) await writeTreeListing(this.root, this.treeListing(commit), listing);
      },
    };
  }
}

async function writeFileIfAbsent(path: string, content: string): Promise<void> {
  const handle = await open(path, 'wx').catch(() => undefined);
  if (!handle) return;
  try {
    await handle.writeFile(content);
  } finally {
    await handle.close();
  }
}
