import { createReadStream } from 'node:fs';
import { lstat, readdir, realpath, stat } from 'node:fs/promises';
import { basename, dirname, join, sep } from 'node:path';
import { RepoPaths } from '../cache/layout.js';
import { scanCache } from '../cache/scan.js';
import { readRef } from '../cache/snapshot.js';
import { readLastUsed } from '../cache/usage.js';
import { isSha1Hex, isSha256Hex } from '../core/validate.js';
import { createDigestHash } from '../core/hash/file-digest.js';
import type { FileDigest, RepoType } from '../core/types.js';

/**
 * A read-only view of a huggingface_hub cache for serving: which commit a revision names, which
 * files a snapshot holds and where their bytes are. Every file it hands out has been checked with
 * realpath to lie inside the cache root, so a symlink planted in a snapshot can never leak a file
 * from elsewhere on the machine.
 */

export interface CachedFile {
  /** Repo-relative path. */
  path: string;
  size: number;
  digest: FileDigest;
  /** Real path of the content, inside the cache root. */
  file: string;
}

export interface CachedRepo {
  repoType: RepoType;
  repoId: string;
  /** Bytes of all blobs. */
  size: number;
  commits: string[];
  refs: Record<string, string>;
  /** Last modification of anything in the repo folder, ms since the epoch. */
  lastModified: number;
  /** Most recent recorded use of any of its revisions (pull, serve, run), if any. */
  lastUsed?: number;
}

const COMMIT = /^[0-9a-f]{40}$/;

export class CacheView {
  private realRoot: string | undefined;
  /** Digests of copied (non-symlink) snapshot files, keyed by path + size + mtime: hashing is paid once. */
  private readonly hashedCopies = new Map<string, FileDigest>();

  constructor(readonly root: string) {}

  repo(repoType: RepoType, repoId: string): RepoPaths {
    return new RepoPaths(this.root, repoType, repoId);
  }

  private async rootReal(): Promise<string | undefined> {
    if (this.realRoot) return this.realRoot;
    try {
      this.realRoot = await realpath(this.root);
    } catch {
      return undefined;
    }
    return this.realRoot;
  }

  /** Real path of `path` if it exists and lies inside the cache root; undefined otherwise. */
  async insideRoot(path: string): Promise<string | undefined> {
    const root = await this.rootReal();
    if (!root) return undefined;
    const real = await realpath(path).catch(() => undefined);
    if (!real || !real.startsWith(root + sep)) return undefined;
    return real;
  }

  async repoExists(repo: RepoPaths): Promise<boolean> {
    return (await this.insideRoot(repo.dir)) !== undefined;
  }

  /**
   * The commit `revision` names in the cache: a commit with a snapshot folder, or a ref.
   * `HEAD` is the default branch, as the Hub's API treats it.
   */
  async resolveCommit(repo: RepoPaths, revision: string): Promise<string | undefined> {
    if (COMMIT.test(revision)) {
      return (await this.insideRoot(repo.snapshotDir(revision))) ? revision : undefined;
    }
    const commit = await readRef(repo, revision === 'HEAD' ? 'main' : revision).catch(() => undefined);
    if (!commit) return undefined;
    return (await this.insideRoot(repo.snapshotDir(commit))) ? commit : undefined;
  }

  /**
   * One file of a snapshot, or undefined when it is missing or its link leaves the repo's own
   * folder (so neither a file elsewhere on the machine nor a partial download under .locks/ is served).
   */
  async locate(repo: RepoPaths, commit: string, path: string): Promise<CachedFile | undefined> {
    const snapshotFile = repo.snapshotFile(commit, path);
    const real = await this.insideRoot(snapshotFile);
    const repoDir = await this.insideRoot(repo.dir);
    if (!real || !repoDir || !real.startsWith(repoDir + sep)) return undefined;
    const info = await stat(real).catch(() => undefined);
    if (!info?.isFile()) return undefined;
    const digest = await this.digestOf(repo, snapshotFile, real, info.size, info.mtimeMs);
    return { path, size: info.size, digest, file: real };
  }

