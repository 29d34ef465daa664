import { spawnSync } from 'node:child_process';
import { mkdir, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { RepoPaths } from './layout.js';
import { acquireLock, isRevisionInUse, markRevisionInUse, tryAcquireLock } from './lock.js';
import { testTempDir } from '../../test/support/temp.js';

let dir: string;
beforeEach(async () => {
  dir = await testTempDir('mf-lock-');
});

/** A pid that certainly belonged to a process that has exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(child.stdout);
}

async function writeForeignLock(path: string, pid: number, host = hostname()): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, JSON.stringify({ pid, host, time: Date.now(), nonce: 'foreign' }));
}

describe('file locks', () => {
  it('admits one holder at a time and hands over on release', async () => {
    const path = join(dir, 'a', 'x.lock');
    const first = await tryAcquireLock(path);
    expect(first).toBeDefined();
    expect(await tryAcquireLock(path)).toBeUndefined();
    let acquired = false;
    const waiter = acquireLock(path, { pollMs: 10 }).then((lock) => {
      acquired = true;
      return lock;
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(acquired).toBe(false);
    await first!.release();
    const second = await waiter;
    expect(acquired).toBe(true);
    await second.release();
  });

  it('takes over a lock whose holder on this host is dead', async () => {
    const path = join(dir, 'dead.lock');
    await writeForeignLock(path, deadPid());
    const lock = await tryAcquireLock(path);
    expect(lock).toBeDefined();
    await lock!.release();
  });

  it('takes over a lock whose heartbeat is old, and respects a fresh one from another host', async () => {
    const path = join(dir, 'remote.lock');
    await writeForeignLock(path, 1, 'some-other-host');
    expect(await tryAcquireLock(path, { staleMs: 5_000 })).toBeUndefined();
    const old = new Date(Date.now() - 60_000);
    await utimes(path, old, old);
    const lock = await tryAcquireLock(path, { staleMs: 5_000 });
    expect(lock).toBeDefined();
    await lock!.release();
  });

  it('keeps a held lock fresh with its heartbeat', async () => {
    const path = join(dir, 'beat.lock');
    const lock = await tryAcquireLock(path, { staleMs: 400, heartbeatMs: 20 });
    const old = new Date(Date.now() - 60_000);
    await utimes(path, old, old);
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(await tryAcquireLock(path, { staleMs: 400 })).toBeUndefined();
    await lock!.release();
  });
});

describe('revisions in use', () => {
  it('is in use while a live holder has it, and not after release or when stale', async () => {
    const repo = new RepoPaths(dir, 'model', 'org/name');
    const commit = 'c'.repeat(40);
    expect(await isRevisionInUse(repo, commit)).toBe(false);
    const a = await markRevisionInUse(repo, commit);
    const b = await markRevisionInUse(repo, commit);
    expect(await isRevisionInUse(repo, commit)).toBe(true);
    expect(await isRevisionInUse(repo)).toBe(true);
    expect(await isRevisionInUse(repo, 'd'.repeat(40))).toBe(false);
    await a.release();
    expect(await isRevisionInUse(repo, commit)).toBe(true);
    await b.release();
    expect(await isRevisionInUse(repo, commit)).toBe(false);
    await writeForeignLock(join(repo.inUseDir(commit), 'ghost'), deadPid());
    expect(await isRevisionInUse(repo, commit)).toBe(false);
    expect(await isRevisionInUse(repo)).toBe(false);
    // A blob being downloaded makes the repo busy, though no revision is complete yet.
    const blob = await tryAcquireLock(repo.blobLock({ algorithm: 'sha256', hex: 'a'.repeat(64) }));
    expect(await isRevisionInUse(repo)).toBe(true);
    await blob!.release();
    expect(await isRevisionInUse(repo)).toBe(false);
  });
});
