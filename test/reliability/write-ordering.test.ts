import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commitTempFile, nodeCommitFs, type CommitFs } from '../../src/cache/atomic.js';
import { testTempDir } from '../support/temp.js';

/**
 * Case 19: write ordering for power loss. A model of what a crash may keep: file data survives only
 * once fsynced; a new directory entry MAY survive as soon as it is made (the kernel flushes metadata
 * whenever it likes) and MUST survive only once the directory is fsynced. The promise: at every
 * possible crash point, a blob name that may survive points at data that survives, and once
 * `commitTempFile` has returned the blob survives for sure.
 */

interface CrashState {
  dataDurable: boolean;
  /** The target's directory entry may exist after a crash. */
  entryMaySurvive: boolean;
  /** The target's directory entry is guaranteed after a crash. */
  entryDurable: boolean;
}

function crashModelFs(states: CrashState[], target: string): CommitFs {
  const state: CrashState = { dataDurable: false, entryMaySurvive: false, entryDurable: false };
  const step = async <T>(apply: () => void, real: () => Promise<T>): Promise<T> => {
    const result = await real();
    apply();
    states.push({ ...state });
    return result;
  };
  return {
    fsyncFile: (path) => step(() => (state.dataDurable = true), () => nodeCommitFs.fsyncFile(path)),
    link: (existing, to) => step(() => (state.entryMaySurvive ||= to === target), () => nodeCommitFs.link(existing, to)),
    rename: (from, to) => step(() => (state.entryMaySurvive ||= to === target), () => nodeCommitFs.rename(from, to)),
    unlink: (path) => step(() => {}, () => nodeCommitFs.unlink(path)),
    exists: (path) => nodeCommitFs.exists(path),
    fsyncDir: (path) => step(() => (state.entryDurable ||= state.entryMaySurvive && join(path, 'blob') === target), () => nodeCommitFs.fsyncDir(path)),
  };
}

async function commitUnderModel(overrides: Partial<CommitFs> = {}): Promise<CrashState[]> {
  const dir = await testTempDir('mf-order-');
  const temp = join(dir, 'blob.part');
  const target = join(dir, 'blob');
  await writeFile(temp, 'complete content');
  const states: CrashState[] = [{ dataDurable: false, entryMaySurvive: false, entryDurable: false }];
  await commitTempFile(temp, target, { ...crashModelFs(states, target), ...overrides });
  expect(await readFile(target, 'utf8')).toBe('complete content');
  return states;
}

function assertCrashSafe(states: CrashState[]): void {
  for (const [i, state] of states.entries()) {
    // A name that can appear after a crash must never point at lost or partial data.
    if (state.entryMaySurvive) expect({ point: i, dataDurable: state.dataDurable }).toEqual({ point: i, dataDurable: true });
  }
  expect(states.at(-1)).toEqual({ dataDurable: true, entryMaySurvive: true, entryDurable: true });
}

describe('write ordering for power loss', () => {
  it('fsyncs the file, then links it into place, then fsyncs the directory', async () => {
    assertCrashSafe(await commitUnderModel());
  });

  it('keeps the same order on the rename fallback (no hard links)', async () => {
    const noLink: Partial<CommitFs> = { link: async () => Promise.reject(Object.assign(new Error('no links'), { code: 'EPERM' })) };
    const states = await commitUnderModel(noLink);
    assertCrashSafe(states);
  });

  it('the model catches a commit that renames before the data is durable', async () => {
    // Guard for the guard: a commit that skips the data fsync must fail the crash check.
    const dir = await testTempDir('mf-order-');
    const target = join(dir, 'blob');
    await writeFile(join(dir, 'blob.part'), 'x');
    const states: CrashState[] = [];
    const fs = crashModelFs(states, target);
    await fs.link(join(dir, 'blob.part'), target);
    await fs.fsyncFile(target);
    await fs.fsyncDir(dir);
    expect(() => assertCrashSafe(states)).toThrow();
  });
});