  /** Every file of a snapshot, sorted by path. Entries whose links leave the root are skipped. */
  async listSnapshot(repo: RepoPaths, commit: string): Promise<CachedFile[]> {
    const base = await this.insideRoot(repo.snapshotDir(commit));
    if (!base) return [];
    const files: CachedFile[] = [];
    const walk = async (relative: string): Promise<void> => {
      const entries = await readdir(join(repo.snapshotDir(commit), relative), { withFileTypes: true }).catch(() => []);
      for (const entry of entries) {
        const path = relative ? `${relative}/${entry.name}` : entry.name;
        if (entry.isDirectory()) await walk(path);
        else {
          const file = await this.locate(repo, commit, path).catch(() => undefined);
          if (file) files.push(file);
        }
      }
    };
    await walk('');
    return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  /** Whether huggingface_hub recorded `path` as missing at `commit`. */
  async knownMissing(repo: RepoPaths, commit: string, path: string): Promise<boolean> {
    return (await lstat(repo.noExist(commit, path)).catch(() => undefined)) !== undefined;
  }

  /**
   * A snapshot entry's digest: the name of the blob its link points at, or, for a copied file,
   * its hash (both SHA-256 and git SHA-1 in one pass; whichever names an existing blob wins,
   * SHA-256 otherwise).
   */
  private async digestOf(repo: RepoPaths, snapshotFile: string, real: string, size: number, mtimeMs: number): Promise<FileDigest> {
    const blobsDir = await realpath(repo.blobsDir).catch(() => undefined);
    if (blobsDir && dirname(real) === blobsDir) {
      const name = basename(real);
      if (isSha256Hex(name)) return { algorithm: 'sha256', hex: name };
      if (isSha1Hex(name)) return { algorithm: 'git-sha1', hex: name };
    }
    const key = `${snapshotFile}\0${size}\0${mtimeMs}`;
    const known = this.hashedCopies.get(key);
    if (known) return known;
    const sha256 = createDigestHash('sha256', size);
    const sha1 = createDigestHash('git-sha1', size);
    for await (const chunk of createReadStream(real, { highWaterMark: 1 << 20 })) {
      sha256.update(chunk as Buffer);
      sha1.update(chunk as Buffer);
    }
    const sha256Hex = sha256.digest('hex');
    const sha1Hex = sha1.digest('hex');
    const isBlob = async (hex: string): Promise<boolean> => (await stat(join(repo.blobsDir, hex)).catch(() => undefined)) !== undefined;
    const digest: FileDigest = !(await isBlob(sha256Hex)) && (await isBlob(sha1Hex)) ? { algorithm: 'git-sha1', hex: sha1Hex } : { algorithm: 'sha256', hex: sha256Hex };
    this.hashedCopies.set(key, digest);
    return digest;
  }

  /**
   * Every repo in the cache with its size, snapshots and refs, for the status page, as the cache
   * scan reads them: a linked repo, layout folder or snapshot is reported there and never read through.
   */
  async listRepos(): Promise<CachedRepo[]> {
    const scan = await scanCache({ cacheDir: this.root }).catch(() => undefined);
    const repos: CachedRepo[] = [];
    for (const scanned of scan?.repos ?? []) {
      const repo = this.repo(scanned.repoType, scanned.repoId);
      const commits = scanned.revisions.map((r) => r.commit).filter((c) => COMMIT.test(c));
      const refs = Object.fromEntries(Object.entries(scanned.refs).filter(([, commit]) => COMMIT.test(commit)));
      // Recorded uses only (pull, serve, run), not the access times the scan also weighs.
      const uses = (await Promise.all(commits.map((c) => readLastUsed(repo, c)))).filter((t): t is number => t !== undefined);
      const size = scanned.blobs.reduce((sum, blob) => sum + blob.size, 0);
      repos.push({ repoType: scanned.repoType, repoId: scanned.repoId, size, commits, refs, lastModified: scanned.lastModified, ...(uses.length && { lastUsed: Math.max(...uses) }) });
    }
    return repos;
  }
}
