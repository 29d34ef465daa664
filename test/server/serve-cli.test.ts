import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { request, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCachedRepo, fakeCommit } from '../support/cache-builder.js';
import { runCli } from '../support/cli.js';

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 3000 && !condition(); i++) await new Promise((done) => setTimeout(done, 10));
  expect(condition()).toBe(true);
}

const CLI = resolve(import.meta.dirname, '../../src/cli/run.ts');

/** Starts `modelfetch serve` and resolves with its URL once it listens. */
export async function startServeCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; url: string; stdout: () => string; stderr: () => string; exited: Promise<number | null> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve', '--port', '0', ...args], { cwd: resolve(import.meta.dirname, '../..'), env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
  const url = await new Promise<string>((done, fail) => {
    child.stderr!.on('data', (chunk: Buffer) => {
      err += chunk.toString();
      const match = /listening on (http:\/\/\S+)/.exec(err);
      if (match) done(match[1]!);
    });
    void exited.then(() => fail(new Error(`serve exited early: ${err}`)));
  });
  return { child, url, stdout: () => out, stderr: () => err, exited };
}

describe('modelfetch serve (the CLI)', () => {
  let root: string;
  const content = randomBytes(24 * 1024 * 1024);

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'mf-serve-cli-'));
    await buildCachedRepo(root, { repoId: 'org/m', commit: fakeCommit('cli'), files: [{ path: 'w.bin', content, lfs: true }] });
  });

  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('on SIGTERM stops accepting, lets a response in flight finish, logs it, and exits 0', async () => {
    const server = await startServeCli(['--cache-dir', root, '--offline', '--public', '*', '--grace', '30']);
    const url = new URL(server.url);
    // A slow reader: the response is still being sent when the signal arrives.
    const hash = createHash('sha256');
    let received = 0;
    let response: IncomingMessage | undefined;
    let paused!: () => void;
    const isPaused = new Promise<void>((done) => (paused = done));
    const finished = new Promise<boolean>((done) => {
      const req = request({ host: url.hostname, port: url.port, path: '/org/m/resolve/main/w.bin', agent: false }, (res) => {
        response = res;
        res.on('data', (chunk: Buffer) => {
          hash.update(chunk);
          received += chunk.length;
          if (received === chunk.length) {
            res.pause();
            paused();
          }
        });
        res.on('end', () => done(res.complete));
        res.on('error', () => done(false));
      });
      req.on('error', () => done(false));
      req.end();
    });
    await isPaused;
    server.child.kill('SIGTERM');
    await until(() => server.stderr().includes('SIGTERM'));
    // No new connections once shutting down.
    expect(await fetch(`${server.url}/healthz`).then(() => 'answered', () => 'refused')).toBe('refused');
    expect(received).toBeLessThan(content.length);
    // The response in flight still completes.
    response!.resume();
    expect(await finished).toBe(true);
    expect(received).toBe(content.length);
    expect(hash.digest('hex')).toBe(createHash('sha256').update(content).digest('hex'));
    expect(await server.exited).toBe(0);
    expect(server.stdout()).toMatch(/GET \/org\/m\/resolve\/main\/w\.bin 200 25165824 [\d.]+ms hit/);
  });

  it('refuses a malformed --public pattern or --max-connections with a one-line usage error', async () => {
    for (const [args, why] of [
      [['--public', 'org/a/b'], /Invalid --public pattern "org\/a\/b"/],
      [['--public', 'or*g/x'], /Invalid --public pattern/],
      [['--max-connections', '0'], /whole number/],
      [['--send-timeout', 'soon'], /number of seconds/],
    ] as const) {
      const run = await runCli(['serve', '--cache-dir', root, '--offline', '--port', '0', ...args]);
      expect(run.code, args.join(' ')).not.toBe(0);
      expect(run.stderr).toMatch(why);
      expect(run.stderr).not.toMatch(/\n\s+at /);
    }
  });
});
