import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { serialiseLockfile } from '../../src/preload/lockfile.js';
import { fakeCommit } from '../support/cache-builder.js';
import { buildLockedCache } from '../support/locked-cache.js';
import { CLI, runCli, TSX } from './cli-helpers.js';
import { testTempDir } from '../support/temp.js';

/** `modelfetch run` with real processes: a locked cache that is already complete, so no network is involved. */
async function lockedProject(): Promise<{ dir: string; cache: string; args: string[] }> {
  const dir = await testTempDir('mf-run-');
  const cache = join(dir, 'hub');
  const { lock } = await buildLockedCache(cache, [{ repoId: 'org/svc', commit: fakeCommit('svc'), files: [{ path: 'config.json', content: Buffer.from('{"ok":true}') }] }]);
  await writeFile(join(dir, 'modelfetch.lock.json'), serialiseLockfile(lock));
  return { dir, cache, args: ['run', '--lock', join(dir, 'modelfetch.lock.json'), '--cache-dir', cache, '--endpoint', 'http://mirror.invalid'] };
}

async function waitForFile(path: string): Promise<string> {
  for (let i = 0; i < 600; i++) {
    const content = await readFile(path, 'utf8').catch(() => undefined);
    if (content) return content;
    await sleep(50);
  }
  throw new Error(`${path} never appeared`);
}

describe('modelfetch run (real processes)', () => {
  it('gives the command an offline environment pointing at the synced cache', async () => {
    const { dir, cache } = await lockedProject();
    const out = join(dir, 'env.json');
    const script = `require('fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify(process.env))`;
    // The lockfile named by MODELFETCH_LOCK, as in the baked image.
    const result = await runCli(['run', '--cache-dir', cache, '--', process.execPath, '-e', script], { env: { MODELFETCH_LOCK: join(dir, 'modelfetch.lock.json') } });
    expect(result.stderr).toContain('1 file of 1 model in place');
    expect(result.code, result.stderr).toBe(0);
    const env = JSON.parse(await readFile(out, 'utf8'));
    expect(env).toMatchObject({ HF_HUB_CACHE: cache, HF_HOME: dir, HF_HUB_OFFLINE: '1' });
    expect(env.MODELSCOPE_CACHE).toBeTruthy();
    expect(await readFile(join(cache, 'models--org--svc', 'snapshots', fakeCommit('svc'), 'config.json'), 'utf8')).toBe('{"ok":true}');
  });

  it('restarts a crashing command N times with backoff, then exits non-zero with its status', async () => {
    const { dir, args } = await lockedProject();
    const counter = join(dir, 'starts.log');
    const script = `require('fs').appendFileSync(${JSON.stringify(counter)}, 'x'); process.exit(7)`;
    const result = await runCli([...args, '--restarts', '2', '--backoff', '20', '--', process.execPath, '-e', script]);
    expect(result.code).toBe(7);
    expect(await readFile(counter, 'utf8')).toBe('xxx');
    expect(result.stderr).toContain('command exited with code 7; restart 1/2 in 20ms');
    expect(result.stderr).toContain('command exited with code 7; restart 2/2 in 40ms');
    expect(result.stderr).toContain('giving up after 2 restarts');
  });

  it('forwards SIGTERM to the command, does not restart it, and exits with its status', async () => {
    const { dir, args } = await lockedProject();
    const ready = join(dir, 'ready');
    const got = join(dir, 'got-signal');
    const script = [
      `const fs = require('fs');`,
      `process.on('SIGTERM', () => { fs.writeFileSync(${JSON.stringify(got)}, 'SIGTERM'); process.exit(42); });`,
      `fs.writeFileSync(${JSON.stringify(ready)}, String(process.pid));`,
      `setInterval(() => {}, 1000);`,
    ].join('\n');
    const child = spawn(process.execPath, ['--import', TSX, CLI, ...args, '--restarts', '5', '--', process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    const servicePid = Number(await waitForFile(ready));
    child.kill('SIGTERM');
    expect(await exited, stderr).toBe(42);
    expect(await readFile(got, 'utf8')).toBe('SIGTERM');
    expect(stderr).toContain('forwarding SIGTERM');
    expect(stderr).not.toContain('restart 1/');
    expect(() => process.kill(servicePid, 0)).toThrow();
  });

  it('starts nothing when a locked file is corrupt and cannot be fetched', async () => {
    const { dir, cache, args } = await lockedProject();
    const { readdir } = await import('node:fs/promises');
    const blobs = join(cache, 'models--org--svc', 'blobs');
    const [blob] = await readdir(blobs);
    await writeFile(join(blobs, blob!), '{"ok":false}');
    const marker = join(dir, 'started');
    const result = await runCli([...args, '--', process.execPath, '-e', `require('fs').writeFileSync(${JSON.stringify(marker)}, '1')`], { env: { HF_HUB_OFFLINE: '1' } });
    expect(result.code).toBe(8);
    expect(result.stderr).toContain('[ERR_OFFLINE]');
    await expect(readFile(marker)).rejects.toThrow();
  });
});

describe('modelfetch run health checks (real processes)', () => {
  it('restarts a command whose health URL keeps failing, then gives up', async () => {
    const { dir, args } = await lockedProject();
    const starts = join(dir, 'starts.log');
    // A service that listens but answers 503; it writes its port so the test can point --health-url at it.
    const portFile = join(dir, 'port');
    const script = [
      `const fs = require('fs');`,
      `fs.appendFileSync(${JSON.stringify(starts)}, 'x');`,
      `const server = require('http').createServer((req, res) => { res.statusCode = 503; res.end('starting'); });`,
      `server.listen(Number(fs.readFileSync(${JSON.stringify(portFile)}, 'utf8')), '127.0.0.1');`,
      `process.on('SIGTERM', () => process.exit(0));`,
    ].join('\n');
    const { createServer } = await import('node:net');
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise((resolve) => probe.close(resolve));
    await writeFile(portFile, String(port));
    const result = await runCli([...args, '--health-url', `http://127.0.0.1:${port}/health`, '--health-interval', '100', '--health-grace', '1500', '--unhealthy-after', '3', '--restarts', '1', '--backoff', '10', '--', process.execPath, '-e', script]);
    expect(result.code, result.stderr).not.toBe(0);
    // Both starts were stopped for failing health checks (the service itself never exits on its own).
    expect(result.stderr.split(`command was unhealthy (3 failed health checks of http://127.0.0.1:${port}/health); stopping it`)).toHaveLength(3);
    expect(await readFile(starts, 'utf8')).toMatch(/^x+$/);
    expect(result.stderr).toContain('giving up after 1 restart');
  });
});
