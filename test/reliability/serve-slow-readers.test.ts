import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMirrorServer, type MirrorServerOptions } from '../../src/server/mirror-server.js';
import { buildCachedRepo, fakeCommit } from '../support/cache-builder.js';
import { hasTool } from '../support/tools.js';

/** Case 30: clients that request a blob and never read it must not pin the mirror's memory or descriptors. */

const BLOB = randomBytes(16 * 1024 * 1024);
const BLOB_SHA256 = createHash('sha256').update(BLOB).digest('hex');
const PATH = '/org/big/resolve/main/w.bin';

/** Opens a connection, sends a GET for the blob and then never reads: the socket stays paused. */
function stuckClient(url: string): Promise<Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((done, fail) => {
    const socket = connect({ host: hostname, port: Number(port) }, () => {
      socket.pause();
      socket.write(`GET ${PATH} HTTP/1.1\r\nHost: ${hostname}:${port}\r\n\r\n`);
      done(socket);
    });
    socket.once('error', fail);
  });
}

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return match ? Number(match[1]) : Number.NaN;
}

/**
 * Starts `count` clients that send a GET for the blob and never read (in Python, whose sockets can
 * have a small receive buffer: the kernel then holds little of each response, so what grows is
 * the mirror's own memory, and the machine's TCP memory is left alone). Resolves once all are sent.
 */
async function stuckClients(url: string, count: number): Promise<{ close(): Promise<void> }> {
  const { hostname, port } = new URL(url);
  const child = spawn('python3', [resolve(import.meta.dirname, '../support/stuck-clients.py'), hostname, port, PATH, String(count)], { stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = new Promise((done) => child.once('exit', done));
  await new Promise<void>((done, fail) => {
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('ready')) done();
    });
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    void exited.then(() => fail(new Error(`stuck clients exited early: ${err}`)));
  });
  return {
    close: async () => {
      child.stdin.end();
      await exited;
    },
  };
}

/** Waits until `condition` holds, polling; the caller asserts afterwards. */
async function until(condition: () => Promise<boolean>, tries = 600): Promise<void> {
  for (let i = 0; i < tries && !(await condition()); i++) await new Promise((done) => setTimeout(done, 100));
}

async function wellBehavedDownload(url: string): Promise<string> {
  const res = await fetch(`${url}${PATH}`);
  expect(res.status).toBe(200);
  return createHash('sha256').update(Buffer.from(await res.arrayBuffer())).digest('hex');
}

describe('slow readers (case 30)', () => {
  let root: string;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'mf-serve-slow-'));
    await buildCachedRepo(root, { repoId: 'org/big', commit: fakeCommit('slow-readers'), files: [{ path: 'w.bin', content: BLOB, lfs: true }] });
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it.runIf(hasTool('python3'))('1,000 clients that never read: the mirror process stays under 300 MB and still serves a client that reads', async () => {
    const options: MirrorServerOptions = { cacheDir: root, offline: true, publicRepos: ['org/big'], maxConnections: 1_100, sendTimeoutMs: 600_000 };
    const script = resolve(import.meta.dirname, '../support/mirror-process.ts');
    const child = spawn(process.execPath, ['--import', 'tsx', script, JSON.stringify(options)], { cwd: resolve(import.meta.dirname, '../..'), stdio: ['ignore', 'ignore', 'pipe'] });
    let clients: { close(): Promise<void> } | undefined;
    try {
      const url = await new Promise<string>((done, fail) => {
        let err = '';
        child.stderr!.on('data', (chunk: Buffer) => {
          err += chunk.toString();
          const match = /listening on (http:\/\/\S+)/.exec(err);
          if (match) done(match[1]!);
        });
        child.once('exit', () => fail(new Error(`mirror exited early: ${err}`)));
      });
      const memory = async (): Promise<{ rss: number; peak: number }> => {
        const status = await readFile(`/proc/${child.pid}/status`, 'utf8');
        const kb = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)![1]) * 1024;
        return { rss: kb('VmRSS'), peak: kb('VmHWM') };
      };
      clients = await stuckClients(url, 1_000);
      // Every response has started and filled what the socket takes: served bytes stop growing.
      let last = -1;
      await until(async () => {
        const served = await metric(url, 'modelfetch_served_bytes_total');
        const settled = served === last && served > 0;
        last = served;
        return settled;
      });
      expect(await wellBehavedDownload(url)).toBe(BLOB_SHA256);
      const { rss, peak } = await memory();
      expect(peak, `VmHWM ${(peak / 1e6).toFixed(0)} MB, VmRSS ${(rss / 1e6).toFixed(0)} MB`).toBeLessThan(300 * 1024 * 1024);
      expect(await metric(url, 'modelfetch_open_connections')).toBeGreaterThanOrEqual(1_000);
    } finally {
      await clients?.close();
      const exited = new Promise((done) => child.once('exit', done));
      child.kill('SIGTERM');
      await exited;
    }
  }, 300_000);

  it('cuts off a client that takes nothing for the send timeout, and counts it', async () => {
    const mirror = createMirrorServer({ cacheDir: root, publicRepos: ['org/big'], sendTimeoutMs: 500 });
    await mirror.listen();
    try {
      const stuck = await stuckClient(mirror.url);
      // The mirror closes its end (the paused client would only notice once it read again).
      const open = async (): Promise<number | undefined> => (await mirror.metrics.openConnections.get()).values[0]?.value;
      await until(async () => (await open()) === 1, 100);
      await until(async () => (await open()) === 0, 100);
      expect(await open()).toBe(0);
      expect(await metric(mirror.url, 'modelfetch_send_timeouts_total')).toBe(1);
      stuck.destroy();
      expect(await wellBehavedDownload(mirror.url)).toBe(BLOB_SHA256);
    } finally {
      await mirror.close();
    }
  }, 60_000);

  it('answers 503 beyond --max-connections, counts it, and serves again once connections close', async () => {
    const mirror = createMirrorServer({ cacheDir: root, publicRepos: ['org/big'], maxConnections: 3, sendTimeoutMs: 600_000, graceMs: 100 });
    await mirror.listen();
    const stuck: Socket[] = [];
    try {
      for (let i = 0; i < 3; i++) stuck.push(await stuckClient(mirror.url));
      await until(async () => (await mirror.metrics.openConnections.get()).values[0]?.value === 3);
      const refused = await new Promise<string>((done, fail) => {
        const socket = connect({ host: new URL(mirror.url).hostname, port: Number(new URL(mirror.url).port) }, () => socket.write(`GET ${PATH} HTTP/1.1\r\nHost: x\r\n\r\n`));
        let text = '';
        socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
        socket.once('end', () => done(text));
        socket.once('error', fail);
      });
      expect(refused).toMatch(/^HTTP\/1\.1 503 /);
      expect(refused.toLowerCase()).toContain('connection: close');
      expect((await mirror.metrics.refusedConnections.get()).values[0]?.value).toBe(1);
      for (const socket of stuck.splice(0)) socket.destroy();
      await until(async () => (await mirror.metrics.openConnections.get()).values[0]?.value === 0);
      expect(await wellBehavedDownload(mirror.url)).toBe(BLOB_SHA256);
    } finally {
      for (const socket of stuck) socket.destroy();
      await mirror.close();
    }
  }, 60_000);
});
