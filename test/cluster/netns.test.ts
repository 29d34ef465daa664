import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createNetns, netnsUnavailable, sweepStaleNamespaces } from './netns.js';

/** The cluster harness leaves nothing behind: namespaces, their links, and processes started in them. */

const unavailable = netnsUnavailable();
if (unavailable) console.warn(`test/cluster skipped: ${unavailable}`);

const namespaces = (): string[] =>
  execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter(Boolean);

/** Running (a zombie waiting for whoever adopted it to reap it counts as gone). */
const alive = (pid: number): boolean => {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

describe.skipIf(unavailable !== undefined)('netns harness', () => {
  it('removes its namespaces and kills what ran inside them on close', async () => {
    const net = await createNetns({ hosts: ['a', 'b'], rateMbit: 10 });
    const mine = namespaces().filter((ns) => ns.startsWith(`${net.prefix}-`));
    expect(mine.sort()).toEqual([`${net.prefix}-a`, `${net.prefix}-b`, `${net.prefix}-sw`]);
    const sleeper = net.spawn('a', 'sleep', ['300']);
    // A grandchild the harness never saw: it dies with its namespace.
    const orphan = net.spawn('b', 'sh', ['-c', 'sleep 300 >/dev/null 2>&1 & echo $!']);
    await orphan.exited;
    const orphanPid = Number(orphan.stdout().trim());
    expect(alive(orphanPid)).toBe(true);
    await net.close();
    expect(await sleeper.exited).toEqual({ code: null, signal: 'SIGKILL' });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(alive(orphanPid)).toBe(false);
    expect(namespaces().filter((ns) => ns.startsWith(`${net.prefix}-`))).toEqual([]);
  }, 30_000);

  it('sweeps namespaces whose creating process is gone (a run killed before its clean-up)', () => {
    const gone = spawnSync('true').pid!;
    const stale = `mf-${gone}-0-left`;
    execFileSync('ip', ['netns', 'add', stale]);
    try {
      expect(sweepStaleNamespaces()).toContain(stale);
      expect(namespaces()).not.toContain(stale);
    } finally {
      spawnSync('ip', ['netns', 'del', stale]);
    }
  });
});
