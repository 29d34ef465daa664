/** What every source (hf, modelscope, url) resolves a user's reference to. Sources share nothing else. */

export type RepoType = 'model' | 'dataset' | 'space';

/** How a file's content is named and checked: LFS files by SHA-256, small git files by git blob SHA-1. */
export interface FileDigest {
  algorithm: 'sha256' | 'git-sha1';
  /** Lower-case hex, validated (64 chars for sha256, 40 for git-sha1). */
  hex: string;
}

/**
 * One file of a repo at one commit, as a listing names it: the one shape that sources return, the
 * cache's tree listing stores, `pull` selects and fetches, and the mirror serves as Hub JSON.
 * Optional fields are what only some listings know.
 */
export interface RepoFile {
  /** Repo-relative POSIX path, validated safe (no `..`, not absolute, no backslash or drive letter). */
  path: string;
  size: number;
  digest: FileDigest;
  /** The git blob id (of the LFS pointer for LFS files), when the listing gives it. */
  blobId?: string;
  /** The Xet file hash, when the Hub stores the file in Xet (tree `xetHash`). */
  xetHash?: string;
  /** The commit the source lists for this file, when it lists one per file (ModelScope). */
  revision?: string;
  /** Download URLs, when the source names them; more than one means mirrors of the same bytes. */
  urls?: string[];
}

/** A revision resolved to a commit and its files (what `lock` records). */
export interface Snapshot {
  source: 'hf' | 'modelscope' | 'url';
  repoType: RepoType;
  /** `org/name` */
  repoId: string;
  /** The revision the user asked for (branch, tag or commit). */
  revision: string;
  /** The immutable commit the revision resolved to (40-hex for the Hub). */
  commit: string;
  files: Array<RepoFile & { urls: string[] }>;
}
