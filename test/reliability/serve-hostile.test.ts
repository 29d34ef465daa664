import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RepoPaths } from '../../src/cache/layout.js';
import { createMirrorServer, type MirrorServer } from '../../src/server/mirror-server.js';
import { buildCachedRepo, digestOf, fakeCommit, type BuiltFile } from '../support/cache-builder.js';
import { rawRequest } from '../support/raw-request.js';

/** Cases 21, 25 and 26: the mirror against hostile paths, huge listings, odd names and slow clients. */

const SECRET = 'top secret outside the cache';

describe('the mirror never serves outside its root (case 21)', () => {
  let root: string;
  let outside: string;
  let mirror: MirrorServer;
  const commit = fakeCommit('hostile');

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'mf-serve-root-'));
    outside = await mkdtemp(join(tmpdir(), 'mf-serve-out-'));
    await writeFile(join(outside, 'secret.txt'), SECRET);
    const repo = await buildCachedRepo(root, { repoId: 'org/model', commit, files: [{ path: 'config.json', content: Buffer.from('{}') }] });
    await symlink(join(outside, 'secret.txt'), join(repo.snapshotDir(commit), 'leak.txt'));
    await symlink(outside, join(repo.snapshotDir(commit), 'leakdir'));
    await symlink(`../../../../${outside.split('/').pop()}/secret.txt`, join(repo.snapshotDir(commit), 'relative-leak.txt'));
    // A partial download inside the root is not a complete file either.
    const partial = join(repo.stateDir, 'partial', `${'ab'.repeat(32)}.part`);
    await mkdir(join(repo.stateDir, 'partial'), { recursive: true });
    await writeFile(partial, 'half a file');
    await symlink(partial, join(repo.snapshotDir(commit), 'partial.bin'));
    mirror = createMirrorServer({ cacheDir: root, publicRepos: ['*'] });
    await mirror.listen();
  });
  afterAll(async () => {
    await mirror?.close();
    await rm(root, { recursive: true, force: true });
    await rm(outside, { recursive: true, force: true });
  });

  const hostile = [
    '/org/model/resolve/main/../../../../../../etc/passwd',
    '/org/model/resolve/main/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd',
    '/org/model/resolve/main/%2E%2E%2F%2E%2E%2F%2E%2E%2Fetc%2Fpasswd',
    '/org/model/resolve/main/..%2f..%2f..%2f..%2fetc%2fpasswd',
    '/org/model/resolve/main/..%5c..%5c..%5cetc%5cpasswd',
    '/org/model/resolve/main/%252e%252e/%252e%252e/etc/passwd',
    '/org/model/resolve/main/config.json%00.txt',
    '/org/model/resolve/..%2f..%2f..%2f/etc/passwd',
    '/org/model/resolve/main//etc/passwd',
    '/org/model/resolve/main/leak.txt',
    '/org/model/resolve/main/relative-leak.txt',
    '/org/model/resolve/main/leakdir/secret.txt',
    '/org/model/resolve/main/partial.bin',
    '/..%2f..%2f..%2fetc/model/resolve/main/passwd',
    '/api/models/org/model/tree/main/..%2f..%2f..',
    '/api/models/org/model/tree/main/leakdir',
    '/api/models/..%2F..%2F..%2Fetc/passwd',
  ];
  for (const path of hostile) {
    it(`refuses ${path}`, async () => {
      const res = await rawRequest(mirror.url, path);
      expect(res.status).toBeGreaterThanOrEqual(400);
      const body = res.body.toString('latin1');
      expect(body).not.toContain(SECRET);
      expect(body).not.toContain('root:x:0');
      expect(body).not.toContain('half a file');
    });
  }

  it('still serves the real file and lists none of the planted entries', async () => {
    expect((await rawRequest(mirror.url, '/org/model/resolve/main/config.json')).body.toString()).toBe('{}');
    const tree = await rawRequest(mirror.url, '/api/models/org/model/tree/main?recursive=true');
    const body = tree.body.toString();
    expect(body).toContain('config.json');
    for (const planted of ['leak.txt', 'relative-leak', 'secret.txt', 'partial.bin']) expect(body).not.toContain(planted);
  });
});

describe('large listings (case 25)', () => {
  let root: string;
  let mirror: MirrorServer;
  const commit = fakeCommit('big');
  // 5k here; the soak run (npm run test:chaos) lists 100k.
  const COUNT = Number(process.env.MODELFETCH_BIG_LISTING ?? 5_000);
  const PAGE = Math.max(1000, Math.ceil(COUNT / 10));

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'mf-serve-big-'));
    const one: BuiltFile = { path: 'shard/0.json', content: Buffer.from('{"n":0}') };
    const repo = await buildCachedRepo(root, { repoId: 'org/big', commit, files: [one] });
    // Many snapshot entries linking to one blob: what a huge dataset looks like on disk.
    const target = `../../../blobs/${digestOf(one).hex}`;
    const dir = join(repo.snapshotDir(commit), 'shard');
    const batch: Promise<void>[] = [];
    for (let i = 1; i < COUNT; i++) {
      batch.push(symlink(target, join(dir, `${i}.json`)));
      if (batch.length >= 512) await Promise.all(batch.splice(0));
    }
    await Promise.all(batch);
    mirror = createMirrorServer({ cacheDir: root, publicRepos: ['*'], treePageSize: PAGE });
    await mirror.listen();
  }, 600_000);
  afterAll(async () => {
    await mirror?.close();
    await rm(root, { recursive: true, force: true });
  });

  it(`pages through every file of a huge snapshot, each listed once`, async () => {
    const seen = new Set<string>();
    let url: string | undefined = `${mirror.url}/api/models/org/big/tree/main/shard`;
    let pages = 0;
    while (url) {
      const res: Response = await fetch(url);
      expect(res.status).toBe(200);
      for (const entry of (await res.json()) as Array<{ path: string }>) {
        expect(seen.has(entry.path)).toBe(false);
        seen.add(entry.path);
      }
      url = /<([^>]+)>;\s*rel="next"/.exec(res.headers.get('link') ?? '')?.[1];
      pages += 1;
      expect(pages).toBeLessThan(COUNT);
    }
    expect(seen.size).toBe(COUNT);
    expect(pages).toBe(Math.ceil(COUNT / PAGE));
  }, 600_000);
});

