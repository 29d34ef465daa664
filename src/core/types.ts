/** What every source (hf, modelscope, url) resolves a user's reference to. Sources share nothing else. */

export type RepoType = 'model' | 'dataset' | 'space';

/** How a file's content is named and checked: LFS files by SHA-256, small git files by git blob SHA-1. */
export interface FileDigest {
  algorithm: 'sha256' | 'git-sha1';
  /** Lower-case hex, validated (64 chars for sha256, 40 for git-sha1). */
  hex: string;
}

export interface RemoteFile {
  /** Repo-relative POSIX path, validated safe (no `..`, not absolute, no backslash or drive letter). */
  path: string;
  size: number;
  digest: FileDigest;
  /** Download URLs; more than one means mirrors of the same bytes. */
  urls: string[];
  /** Strong ETag as the hub reports it, when known. */
  etag?: string;
  /** The commit the source lists for this file, when it lists one per file (ModelScope). */
  revision?: string;
}

export interface Snapshot {
  source: 'hf' | 'modelscope' | 'url';
  repoType: RepoType;
  /** `org/name` */
  repoId: string;
  /** The revision the user asked for (branch, tag or commit). */
  revision: string;
  /** The immutable commit the revision resolved to (40-hex for the Hub). */
  commit: string;
  files: RemoteFile[];
}
