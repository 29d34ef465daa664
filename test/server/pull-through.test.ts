import { createHash } from 'node:crypto';
import { access, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { snapshotDownload } from '@huggingface/hub';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RepoPaths } from '../../src/cache/layout.js';
import { createMirrorServer, type MirrorServer } from '../../src/server/mirror-server.js';
import { runCli } from '../support/cli.js';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';
import { hasTransformers, interopPython, runPython } from '../support/python.js';

const GOOD_TOKEN = 'hf_mirrorgoodtoken0001';
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** A cold mirror in front of the fixture Hub: misses are pulled once, verified, stored and shared. */
describe('pull-through from an upstream hub', () => {
  let hub: FixtureHub;
  let work: string;
  let mirror: MirrorServer | undefined;
  const logs: string[] = [];

  beforeAll(async () => {
    hub = await startFixtureHub({
      repos: [
        {
          repoId: 'org/model',
          files: [
            { path: 'config.json', content: '{"layers": 2}\n' },
            { path: 'model.safetensors', size: 6 * 1024 * 1024 + 11 },
            { path: 'extra/weights-2.bin', size: 2 * 1024 * 1024 },
            { path: 'tokenizer/vocab.txt', content: 'a\nb\n' },
          ],
        },
        { repoId: 'org/gated', gatedToken: GOOD_TOKEN, files: [{ path: 'secret.bin', size: 1500 * 1024 }] },
        { repoId: 'org/bad', files: [{ path: 'w.bin', size: 3 * 1024 * 1024 }] },
        { repoId: 'org/later', files: [{ path: 'a.txt', content: 'later' }] },
        { repoId: 'org/tiny-bert', files: [{ path: 'config.json', content: JSON.stringify({ model_type: 'bert', hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 37, vocab_size: 99 }) }] },
      ],
    });
    work = await mkdtemp(join(tmpdir(), 'mf-pullthrough-'));
  });

  afterEach(async () => {
    await mirror?.close();
    mirror = undefined;
  });

  afterAll(async () => {
    await hub.close();
    await rm(work, { recursive: true, force: true });
  });

  async function startMirror(name: string, options: Partial<Parameters<typeof createMirrorServer>[0]> = {}): Promise<MirrorServer> {
    mirror = createMirrorServer({ cacheDir: join(work, name), upstream: hub.endpoint, token: GOOD_TOKEN, log: (l) => logs.push(l), ...options });
    await mirror.listen();
    return mirror;
  }

  /**
   * Body bytes upstream sent for one file (the hub for small files, the CDN for LFS ones), apart
   * from the engine's one-byte probes, and how many probes there were.
   */
  function upstreamBytes(path: string, repoId = 'org/model'): { bytes: number; probes: number } {
    const file = hub.file(repoId, path);
    const target = file.lfs ? `/lfs/${file.sha256}` : `/${repoId}/resolve/`;
    const gets = hub.requests().filter((r) => r.method === 'GET' && r.url.startsWith(target) && (file.lfs || decodeURIComponent(r.url).endsWith(`/${path}`)));
    const probes = gets.filter((r) => r.headers.range === 'bytes=0-0');
    return { bytes: gets.filter((r) => !probes.includes(r)).reduce((sum, r) => sum + r.bodyBytes, 0), probes: probes.length };
  }

  it('N clients pulling the same repo at once: upstream sends each blob once, every client gets identical verified bytes', async () => {
    const server = await startMirror('cold');
    hub.resetLogs();
    const clients = 5;
    const pulls = Array.from({ length: clients }, (_, i) => runCli(['pull', 'org/model', '--endpoint', server.url, '--cache-dir', join(work, `client-${i}`), '--quiet'], {}));
    const hfjs = snapshotDownload({ repo: 'org/model', cacheDir: join(work, 'client-hfjs'), hubUrl: server.url });
    const runs = await Promise.all(pulls);
    const hfjsFolder = await hfjs;
    for (const run of runs) expect(run.code, run.stderr).toBe(0);
    const commit = hub.commitOf('org/model');
    for (const path of ['config.json', 'model.safetensors', 'extra/weights-2.bin', 'tokenizer/vocab.txt']) {
      const expected = hub.file('org/model', path).sha256;
      for (let i = 0; i < clients; i++) {
        const data = await readFile(join(work, `client-${i}`, 'models--org--model', 'snapshots', commit, path));
        expect(sha256(data), `client ${i} ${path}`).toBe(expected);
      }
      expect(sha256(await readFile(join(hfjsFolder, path)))).toBe(expected);
      // One download per blob, however many clients asked.
      const upstream = upstreamBytes(path);
      expect(upstream.bytes, path).toBe(hub.file('org/model', path).size);
      expect(upstream.probes, path).toBeLessThanOrEqual(1);
    }
    // Metadata too: concurrent clients share the mirror's questions to upstream.
    const api = hub.hub.requests.filter((r) => r.url.startsWith('/api/models/org/model/'));
    expect(api.filter((r) => r.url.includes('/tree/')).length).toBe(1);
    expect(api.filter((r) => r.url.includes('/revision/') && r.headers.authorization !== undefined).length).toBe(1);
    // The mirror's own cache now holds the repo in the standard layout.
    const mirrorRepo = new RepoPaths(join(work, 'cold'), 'model', 'org/model');
    expect(sha256(await readFile(mirrorRepo.snapshotFile(commit, 'model.safetensors')))).toBe(hub.file('org/model', 'model.safetensors').sha256);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(Number(/^modelfetch_upstream_bytes_total (\d+)/m.exec(metrics)![1])).toBeGreaterThanOrEqual(8 * 1024 * 1024);
    expect(metrics).toMatch(/^modelfetch_pulls_in_flight 0$/m);
    // A second round is served from the cache: upstream sees no file request at all.
    hub.resetLogs();
    const again = await runCli(['pull', 'org/model', '--endpoint', server.url, '--cache-dir', join(work, 'client-again'), '--quiet']);
    expect(again.code, again.stderr).toBe(0);
    expect(hub.requests().filter((r) => r.url.includes('/resolve/') || r.url.startsWith('/lfs/'))).toEqual([]);
  });

  it('streams a large miss to a plain GET and answers HEAD the way hf_hub_download reads it', async () => {
    const server = await startMirror('plain');
    const head = await fetch(`${server.url}/org/model/resolve/main/model.safetensors`, { method: 'HEAD' });
    const file = hub.file('org/model', 'model.safetensors');
    expect(head.status).toBe(200);
    expect(head.headers.get('x-repo-commit')).toBe(hub.commitOf('org/model'));
    expect(head.headers.get('x-linked-etag')).toBe(`"${file.sha256}"`);
    expect(head.headers.get('x-linked-size')).toBe(String(file.size));
    expect([...head.headers.keys()].filter((k) => k.startsWith('x-xet') || k === 'link')).toEqual([]);
    const get = await fetch(`${server.url}/org/model/resolve/main/model.safetensors`);
    expect(get.status).toBe(200);
    expect(sha256(Buffer.from(await get.arrayBuffer()))).toBe(file.sha256);
    expect(logs.some((l) => /GET \/org\/model\/resolve\/main\/model\.safetensors 200 \d+ [\d.]+ms miss/.test(l))).toBe(true);
  });

  it('keeps gated repos gated: no token 401, a refused token 403, a checked token gets the file; tokens never logged', async () => {
    const server = await startMirror('gated');
    const url = `${server.url}/org/gated/resolve/main/secret.bin`;
    const anonymous = await fetch(url);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('x-error-code')).toBe('GatedRepo');
    const wrong = await fetch(url, { headers: { authorization: 'Bearer hf_wrongtoken00000000' } });
    expect(wrong.status).toBe(403);
    const good = await fetch(url, { headers: { authorization: `Bearer ${GOOD_TOKEN}` } });
    expect(good.status).toBe(200);
    expect(sha256(Buffer.from(await good.arrayBuffer()))).toBe(hub.file('org/gated', 'secret.bin').sha256);
    // Now cached, and still gated.
    expect((await fetch(url)).status).toBe(401);
    expect((await fetch(`${server.url}/api/models/org/gated/tree/main`)).status).toBe(401);
    expect(logs.join('\n')).not.toContain(GOOD_TOKEN);
    expect(logs.join('\n')).not.toContain('hf_wrongtoken');
  });

  it('ends the response short and stores nothing when upstream bytes fail verification', async () => {
    const server = await startMirror('corrupt');
    const file = hub.file('org/bad', 'w.bin');
    hub.cdn.addFault({ match: (req) => req.url?.startsWith(`/lfs/${file.sha256}`) ?? false, fault: { corruptOffsets: [file.size - 5] } });
    try {
      const res = await fetch(`${server.url}/org/bad/resolve/main/w.bin`);
      const outcome = await res.arrayBuffer().then(
        (body) => ({ complete: body.byteLength === file.size, hash: sha256(Buffer.from(body)) }),
        () => ({ complete: false, hash: '' }),
      );
      expect(outcome.complete).toBe(false);
      const repo = new RepoPaths(join(work, 'corrupt'), 'model', 'org/bad');
      await expect(access(repo.blob({ algorithm: 'sha256', hex: file.sha256 }))).rejects.toThrow();
    } finally {
      hub.cdn.clearFaults();
    }
  });

  it('serves branches from refs/ when upstream is down, and refuses a repo it cannot check with a clear 503', async () => {
    const server = await startMirror('down', { revalidateAfterMs: 0 });
    expect((await fetch(`${server.url}/org/later/resolve/main/a.txt`)).status).toBe(200);
    hub.hub.addFault({ fault: { status: 503 } });
    try {
      const cached = await fetch(`${server.url}/org/later/resolve/main/a.txt`);
      expect(cached.status).toBe(200);
      expect(await cached.text()).toBe('later');
      // Never seen by this mirror: whether anyone may read it cannot be asked, so it fails closed.
      const miss = await fetch(`${server.url}/org/model/resolve/main/config.json`);
      expect(miss.status).toBe(503);
      expect(miss.headers.get('x-error-code')).toBe('UpstreamUnavailable');
      expect(((await miss.json()) as { error: string }).error).toMatch(/cannot be reached/i);
    } finally {
      hub.hub.clearFaults();
    }
  });

  it("sends the server's token upstream, or with --token-passthrough the client's own", async () => {
    const server = await startMirror('server-token');
    hub.resetLogs();
    const res = await fetch(`${server.url}/org/model/resolve/main/tokenizer/vocab.txt`, { headers: { authorization: 'Bearer hf_clientownertoken01' } });
    expect(res.status).toBe(200);
    // The server's token, or none for the anonymous visibility check; never the client's.
    const sent = new Set(hub.hub.requests.map((r) => r.headers.authorization));
    expect(sent.has(`Bearer ${GOOD_TOKEN}`)).toBe(true);
    expect([...sent].every((v) => v === undefined || v === `Bearer ${GOOD_TOKEN}`)).toBe(true);
    await server.close();
    mirror = undefined;

    const passthrough = await startMirror('passthrough', { tokenPassthrough: true, token: undefined });
    hub.resetLogs();
    const gated = await fetch(`${passthrough.url}/org/gated/resolve/main/secret.bin`, { headers: { authorization: `Bearer ${GOOD_TOKEN}` } });
    expect(gated.status).toBe(200);
    expect(sha256(Buffer.from(await gated.arrayBuffer()))).toBe(hub.file('org/gated', 'secret.bin').sha256);
    // Only the anonymous visibility check goes without a token; everything else carries the client's.
    expect(hub.hub.requests.filter((r) => r.headers.authorization === undefined).every((r) => r.url.includes('/api/models/org/gated/revision/'))).toBe(true);
    expect(hub.hub.requests.some((r) => r.headers.authorization === `Bearer ${GOOD_TOKEN}` && r.url.includes('/resolve/'))).toBe(true);
    // Without a token of its own, the passthrough mirror cannot fetch the gated repo for an anonymous client.
    expect((await fetch(`${passthrough.url}/org/gated/resolve/main/secret.bin`)).status).toBe(401);
  });

  it('is not ready while upstream is unreachable', async () => {
    const server = await startMirror('unready', { upstream: 'http://127.0.0.1:9' });
    await mkdir(join(work, 'unready'), { recursive: true });
    const ready = await fetch(`${server.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.text()).toContain('upstream unreachable');
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });

  it('--offline never asks upstream', async () => {
    const server = await startMirror('offline', { offline: true });
    await mkdir(join(work, 'offline'), { recursive: true });
    hub.resetLogs();
    expect((await fetch(`${server.url}/org/model/resolve/main/config.json`)).status).toBe(404);
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
    expect(hub.requests()).toEqual([]);
  });

  it.skipIf(!interopPython())('Python huggingface_hub snapshot_download through the mirror', async () => {
    const server = await startMirror('python');
    const cacheDir = join(work, 'client-python');
    const out = await runPython(interopPython()!, 'from huggingface_hub import snapshot_download; print(snapshot_download("org/model"))', { HF_ENDPOINT: server.url, HF_HUB_CACHE: cacheDir });
    const folder = out.trim().split('\n').pop()!;
    expect(folder).toBe(join(cacheDir, 'models--org--model', 'snapshots', hub.commitOf('org/model')));
    for (const path of ['config.json', 'model.safetensors', 'tokenizer/vocab.txt']) {
      expect(sha256(await readFile(join(folder, path)))).toBe(hub.file('org/model', path).sha256);
    }
    const single = await runPython(interopPython()!, 'from huggingface_hub import hf_hub_download; print(hf_hub_download("org/model", "extra/weights-2.bin"))', { HF_ENDPOINT: server.url, HF_HUB_CACHE: join(work, 'client-python-2') });
    expect(sha256(await readFile(single.trim().split('\n').pop()!))).toBe(hub.file('org/model', 'extra/weights-2.bin').sha256);
  });

  it.skipIf(!interopPython() || !hasTransformers(interopPython()!))('transformers loads a config through the mirror with only HF_ENDPOINT set', async () => {
    const server = await startMirror('transformers');
    const out = await runPython(interopPython()!, 'from transformers import AutoConfig; c = AutoConfig.from_pretrained("org/tiny-bert"); print(c.model_type, c.hidden_size)', { HF_ENDPOINT: server.url, HF_HUB_CACHE: join(work, 'client-transformers') });
    expect(out.trim().split('\n').pop()).toBe('bert 32');
  });
});