describe('long paths and Unicode names (case 25)', () => {
  let root: string;
  let mirror: MirrorServer;
  const commit = fakeCommit('names');
  const longPath = Array.from({ length: 12 }, (_, i) => `${'d'.repeat(70)}${i}`).join('/') + '/w.bin';
  const special: BuiltFile[] = [
    { path: longPath, content: Buffer.from('long') },
    { path: 'caf\u00e9/m\u00fcnchen.txt', content: Buffer.from('composed (NFC)') },
    { path: 'cafe\u0301/mu\u0308nchen.txt', content: Buffer.from('decomposed (NFD)') },
    { path: '名前/データ.bin', content: randomBytes(1000), lfs: true },
    { path: 'with space & plus+hash#%.txt', content: Buffer.from('odd') },
  ];

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'mf-serve-names-'));
    await buildCachedRepo(root, { repoId: 'org/names', commit, files: special });
    mirror = createMirrorServer({ cacheDir: root, publicRepos: ['*'] });
    await mirror.listen();
  });
  afterAll(async () => {
    await mirror?.close();
    await rm(root, { recursive: true, force: true });
  });

  it('serves long paths and NFC and NFD names as distinct files', async () => {
    expect(new RepoPaths(root, 'model', 'org/names').snapshotFile(commit, longPath).length).toBeGreaterThan(900);
    for (const file of special) {
      const encoded = file.path.split('/').map(encodeURIComponent).join('/');
      const res = await fetch(`${mirror.url}/org/names/resolve/main/${encoded}`);
      expect(res.status, file.path).toBe(200);
      expect(Buffer.from(await res.arrayBuffer()).equals(file.content), 'same bytes').toBe(true);
    }
    const info = (await (await fetch(`${mirror.url}/api/models/org/names/revision/main`)).json()) as { siblings: Array<{ rfilename: string }> };
    const names = info.siblings.map((s) => s.rfilename).sort();
    expect(names).toEqual(special.map((f) => f.path).sort());
    const tree = (await (await fetch(`${mirror.url}/api/models/org/names/tree/main?recursive=true`)).json()) as Array<{ path: string; type: string }>;
    expect(tree.filter((e) => e.type === 'file').map((e) => e.path).sort()).toEqual(names);
  });
});

describe('slow clients (case 26)', () => {
  let root: string;
  let mirror: MirrorServer;
  const commit = fakeCommit('slow');

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'mf-serve-slow-'));
    await buildCachedRepo(root, { repoId: 'org/m', commit, files: [{ path: 'config.json', content: Buffer.from('{"ok":true}') }, { path: 'w.bin', content: randomBytes(4 * 1024 * 1024), lfs: true }] });
    mirror = createMirrorServer({ cacheDir: root, publicRepos: ['*'], headersTimeoutMs: 1500 });
    await mirror.listen();
  });
  afterAll(async () => {
    await mirror?.close();
    await rm(root, { recursive: true, force: true });
  });

  it('has finite header and request timeouts by default', () => {
    const defaults = createMirrorServer({ cacheDir: root });
    expect(defaults.server.headersTimeout).toBeGreaterThan(0);
    expect(defaults.server.headersTimeout).toBeLessThanOrEqual(30_000);
    expect(defaults.server.requestTimeout).toBeGreaterThan(0);
  });

  it('times out slowloris clients while answering everyone else', async () => {
    const { port } = new URL(mirror.url);
    const closed: boolean[] = [];
    const sockets: Socket[] = [];
    for (let i = 0; i < 20; i++) {
      const socket = connect(Number(port), '127.0.0.1');
      sockets.push(socket);
      const index = closed.push(false) - 1;
      socket.on('close', () => (closed[index] = true));
      socket.on('error', () => {});
      socket.write('GET /org/m/resolve/main/config.json HTTP/1.1\r\nHost: x\r\n');
    }
    // Drip a header byte now and then, never finishing the request.
    const drip = setInterval(() => {
      for (const s of sockets) if (!s.destroyed) s.write('X');
    }, 200);
    // A reader that never reads: a big body with a paused socket.
    const stuck = connect(Number(port), '127.0.0.1');
    stuck.on('error', () => {});
    stuck.write('GET /org/m/resolve/main/w.bin HTTP/1.1\r\nHost: x\r\n\r\n');
    stuck.pause();
    try {
      for (let i = 0; i < 10; i++) {
        const res = await fetch(`${mirror.url}/org/m/resolve/main/config.json`);
        expect(await res.text()).toBe('{"ok":true}');
      }
      // Every slow client is cut off, without the test waiting on a clock of its own.
      await new Promise<void>((resolve) => {
        const check = setInterval(() => {
          if (closed.every(Boolean)) {
            clearInterval(check);
            resolve();
          }
        }, 50);
      });
      expect(closed.every(Boolean)).toBe(true);
      const res = await fetch(`${mirror.url}/healthz`);
      expect(res.status).toBe(200);
    } finally {
      clearInterval(drip);
      for (const s of sockets) s.destroy();
      stuck.destroy();
    }
  }, 60_000);
});
