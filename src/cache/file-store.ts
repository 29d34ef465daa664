import { commitBlob, verifyBlob } from './blob-store.js';
import type { RepoPaths } from './layout.js';
import { isSnapshotLinked, linkSnapshotFile } from './snapshot.js';
import { readRepoTreeListing, writeTreeListing } from './tree-listing.js';
import type { RepoFile } from '../core/types.js';

/**
 * Where pulled files go: the hub cache (content-addressed blobs + snapshot links), or a local dir
 * (real files + huggingface_hub's download metadata). `pull` drives either through this interface.
 */
export interface FileStore {
  /** The folder every path of this store lies below; nothing under it is reached through a link (safe-path.ts). */
  readonly root: string;
  /** Whether files with the same digest share one download (true for blobs). */
  readonly sharesContent: boolean;
  /** 'present' (complete, verified, in place), 'unlinked' (content there, entry missing) or 'missing'. */
  state(file: RepoFile): Promise<'present' | 'unlinked' | 'missing'>;
  /** Partial download (the engine keeps its journal beside it) and the cross-process lock for it. */
  tempPath(file: RepoFile): string;
  lockPath(file: RepoFile): string;
  /** Whether the content is complete now (another process may have just finished it). */
  hasContent(file: RepoFile): Promise<boolean>;
  /** Where the content of a file lies once committed, for stores that keep it in the hub cache (the Xet chunk cache points there). */
  contentPath?(file: RepoFile): string;
  /** Moves a transferred, verified temp file into place. */
  commit(file: RepoFile, tempPath: string): Promise<void>;
  /** Makes the file visible at its path once its content is in place. */
  link(file: RepoFile): Promise<void>;
  /** Records the commit's full listing (huggingface_hub's `trees/{commit}.json`). */
  writeListing(listing: RepoFile[]): Promise<void>;
}

/** The hub cache for one commit of one repo. */
export function cacheStore(repo: RepoPaths, commit: string): FileStore {
  const hasContent = async (file: RepoFile): Promise<boolean> => (await verifyBlob(repo, file.digest, file.size)) !== 'missing';
  return {
    root: repo.root,
    sharesContent: true,
    async state(file) {
      if (!file.digest.hex) return 'present'; // a copied snapshot file from an older cache, taken as it is
      if (!(await hasContent(file))) return 'missing';
      return (await isSnapshotLinked(repo, commit, file.path, file.digest, file.size)) ? 'present' : 'unlinked';
    },
    tempPath: (file) => repo.partial(file.digest),
    contentPath: (file) => repo.blob(file.digest),
    lockPath: (file) => repo.blobLock(file.digest),
    hasContent,
    async commit(file, tempPath) {
      await commitBlob(repo, file.digest, tempPath);
      await verifyBlob(repo, file.digest, file.size); // stamps a blob another process committed first
    },
    link: async (file) => void (await linkSnapshotFile(repo, commit, file.path, file.digest)),
    async writeListing(listing) {
      if (!(await readRepoTreeListing(repo, commit))) await writeTreeListing(repo.root, repo.treeListing(commit), listing);
    },
  };
}
