import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, symlink, writeFile, mkdir, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RepoPaths } from '../../src/cache/layout.js';
import { readLastUsed } from '../../src/cache/usage.js';
import { createMirrorServer, type MirrorServer } from '../../src/server/mirror-server.js';
import { buildCachedRepo, digestOf, fakeCommit, type BuiltFile } from '../support/cache-builder.js';
import { rawRequest } from '../support/raw-request.js';

describe('serving a cache over the Hub API', () => {
  let root: string;
  let outside: string;
  let mirror: MirrorServer;
  const logs: string[] = [];
  const commit = fakeCommit('serve-cache');
  const older = fakeCommit('older');
  const weights: BuiltFile = { path: 'model.safetensors', content: randomBytes(300_000), lfs: true };
  const config: BuiltFile = { path: 'config.json', content: Buffer.from('{"hidden": 8}\n') };
  const nested: BuiltFile = { path: 'tokenizer/vocab.txt', content: Buffer.from('a\nb\nc\n') };
  const copied: BuiltFile = { path: 'README.md', content: Buffer.from('# copied\n') };

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'mf-serve-'));
    outside = await mkdtemp(join(tmpdir(), 'mf-outside-'));
    await writeFile(join(outside, 'secret.txt'), 'top secret');
    const repo = await buildCachedRepo(root, { repoId: 'org/model', commit, files: [weights, config, nested] });
    await buildCachedRepo(root, { repoId: 'org/model', commit: older, refs: ['v1'], files: [config] });
    await buildCachedRepo(root, { repoId: 'org/data', repoType: 'dataset', commit, files: [config] });
    // A copied (non-symlink) snapshot file, as on file systems without symlinks.
    await buildCachedRepo(root, { repoId: 'org/copied', commit, files: [copied], mode: 'copy' });
    // A planted symlink that points outside the cache root.
    await symlink(join(outside, 'secret.txt'), join(repo.snapshotDir(commit), 'leak.txt'));
    await symlink(outside, join(repo.snapshotDir(commit), 'leakdir'));
    mirror = createMirrorServer({ cacheDir: root, publicRepos: ['*'], treePageSize: 2, log: (line) => logs.push(line) });
    await mirror.listen();
  });

  afterAll(async () => {
    await mirror?.close();
    await rm(root, { recursive: true, force: true });
    await rm(outside, { recursive: true, force: true });
  });

  it('answers model info with sha and siblings, by branch, tag, commit and HEAD', async () => {
    const info = (await (await fetch(`${mirror.url}/api/models/org/model`)).json()) as { sha: string; siblings: { rfilename: string; size: number }[] };
    expect(info.sha).toBe(commit);
    expect(info.siblings.map((s) => s.rfilename)).toEqual(['config.json', 'model.safetensors', 'tokenizer/vocab.txt']);
    expect(info.siblings.find((s) => s.rfilename === 'model.safetensors')!.size).toBe(300_000);
    for (const rev of ['main', 'HEAD', commit]) {
      expect(((await (await fetch(`${mirror.url}/api/models/org/model/revision/${rev}`)).json()) as { sha: string }).sha).toBe(commit);
    }
    expect(((await (await fetch(`${mirror.url}/api/models/org/model/revision/v1`)).json()) as { sha: string }).sha).toBe(older);
    expect(((await (await fetch(`${mirror.url}/api/datasets/org/data`)).json()) as { sha: string }).sha).toBe(commit);
  });

  it('answers 404 with the Hub error codes', async () => {
    const repo = await fetch(`${mirror.url}/api/models/org/nothing`);
    expect(repo.status).toBe(404);
    expect(repo.headers.get('x-error-code')).toBe('RepoNotFound');
    const rev = await fetch(`${mirror.url}/org/model/resolve/nobranch/config.json`);
    expect(rev.status).toBe(404);
    expect(rev.headers.get('x-error-code')).toBe('RevisionNotFound');
    const entry = await fetch(`${mirror.url}/org/model/resolve/main/missing.bin`, { method: 'HEAD' });
    expect(entry.status).toBe(404);
    expect(entry.headers.get('x-error-code')).toBe('EntryNotFound');
    // The model repo is not a dataset.
    expect((await fetch(`${mirror.url}/datasets/org/model/resolve/main/config.json`)).headers.get('x-error-code')).toBe('RepoNotFound');
  });

  it('lists the tree recursively in pages linked by an absolute rel="next" URL', async () => {
    const seen: { type: string; path: string; oid: string; lfs?: { oid: string } }[] = [];
    let url: string | undefined = `${mirror.url}/api/models/org/model/tree/main?recursive=true&expand=false`;
    let pages = 0;
    while (url) {
      const res: Response = await fetch(url);
      expect(res.status).toBe(200);
      seen.push(...((await res.json()) as typeof seen));
      const link = res.headers.get('link');
      url = link ? /<([^>]+)>;\s*rel="next"/.exec(link)?.[1] : undefined;
      if (url) expect(url.startsWith(mirror.url)).toBe(true);
      pages++;
    }
    expect(pages).toBe(2);
    expect(seen.map((e) => `${e.type}:${e.path}`)).toEqual(['directory:tokenizer', 'file:tokenizer/vocab.txt', 'file:config.json', 'file:model.safetensors']);
    expect(seen.find((e) => e.path === 'model.safetensors')!.lfs!.oid).toBe(digestOf(weights).hex);
    expect(seen.find((e) => e.path === 'config.json')!.oid).toBe(digestOf(config).hex);
    const sub = (await (await fetch(`${mirror.url}/api/models/org/model/tree/main/tokenizer`)).json()) as { path: string }[];
    expect(sub.map((e) => e.path)).toEqual(['tokenizer/vocab.txt']);
    expect((await fetch(`${mirror.url}/api/models/org/model/tree/main/nowhere`)).status).toBe(404);
  });

  it('answers paths-info posted as JSON or as a form', async () => {
    const json = await fetch(`${mirror.url}/api/models/org/model/paths-info/main`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ paths: ['config.json', 'tokenizer'], expand: true }) });
    const entries = (await json.json()) as { path: string; type: string; lastCommit?: { id: string } }[];
    expect(entries.map((e) => `${e.type}:${e.path}`)).toEqual(['file:config.json', 'directory:tokenizer']);
    expect(entries[0]!.lastCommit!.id).toBe(commit);
    const form = await fetch(`${mirror.url}/api/models/org/model/paths-info/main`, { method: 'POST', body: new URLSearchParams([['paths', 'model.safetensors'], ['expand', 'False']]) });
    expect(((await form.json()) as { path: string }[]).map((e) => e.path)).toEqual(['model.safetensors']);
  });

  it('resolves files with the headers hf_hub_download reads, by branch and by commit', async () => {
    const head = await fetch(`${mirror.url}/org/model/resolve/main/model.safetensors`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    const etag = `"${digestOf(weights).hex}"`;
    expect(head.headers.get('etag')).toBe(etag);
    expect(head.headers.get('x-linked-etag')).toBe(etag);
    expect(head.headers.get('x-repo-commit')).toBe(commit);
    expect(head.headers.get('x-linked-size')).toBe('300000');
    expect(head.headers.get('content-length')).toBe('300000');
    expect(head.headers.get('accept-ranges')).toBe('bytes');
    const get = await fetch(`${mirror.url}/org/model/resolve/${commit}/model.safetensors`);
    expect(Buffer.from(await get.arrayBuffer()).equals(weights.content)).toBe(true);
    const small = await fetch(`${mirror.url}/org/model/resolve/main/tokenizer/vocab.txt`);
    expect(await small.text()).toBe('a\nb\nc\n');
    expect(small.headers.get('etag')).toBe(`"${digestOf(nested).hex}"`);
    const data = await fetch(`${mirror.url}/datasets/org/data/resolve/main/config.json`);
    expect(await data.text()).toBe('{"hidden": 8}\n');
    // Serving records the revision's last use, which gc and the status page read.
    const repo = new RepoPaths(root, 'model', 'org/model');
    await expect.poll(() => readLastUsed(repo, commit)).toBeGreaterThan(Date.now() - 60_000);
    const status = (await (await fetch(`${mirror.url}/api/_status`)).json()) as { repos: { repoId: string; lastUsed: number }[] };
    expect(status.repos.find((r) => r.repoId === 'org/model')!.lastUsed).toBe(Math.max((await readLastUsed(repo, commit))!, (await readLastUsed(repo, older)) ?? 0));
  });

  it('answers Range with 206, out-of-range with 416, and honours If-Range', async () => {
    const url = `${mirror.url}/org/model/resolve/main/model.safetensors`;
    const etag = `"${digestOf(weights).hex}"`;
    const part = await fetch(url, { headers: { range: 'bytes=1000-1999' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe('bytes 1000-1999/300000');
    expect(Buffer.from(await part.arrayBuffer()).equals(weights.content.subarray(1000, 2000))).toBe(true);
    const suffix = await fetch(url, { headers: { range: 'bytes=-10' } });
    expect(Buffer.from(await suffix.arrayBuffer()).equals(weights.content.subarray(299_990))).toBe(true);
    const beyond = await fetch(url, { headers: { range: 'bytes=300000-' } });
    expect(beyond.status).toBe(416);
    expect(beyond.headers.get('content-range')).toBe('bytes */300000');
    const same = await fetch(url, { headers: { range: 'bytes=0-9', 'if-range': etag } });
    expect(same.status).toBe(206);
    const changed = await fetch(url, { headers: { range: 'bytes=0-9', 'if-range': '"something-else"' } });
    expect(changed.status).toBe(200);
    expect((await changed.arrayBuffer()).byteLength).toBe(300_000);
  });

  it('serves copied snapshot files under their blob digest', async () => {
    const res = await fetch(`${mirror.url}/org/copied/resolve/main/README.md`);
    expect(await res.text()).toBe('# copied\n');
    expect(res.headers.get('etag')).toBe(`"${digestOf(copied).hex}"`);
  });

  it('never serves outside the cache root', async () => {
    const cases: [string, number][] = [
      ['/org/model/resolve/main/../../../../etc/passwd', 400],
      ['/org/model/resolve/main/%2e%2e/%2e%2e/%2e%2e/etc/passwd', 400],
      ['/org/model/resolve/main/..%2f..%2f..%2fetc%2fpasswd', 400],
      ['/org/model/resolve/main/tokenizer%2fvocab.txt', 400],
      ['/org/model/resolve/main/..\\..\\etc\\passwd', 400],
      ['/org/model/resolve/main/tokenizer%5cvocab.txt', 400],
      ['/org/model/resolve/%2e%2e%2f%2e%2e/config.json', 400],
      ['/org/model/resolve/main/leak.txt', 404],
      ['/org/model/resolve/main/leakdir/secret.txt', 404],
    ];
    for (const [path, status] of cases) {
      const res = await rawRequest(mirror.url, path);
      expect(res.status, path).toBe(status);
      expect(res.body.toString()).not.toContain('top secret');
    }
    // The planted links are not listed either.
    const tree = (await (await fetch(`${mirror.url}/api/models/org/model/tree/main?recursive=true`)).json()) as { path: string }[];
    expect(tree.map((e) => e.path)).not.toContain('leak.txt');
    // A ref that is itself a link outside the root is not followed.
    const repoDir = join(root, 'models--org--model');
    await mkdir(join(outside, 'snapshots'), { recursive: true });
    await writeFile(join(repoDir, 'refs', 'evil'), '../../../' + 'x');
    expect((await rawRequest(mirror.url, '/org/model/resolve/evil/config.json')).status).toBe(404);
    await unlink(join(repoDir, 'refs', 'evil'));
  });

  it('has health, readiness and Prometheus metrics, and logs one redacted line per request', async () => {
    expect((await fetch(`${mirror.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${mirror.url}/readyz`)).status).toBe(200);
    await fetch(`${mirror.url}/org/model/resolve/main/config.json?token=hf_abcdefghijklmnop`, { headers: { authorization: 'Bearer hf_secretsecretsecret' } });
    const metrics = await (await fetch(`${mirror.url}/metrics`)).text();
    expect(metrics).toMatch(/^modelfetch_served_bytes_total \d+/m);
    expect(Number(/^modelfetch_cache_hits_total (\d+)/m.exec(metrics)![1])).toBeGreaterThan(0);
    expect(metrics).toMatch(/modelfetch_http_request_duration_seconds_bucket\{le="0.1",route="resolve"\}/);
    expect(metrics).toContain('modelfetch_pulls_in_flight');
    expect(metrics).toContain('modelfetch_upstream_bytes_total');
    const line = logs.find((l) => l.includes('config.json?token='))!;
    expect(line).toMatch(/GET \/org\/model\/resolve\/main\/config\.json\?token=\*\*\* 200 14 [\d.]+ms hit/);
    expect(logs.join('\n')).not.toContain('hf_abcdefghijklmnop');
    expect(logs.join('\n')).not.toContain('secretsecret');
  });
});
