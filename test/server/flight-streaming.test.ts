import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, rm, unlink, link } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RepoPaths } from '../../src/cache/layout.js';
import { ModelfetchError } from '../../src/core/errors.js';
import { linkSnapshotFile, writeRef } from '../../src/cache/snapshot.js';
import type { FetchRequest } from '../../src/server/flights.js';
import type { RepoFile } from '../../src/core/types.js';
import type { UpstreamHub } from '../../src/server/catalog.js';
import { createMirrorServer, type MirrorServer } from '../../src/server/mirror-server.js';
import { transferFile } from '../../src/transfer/index.js';
import { fakeCommit } from '../support/cache-builder.js';

/**
 * The mirror's side of pull-through, with the download itself driven step by step by the test
 * (the engine boundary, FetchFile): what a waiting client receives while a blob is still being
 * written, before and after it is verified, and when verification fails.
 */

interface Gate {
  request: FetchRequest;
  write(upTo: number): Promise<void>;
  /** Reports what the engine reports once the digest matched (before the blob is stored). */
  digestMatched(): void;
  verify(): Promise<void>;
  fail(): void;
}

describe('streaming a blob while it downloads', () => {
  let root: string;
  let mirror: MirrorServer;
  let gates: Gate[];
  const commit = fakeCommit('flight');
  const content = randomBytes(3 * 1024 * 1024);
  const file: RepoFile = { path: 'big.bin', size: content.length, digest: { algorithm: 'sha256', hex: createHash('sha256').update(content).digest('hex') } };

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'mf-flight-'));
    gates = [];
    const repo = new RepoPaths(root, 'model', 'org/m');
    await mkdir(repo.dir, { recursive: true });
    await writeRef(repo, 'main', commit);
    const upstream: UpstreamHub = {
      origin: 'http://upstream.invalid',
      revisionCommit: async () => commit,
      listFiles: async () => [file],
      visibility: async () => 'public' as const,
      canRead: async () => true,
      ping: async () => true,
    };
    mirror = createMirrorServer({
      cacheDir: root,
      upstream,
      streamThreshold: 1024,
      fetchFile: (req) =>
        new Promise<void>((resolve, reject) => {
          const tempPath = repo.partial(req.file.digest);
          let written = 0;
          gates.push({
            request: req,
            write: async (upTo) => {
              await mkdir(dirname(tempPath), { recursive: true });
              const handle = await open(tempPath, 'a');
              await handle.write(content.subarray(written, upTo), 0, upTo - written, written);
              await handle.close();
              written = upTo;
              req.onProgress({ tempPath, contiguousBytes: written, bytesDone: written, totalBytes: content.length });
            },
            digestMatched: () => req.onProgress({ tempPath, contiguousBytes: written, bytesDone: written, totalBytes: content.length, verified: true }),
            verify: async () => {
              await mkdir(repo.blobsDir, { recursive: true });
              await link(tempPath, repo.blob(req.file.digest));
              await unlink(tempPath);
              await linkSnapshotFile(repo, req.commit, req.file.path, req.file.digest);
              resolve();
            },
            fail: () => {
              void unlink(tempPath).catch(() => {});
              reject(new ModelfetchError('ERR_INTEGRITY', 'digest mismatch'));
            },
          });
        }),
    });
    await mirror.listen();
  });

  afterEach(async () => {
    await mirror.close();
    await rm(root, { recursive: true, force: true });
  });

  /** A GET whose received byte count can be watched while it runs. */
  function follow(path: string, headers: Record<string, string> = {}): { received: () => number; body: Promise<{ status: number; data: Buffer; complete: boolean }> } {
    let count = 0;
    const url = new URL(mirror.url);
    const body = new Promise<{ status: number; data: Buffer; complete: boolean }>((resolve) => {
      const req = request({ host: url.hostname, port: url.port, path, headers, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => {
          count += chunk.length;
          chunks.push(chunk);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, data: Buffer.concat(chunks), complete: res.complete }));
        res.on('error', () => resolve({ status: res.statusCode ?? 0, data: Buffer.concat(chunks), complete: false }));
        res.on('aborted', () => resolve({ status: res.statusCode ?? 0, data: Buffer.concat(chunks), complete: false }));
      });
      req.on('error', () => resolve({ status: 0, data: Buffer.alloc(0), complete: false }));
      req.end();
    });
    return { received: () => count, body };
  }

  async function until(condition: () => boolean): Promise<void> {
    for (let i = 0; i < 2000 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(condition()).toBe(true);
  }

  it('streams the written prefix to every waiting client from ONE download, holding the last byte until verified', async () => {
    const clients = [follow('/org/m/resolve/main/big.bin'), follow('/org/m/resolve/main/big.bin'), follow('/org/m/resolve/main/big.bin')];
    await until(() => gates.length === 1);
    await gates[0]!.write(1024 * 1024);
    await until(() => clients.every((c) => c.received() === 1024 * 1024));
    await gates[0]!.write(content.length);
    // Everything is written, but not verified: all but the last byte.
    await until(() => clients.every((c) => c.received() === content.length - 1));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(clients.map((c) => c.received())).toEqual(clients.map(() => content.length - 1));
    const status = await (await fetch(`${mirror.url}/api/_status`)).json() as { downloads: { path: string; bytesDone: number; waiting: number }[] };
    expect(status.downloads).toEqual([expect.objectContaining({ path: 'big.bin', bytesDone: content.length, waiting: 3 })]);
    await gates[0]!.verify();
    for (const client of clients) {
      const { status: code, data, complete } = await client.body;
      expect(code).toBe(200);
      expect(complete).toBe(true);
      expect(data.equals(content)).toBe(true);
    }
    expect(gates).toHaveLength(1);
    // Now it is a cache hit.
    const again = await fetch(`${mirror.url}/org/m/resolve/main/big.bin`);
    expect(Buffer.from(await again.arrayBuffer()).equals(content)).toBe(true);
    const metrics = await (await fetch(`${mirror.url}/metrics`)).text();
    expect(metrics).toMatch(/^modelfetch_cache_misses_total 3$/m);
    expect(metrics).toMatch(/^modelfetch_cache_hits_total 1$/m);
  });

  it('sends the last byte once the digest matched, without waiting for the blob to be stored', async () => {
    const client = follow('/org/m/resolve/main/big.bin');
    await until(() => gates.length === 1);
    await gates[0]!.write(content.length);
    await until(() => client.received() === content.length - 1);
    gates[0]!.digestMatched();
    const { status, data, complete } = await client.body;
    expect(status).toBe(200);
    expect(complete).toBe(true);
    expect(data.equals(content)).toBe(true);
    // The blob is still not stored: a Range request keeps waiting for that.
    const ranged = follow('/org/m/resolve/main/big.bin', { range: 'bytes=0-9' });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(ranged.received()).toBe(0);
    await gates[0]!.verify();
    expect((await ranged.body).data.equals(content.subarray(0, 10))).toBe(true);
  });

  it('answers a Range request into a downloading blob only after it is verified', async () => {
    const ranged = follow('/org/m/resolve/main/big.bin', { range: 'bytes=100-199' });
    await until(() => gates.length === 1);
    await gates[0]!.write(content.length);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(ranged.received()).toBe(0);
    await gates[0]!.verify();
    const { status, data } = await ranged.body;
    expect(status).toBe(206);
    expect(data.equals(content.subarray(100, 200))).toBe(true);
  });

  it('ends the response short when verification fails, and stores nothing', async () => {
    const client = follow('/org/m/resolve/main/big.bin');
    const ranged = follow('/org/m/resolve/main/big.bin', { range: 'bytes=0-9' });
    await until(() => gates.length === 1);
    await gates[0]!.write(content.length);
    await until(() => client.received() === content.length - 1);
    gates[0]!.fail();
    const result = await client.body;
    expect(result.complete).toBe(false);
    expect(result.data.length).toBeLessThan(content.length);
    expect((await ranged.body).status).toBe(502);
    // A new request starts a new download.
    const retry = follow('/org/m/resolve/main/big.bin');
    await until(() => gates.length === 2);
    await gates[1]!.write(content.length);
    await gates[1]!.verify();
    expect((await retry.body).data.equals(content)).toBe(true);
  });

  it('a modelfetch client of a blob still downloading streams it as it lands, then verifies it', async () => {
    const tempPath = join(root, 'client.part');
    let clientBytes = 0;
    const pulled = transferFile(
      { urls: [`${mirror.url}/org/m/resolve/main/big.bin`], size: file.size, digest: file.digest, tempPath, identity: 'test:big.bin' },
      { segmentThreshold: 1024 * 1024, onProgress: (event) => (clientBytes = event.bytesDone) },
    );
    await until(() => gates.length === 1);
    await gates[0]!.write(2 * 1024 * 1024);
    // The client has bytes before the mirror verified anything: it did not wait on Range answers.
    await until(() => clientBytes >= 1024 * 1024);
    await gates[0]!.write(content.length);
    await gates[0]!.verify();
    const result = await pulled;
    expect(result.digest.hex).toBe(file.digest.hex);
    expect(result.bytesFetched).toBe(content.length);
    // Verified now: HEAD offers ranges again, so the next client uses many connections.
    const head = await fetch(`${mirror.url}/org/m/resolve/main/big.bin`, { method: 'HEAD' });
    expect(head.headers.get('accept-ranges')).toBe('bytes');
  });

  it('serves the blob when the download finished without progress reports (another process held it)', async () => {
    const client = follow('/org/m/resolve/main/big.bin');
    await until(() => gates.length === 1);
    // Write and verify without reporting progress: the file just appears as a blob.
    const repo = new RepoPaths(root, 'model', 'org/m');
    await mkdir(dirname(repo.partial(file.digest)), { recursive: true });
    const handle = await open(repo.partial(file.digest), 'w');
    await handle.write(content);
    await handle.close();
    await gates[0]!.verify();
    const { status, data } = await client.body;
    expect(status).toBe(200);
    expect(data.equals(content)).toBe(true);
  });

  it('answers HEAD for a missing file from the listing without downloading', async () => {
    const head = await fetch(`${mirror.url}/org/m/resolve/main/big.bin`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('x-linked-size')).toBe(String(content.length));
    expect(head.headers.get('etag')).toBe(`"${file.digest.hex}"`);
    expect(head.headers.get('x-repo-commit')).toBe(commit);
    // Not verified yet: no prompt Range answers, so clients that read this stream instead.
    expect(head.headers.get('accept-ranges')).toBe('none');
    expect(gates).toHaveLength(0);
    expect((await fetch(`${mirror.url}/org/m/resolve/main/other.bin`)).headers.get('x-error-code')).toBe('EntryNotFound');
  });
});
