import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstat, utimes, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { markRevisionInUse } from '../../src/cache/lock.js';
import { buildCachedRepo, digestOf, fakeCommit } from '../support/cache-builder.js';
import { testTempDir } from '../support/temp.js';

const CLI = resolve(import.meta.dirname, '../../src/cli/run.ts');

async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--import', 'tsx', CLI, ...args], { env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('cache commands (CLI)', () => {
  it('ls prints an aligned table of repos with human sizes, and JSON on request', async () => {
    const root = await testTempDir('mf-cli-');
    await buildCachedRepo(root, { repoId: 'org/alpha', commit: fakeCommit('a'), files: [{ path: 'w.bin', content: randomBytes(3 * 1024 * 1024), lfs: true }] });
    await buildCachedRepo(root, { repoId: 'org/beta-longer-name', commit: fakeCommit('b'), refs: ['main', 'v2'], files: [{ path: 'c.json', content: Buffer.from('{}') }] });
    const table = await cli(['ls'], { HF_HUB_CACHE: root });
    expect(table.code).toBe(0);
    const lines = table.stdout.split('\n');
    expect(lines[0]).toMatch(/^REPO ID\s+TYPE\s+REVISIONS\s+FILES\s+SIZE\s+LAST USED\s+REFS$/);
    expect(lines[1]).toMatch(/^org\/alpha\s+model\s+1\s+1\s+3\.0 MiB\s+\S+ ago\s+main$/);
    expect(lines[2]).toMatch(/^org\/beta-longer-name\s+model\s+1\s+1\s+2 B\s+\S+ ago\s+main, v2$/);
    expect(lines[1]!.indexOf('model')).toBe(lines[0]!.indexOf('TYPE'));
    const json = await cli(['ls', '--json', '--cache-dir', root]);
    const parsed = JSON.parse(json.stdout) as { repos: Array<{ repoId: string; sizeOnDisk: number }> };
    expect(parsed.repos.map((r) => [r.repoId, r.sizeOnDisk])).toEqual([
      ['org/alpha', 3 * 1024 * 1024],
      ['org/beta-longer-name', 2],
    ]);
    const one = await cli(['ls', 'org/beta-longer-name', '--cache-dir', root]);
    expect(one.stdout).toContain(`revision ${fakeCommit('b')} (main, v2): 1 file(s), 2 B`);
    expect(one.stdout).toMatch(/ {2}c\.json\s+2 B\s+[0-9a-f]{12}/);
    expect((await cli(['ls', 'org/none', '--cache-dir', root])).code).toBe(4);
  });

  it('verify exits 0 on a healthy cache and non-zero with a report on a corrupted one', async () => {
    const root = await testTempDir('mf-cli-');
    const file = { path: 'w.bin', content: randomBytes(100_000), lfs: true };
    const repo = await buildCachedRepo(root, { repoId: 'org/v', commit: fakeCommit('v'), files: [file] });
    const ok = await cli(['verify', '--cache-dir', root]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^OK: 1 blob\(s\)/m);
    await writeFile(repo.blob(digestOf(file)), 'garbage');
    const bad = await cli(['verify', '--json', '--cache-dir', root]);
    expect(bad.code).toBe(3);
    const report = JSON.parse(bad.stdout) as { ok: boolean; problems: Array<{ kind: string; expected: string }> };
    expect(report.ok).toBe(false);
    expect(report.problems).toMatchObject([{ kind: 'broken', expected: digestOf(file).hex }]);
    expect(bad.stderr).toContain('[ERR_INTEGRITY]');
  });

  it('gc plans with --dry-run, then frees unused revisions but never one a running pull holds', async () => {
    const root = await testTempDir('mf-cli-');
    const old = new Date(Date.now() - 30 * 86_400_000);
    const idleFile = { path: 'idle.bin', content: randomBytes(2048), lfs: true };
    const busyFile = { path: 'busy.bin', content: randomBytes(1024), lfs: true };
    const idle = await buildCachedRepo(root, { repoId: 'org/idle', commit: fakeCommit('idle'), files: [idleFile] });
    const busy = await buildCachedRepo(root, { repoId: 'org/busy', commit: fakeCommit('busy'), files: [busyFile] });
    await utimes(idle.blob(digestOf(idleFile)), old, old);
    await utimes(busy.blob(digestOf(busyFile)), old, old);
    const marker = await markRevisionInUse(busy, fakeCommit('busy'));
    try {
      const dry = await cli(['gc', '--unused-for', '7d', '--dry-run', '--cache-dir', root]);
      expect(dry.code).toBe(0);
      expect(dry.stdout).toMatch(/^org\/idle\s+[0-9a-f]{12}\s+main\s+30d ago\s+unused\s+2\.0 KiB$/m);
      expect(dry.stdout).toContain(`kept (in use): org/busy@${fakeCommit('busy').slice(0, 12)}`);
      expect(dry.stdout).toContain('Would free 2.0 KiB: 1 revision(s), 1 blob(s), 1 repo folder(s)');
      expect((await lstat(idle.dir)).isDirectory()).toBe(true);

      const rmBusy = await cli(['rm', 'org/busy', '--yes', '--cache-dir', root]);
      expect(rmBusy.code).toBe(10);
      expect(rmBusy.stderr).toContain('[ERR_LOCKED]');

      const real = await cli(['gc', '--unused-for', '7d', '--json', '--cache-dir', root]);
      expect(real.code).toBe(0);
      const report = JSON.parse(real.stdout) as { bytesFreed: number; skipped: Array<{ repoId: string; reason: string }> };
      expect(report.bytesFreed).toBe(2048);
      expect(report.skipped).toMatchObject([{ repoId: 'org/busy', reason: 'in-use' }]);
      await expect(lstat(idle.dir)).rejects.toThrow();
      expect((await lstat(busy.snapshotFile(fakeCommit('busy'), 'busy.bin'))).isSymbolicLink()).toBe(true);
    } finally {
      await marker.release();
    }
    const rm = await cli(['rm', 'org/busy', '--yes', '--cache-dir', root]);
    expect(rm.code).toBe(0);
    expect(rm.stdout).toContain('Removed model org/busy: 1 revision(s), 1 blob(s), 1.0 KiB');
    expect((await cli(['rm', 'org/busy', '--cache-dir', root])).code).toBe(2);
  });
});
