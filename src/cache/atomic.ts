import { constants } from 'node:fs';
import { link, open, rename, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fromSystemError } from '../core/errors.js';
import { makeRealFolders } from './safe-path.js';

/**
 * The file system calls a finished download needs, injectable so tests can assert their order
 * (data fsync, then the no-overwrite rename, then the directory fsync) and simulate failures.
 */
export interface CommitFs {
  fsyncFile(path: string): Promise<void>;
  /** Hard link `existing` at `target`; must fail with EEXIST when `target` exists. */
  link(existing: string, target: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  exists(path: string): Promise<boolean>;
  fsyncDir(path: string): Promise<void>;
}

async function fsyncPath(path: string, flags: number): Promise<void> {
  const handle = await open(path, flags);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export const nodeCommitFs: CommitFs = {
  fsyncFile: (path) => fsyncPath(path, constants.O_RDONLY),
  link: (existing, target) => link(existing, target),
  rename: (from, to) => rename(from, to),
  unlink: (path) => unlink(path),
  exists: async (path) => {
    try {
      await stat(path);
      return true;
    } catch {
      return false;
    }
  },
  fsyncDir: (path) => fsyncPath(path, constants.O_RDONLY | constants.O_DIRECTORY),
};

export type CommitOutcome = 'committed' | 'exists';

/**
 * Moves a finished, verified temp file to `target` without ever overwriting it:
 * fsync the data, hard-link into place (fails if the target exists), drop the temp name, fsync the
 * directory. Where hard links are unsupported it falls back to check-then-rename.
 * Returns 'exists' (and removes the temp file) when `target` was already there, e.g. the same blob
 * committed by another process.
 */
export async function commitTempFile(tempPath: string, target: string, fs: CommitFs = nodeCommitFs): Promise<CommitOutcome> {
  try {
    await fs.fsyncFile(tempPath);
    let outcome: CommitOutcome = 'committed';
    try {
      await fs.link(tempPath, target);
      await fs.unlink(tempPath);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') {
        outcome = 'exists';
        await fs.unlink(tempPath);
      } else if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'EXDEV' || code === 'ENOSYS') {
        if (await fs.exists(target)) {
          outcome = 'exists';
          await fs.unlink(tempPath);
        } else {
          await fs.rename(tempPath, target);
        }
      } else {
        throw error;
      }
    }
    await fs.fsyncDir(dirname(target));
    return outcome;
  } catch (error) {
    throw fromSystemError(error, `moving ${tempPath} into place`);
  }
}

/**
 * Moves a finished temp file to `target`, replacing what is there (layouts that keep one version
 * per path: ModelScope's, a local dir): the parent is made (through real folders below `root` only),
 * the rename, then the directory fsync. `where` names the destination in the error.
 */
export async function replaceWithTempFile(root: string, tempPath: string, target: string, where: string): Promise<void> {
  try {
    await makeRealFolders(root, dirname(target));
    await rename(tempPath, target);
    await nodeCommitFs.fsyncDir(dirname(target));
  } catch (error) {
    throw fromSystemError(error, where);
  }
}
