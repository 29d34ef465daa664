import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { RepoPaths } from '../../src/cache/layout.js';
import type { FetchFile } from '../../src/server/flights.js';
import { createPullFetcher } from '../../src/server/hf-upstream.js';
import { createMirrorServer, type MirrorServer } from '../../src/server/mirror-server.js';
import { auditCache, isClean } from '../support/cache-audit.js';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';
import { fastClock } from './engine-fixture.js';
import { testTempDir } from '../support/temp.js';

/** Cases 22–24: the mirror filling misses from an upstream that lies, is hammered, or is gone. */

let hub: FixtureHub | undefined;
let mirror: MirrorServer | undefined;
afterEach(async () => {
  await mirror?.close();
  await hub?.close();
  mirror = undefined;
  hub = undefined;
});

const WEIGHTS = { path: 'model.safetensors', size: 3 * 1024 * 1024 + 5 };
const FILES = [WEIGHTS, { path: 'config.json', content: '{"layers":2}' }];

async function start(engine: { stallTimeoutMs?: number } = {}): Promise<{ hub: FixtureHub; mirror: MirrorServer; cacheDir: string; fetches: () => number }> {
  hub = await startFixtureHub({ repos: [{ repoId: 'org/m', files: FILES }] });
  const dir = await testTempDir('mf-mirror-');
  // Short engine timeouts and recorded (not waited) backoff: failure paths finish quickly.
  const pullFile = createPullFetcher({ cacheDir: dir, endpoint: hub.endpoint, pull: { clock: fastClock, transfer: { maxAttempts: 3, stallTimeoutMs: engine.stallTimeoutMs ?? 2000 } } });
  let fetches = 0;
  const fetchFile: FetchFile = (request) => {
    fetches += 1;
    return pullFile(request);
  };
  mirror = createMirrorServer({ cacheDir: dir, upstream: hub.endpoint, fetchFile, graceMs: 100 });
  await mirror.listen();
  return { hub, mirror, cacheDir: dir, fetches: () => fetches };
}

/** A GET that reports how many body bytes arrived and whether the response ended cleanly. */
function getBody(url: string): Promise<{ status: number; length: number | undefined; body: Buffer; complete: boolean }> {
  return new Promise((resolve) => {
    const req = request(url, { agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      const finish = (complete: boolean): void => {
        const declared = res.headers['content-length'];
        resolve({ status: res.statusCode ?? 0, length: declared === undefined ? undefined : Number(declared), body: Buffer.concat(chunks), complete });
      };
      res.on('end', () => finish(res.complete));
      res.on('error', () => finish(false));
      res.on('aborted', () => finish(false));
    });
    req.on('error', () => resolve({ status: 0, length: undefined, body: Buffer.alloc(0), complete: false }));
    req.end();
  });
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

describe('pull-through integrity (case 22)', () => {
  it('upstream sends wrong bytes: the client response ends short, never a complete wrong file, nothing stored', async () => {
    const { hub, mirror, cacheDir } = await start();
    const file = hub.file('org/m', WEIGHTS.path);
    hub.cdn.addFault({ fault: { corruptOffsets: [file.size - 10] } });
    const res = await getBody(`${mirror.url}/org/m/resolve/main/${WEIGHTS.path}`);
    const wholeAndWrong = res.complete && res.status === 200 && res.body.length === file.size && sha256(res.body) !== file.sha256;
    expect(wholeAndWrong, 'a complete response with wrong bytes').toBe(false);
    if (res.status === 200) {
      expect(res.complete && res.body.length === file.size).toBe(false);
    } else {
      expect(res.status).toBeGreaterThanOrEqual(500);
    }
    const repo = new RepoPaths(cacheDir, 'model', 'org/m');
    expect(await readdir(repo.blobsDir).catch(() => [])).not.toContain(file.sha256);
    expect(isClean(await auditCache(cacheDir))).toBe(true);

    // Once upstream is healthy again the file comes through (a request racing the failed
    // download's cleanup may still end short, never wrong).
    hub.cdn.clearFaults();
    let again = await getBody(`${mirror.url}/org/m/resolve/main/${WEIGHTS.path}`);
    for (let i = 0; i < 5 && !again.complete; i++) {
      expect(again.body.length).toBeLessThan(file.size);
      await new Promise((resolve) => setTimeout(resolve, 200));
      again = await getBody(`${mirror.url}/org/m/resolve/main/${WEIGHTS.path}`);
    }
    expect(again.complete).toBe(true);
    expect(sha256(again.body)).toBe(file.sha256);
    expect(isClean(await auditCache(cacheDir))).toBe(true);
  });
});

describe('single flight (case 23)', () => {
  it('50 clients missing the same blob cause one upstream fetch', async () => {
    // A stall timeout long enough that a busy machine never makes the engine fetch a segment twice:
    // the bytes counted below are then exactly what single flight promises.
    const { hub, mirror, fetches } = await start({ stallTimeoutMs: 60_000 });
    const file = hub.file('org/m', WEIGHTS.path);
    hub.cdn.addFault({ fault: { throttleBytesPerSec: 8 * 1024 * 1024 } });
    const results = await Promise.all(Array.from({ length: 50 }, () => getBody(`${mirror.url}/org/m/resolve/main/${WEIGHTS.path}`)));
    for (const r of results) {
      expect(r.status).toBe(200);
      expect(r.complete).toBe(true);
      expect(sha256(r.body)).toBe(file.sha256);
    }
    const upstreamBody = hub.cdn.requests.filter((r) => r.method === 'GET' && r.headers.range !== 'bytes=0-0').reduce((sum, r) => sum + r.bodyBytes, 0);
    expect(upstreamBody).toBe(file.size);
    // One download was started for all of them (the blob lock alone would also keep the bytes to one
    // fetch, but 50 pulls would each resolve, lock and wait).
    expect(fetches()).toBe(1);
  });
});

describe('upstream unreachable (case 24)', () => {
  it('cached commits are served, branches resolve from refs, a miss is a clear 502/504', async () => {
    const { hub: up, mirror } = await start();
    const commit = up.commitOf('org/m');
    const config = await getBody(`${mirror.url}/org/m/resolve/main/config.json`);
    expect(config.body.toString()).toBe('{"layers":2}');
    await up.close();
    hub = undefined;

    // Branch and commit both answer from the cache.
    for (const rev of ['main', commit]) {
      const res = await getBody(`${mirror.url}/org/m/resolve/${rev}/config.json`);
      expect(res.status, rev).toBe(200);
      expect(res.body.toString()).toBe('{"layers":2}');
    }
    const info = await fetch(`${mirror.url}/api/models/org/m/revision/main`);
    expect(info.status).toBe(200);
    expect(((await info.json()) as { sha: string }).sha).toBe(commit);

    // Not cached: a gateway error that says why.
    const miss = await fetch(`${mirror.url}/org/m/resolve/main/${WEIGHTS.path}`);
    expect([502, 504]).toContain(miss.status);
    const text = (await miss.text()) + (miss.headers.get('x-error-message') ?? '');
    expect(text.toLowerCase()).toMatch(/upstream|unreachable|network|connect/);
    // A repo never seen public cannot be checked: refused (fails closed), with the same gateway status family.
    const unknown = await fetch(`${mirror.url}/api/models/org/other/revision/main`);
    expect(unknown.status).toBe(503);
  });
});
