import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { downloadFile } from '@huggingface/hub';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CompressionScheme, decodeChunkHeader, decodeChunks } from '../../src/transfer/xet/chunk-codec.js';
import { parseReconstruction } from '../../src/transfer/xet/reconstruction.js';
import { startFixtureCas, type FixtureCas } from './fixture-cas.js';
import { startFixtureHub, type FixtureHub } from './fixture-hub.js';
import { interopPython, runPython } from './python.js';

/**
 * The fixture CAS speaks the real Xet read protocol: two independent clients, @huggingface/hub
 * (XetBlob, v2 reconstructions) and hf_xet (through huggingface_hub.hf_hub_download), download
 * correct bytes from it through the fixture Hub's Xet headers, and hf_xet rides out each fault it injects.
 */

/** fp32-like values (BG4 compresses these), then noise (stored as is), then text (LZ4), then a repeat of the start (deduplicated). */
function xetTestFile(): Buffer {
  const floats = new Float32Array(300_000);
  for (let i = 0; i < floats.length; i++) floats[i] = Math.sin(i / 50) * 0.01;
  const head = Buffer.from(floats.buffer);
  const noise = randomBytes(700_000);
  const text = Buffer.from(Array.from({ length: 30_000 }, (_, i) => `line ${i % 977} of a config-like text\n`).join(''));
  return Buffer.concat([head, noise, text, head.subarray(0, 600_000), randomBytes(12_345)]);
}

const sha256 = (data: Buffer | Uint8Array) => createHash('sha256').update(data).digest('hex');
const python = interopPython();

let cas: FixtureCas;
let hub: FixtureHub;
let content: Buffer;
let dir: string;

beforeAll(async () => {
  content = xetTestFile();
  cas = await startFixtureCas({ chunksPerXorb: 8 });
  hub = await startFixtureHub({ cas, repos: [{ repoId: 'org/xet-model', files: [{ path: 'model.safetensors', content, xet: true }, { path: 'config.json', content: '{"a":1}' }] }] });
});
afterAll(async () => {
  await hub.close();
  await cas.close();
});
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mf-xet-fixture-'));
  hub.resetLogs();
  cas.server.resetLog();
  return () => rm(dir, { recursive: true, force: true });
});

describe('fixture CAS', () => {
  it('stores the file as deduplicated xorbs holding LZ4, BG4 and uncompressed chunks', () => {
    const file = cas.files.get(hub.file('org/xet-model', 'model.safetensors').xetHash ?? '');
    expect(file?.sha256).toBe(sha256(content));
    const schemes = new Set<number>();
    for (const xorb of cas.xorbs.values()) {
      for (const offset of xorb.chunkOffsets.slice(0, -1)) schemes.add(decodeChunkHeader(xorb.data, offset).scheme);
    }
    expect([...schemes].sort()).toEqual([CompressionScheme.None, CompressionScheme.LZ4, CompressionScheme.ByteGrouping4LZ4]);
    // The repeated 600 kB come back as references to chunks already stored.
    const storedChunks = [...cas.xorbs.values()].reduce((n, x) => n + x.chunkOffsets.length - 1, 0);
    const fileChunks = file?.terms.reduce((n, t) => n + t.chunkEnd - t.chunkStart, 0) ?? 0;
    expect(fileChunks).toBeGreaterThan(storedChunks);
  });

  it('lists the xetHash in the tree and answers resolve with X-Xet-Hash and the xet-auth link', async () => {
    const commit = hub.commitOf('org/xet-model');
    const tree = (await (await fetch(`${hub.endpoint}/api/models/org/xet-model/tree/main`)).json()) as Array<{ path: string; xetHash?: string }>;
    const xetHash = hub.file('org/xet-model', 'model.safetensors').xetHash;
    expect(tree.find((e) => e.path === 'model.safetensors')?.xetHash).toBe(xetHash);
    expect(tree.find((e) => e.path === 'config.json')?.xetHash).toBeUndefined();
    const resolve = await fetch(`${hub.endpoint}/org/xet-model/resolve/main/model.safetensors`, { redirect: 'manual' });
    expect(resolve.status).toBe(302);
    expect(resolve.headers.get('x-xet-hash')).toBe(xetHash);
    expect(resolve.headers.get('link')).toContain(`<${hub.endpoint}/api/models/org/xet-model/xet-read-token/${commit}>; rel="xet-auth"`);
    const token = (await (await fetch(`${hub.endpoint}/api/models/org/xet-model/xet-read-token/${commit}`)).json()) as { accessToken: string; casUrl: string; exp: number };
    expect(token.casUrl).toBe(cas.casUrl);
    expect(token.exp).toBeGreaterThan(Date.now() / 1000);
  });

  it('serves v1 and v2 reconstructions whose ranges decode to the file, and a byte range of it', async () => {
    const { accessToken } = cas.issueToken();
    const file = hub.file('org/xet-model', 'model.safetensors');
    for (const version of [1, 2] as const) {
      const url = `${cas.casUrl}/v${version}/reconstructions/${file.xetHash}`;
      const answer = await fetch(url, { headers: { Authorization: `Bearer ${accessToken}` } });
      const recon = parseReconstruction(await answer.json(), { version, url, expectedLength: content.length });
      const decoded = new Map<string, Buffer[]>();
      for (const f of recon.fetches) {
        const bytes = Buffer.from(await (await fetch(f.url, { headers: { Range: f.rangeHeader } })).arrayBuffer());
        decoded.set(`${f.xorbHash}:${f.chunkStart}:${f.rangeHeader}`, decodeChunks(bytes, f.chunkEnd - f.chunkStart).map((c) => c.data));
      }
      const parts = recon.terms.map((t) => Buffer.concat((decoded.get(`${t.xorbHash}:${t.fetch.chunkStart}:${t.fetch.rangeHeader}`) ?? []).slice(t.chunkStart - t.fetch.chunkStart, t.chunkEnd - t.fetch.chunkStart)));
      expect(sha256(Buffer.concat(parts))).toBe(file.sha256);
    }
    const url = `${cas.casUrl}/v2/reconstructions/${file.xetHash}`;
    const partial = await fetch(url, { headers: { Authorization: `Bearer ${accessToken}`, Range: 'bytes=1500000-1600000' } });
    const recon = parseReconstruction(await partial.json(), { version: 2, url, expectedLength: 100_001, partial: true });
    expect(recon.offsetIntoFirstRange).toBeGreaterThan(0);
  });

  it('refuses missing or expired tokens (401), unsigned ranges and expired URLs (403), and answers v2 with 404 when switched off', async () => {
    const file = hub.file('org/xet-model', 'model.safetensors');
    const url = `${cas.casUrl}/v1/reconstructions/${file.xetHash}`;
    expect((await fetch(url)).status).toBe(401);
    const { accessToken } = cas.issueToken();
    const auth = { Authorization: `Bearer ${accessToken}` };
    const recon = parseReconstruction(await (await fetch(url, { headers: auth })).json(), { version: 1, url, expectedLength: content.length });
    const first = recon.fetches[0];
    if (!first) throw new Error('no fetch');
    expect((await fetch(first.url, { headers: { Range: `bytes=${first.byteStart}-${first.byteEnd + 1}` } })).status).toBe(403);
    expect((await fetch(first.url.replace(/Signature=[0-9a-f]+/, `Signature=${'0'.repeat(64)}`), { headers: { Range: first.rangeHeader } })).status).toBe(403);
    expect((await fetch(first.url, { headers: { Range: first.rangeHeader } })).status).toBe(206);
    cas.expireSignedUrls();
    expect((await fetch(first.url, { headers: { Range: first.rangeHeader } })).status).toBe(403);
    cas.expireTokens();
    expect((await fetch(url, { headers: auth })).status).toBe(401);
    const fresh = { Authorization: `Bearer ${cas.issueToken().accessToken}` };
    cas.setV2Enabled(false);
    try {
      expect((await fetch(url.replace('/v1/', '/v2/'), { headers: fresh })).status).toBe(404);
    } finally {
      cas.setV2Enabled(true);
    }
  });

  it('injects 429s and truncated xorb bodies on demand, then serves normally', async () => {
    const file = hub.file('org/xet-model', 'model.safetensors');
    const url = `${cas.casUrl}/v1/reconstructions/${file.xetHash}`;
    const auth = { Authorization: `Bearer ${cas.issueToken().accessToken}` };
    cas.injectFault('reconstruction', { status: 429, retryAfterSeconds: 0 });
    const throttled = await fetch(url, { headers: auth });
    expect([throttled.status, throttled.headers.get('retry-after')]).toEqual([429, '0']);
    const recon = parseReconstruction(await (await fetch(url, { headers: auth })).json(), { version: 1, url, expectedLength: content.length });
    const first = recon.fetches[0];
    if (!first) throw new Error('no fetch');
    cas.injectFault('xorb', { truncate: true });
    await expect(fetch(first.url, { headers: { Range: first.rangeHeader } }).then((r) => r.arrayBuffer())).rejects.toThrow();
    cas.injectFault('xorb', { status: 429 });
    expect((await fetch(first.url, { headers: { Range: first.rangeHeader } })).status).toBe(429);
    const whole = await fetch(first.url, { headers: { Range: first.rangeHeader } });
    expect(Buffer.from(await whole.arrayBuffer()).length).toBe(first.byteEnd - first.byteStart + 1);
  });
});

describe('fixture CAS with real Xet clients', () => {
  const xorbRequests = () => cas.server.requests.filter((r) => r.url.startsWith('/xorbs/'));

  it('@huggingface/hub downloadFile takes the XetBlob path and gets the right bytes', async () => {
    const blob = await downloadFile({ repo: 'org/xet-model', path: 'model.safetensors', hubUrl: hub.endpoint });
    expect(blob?.constructor.name).toBe('XetBlob');
    const bytes = Buffer.from(await (blob as Blob).arrayBuffer());
    expect(sha256(bytes)).toBe(sha256(content));
    expect(cas.server.requests.some((r) => r.url.startsWith('/v2/reconstructions/') && r.status === 200)).toBe(true);
    expect(xorbRequests().length).toBeGreaterThan(0);
    expect(hub.cdn.requests).toHaveLength(0);
  });

  const download = async (base = dir) => {
    const out = await runPython(python as string, 'from huggingface_hub import hf_hub_download; print(hf_hub_download("org/xet-model", "model.safetensors"))', {
      HF_ENDPOINT: hub.endpoint,
      HF_HUB_CACHE: join(base, 'hub'),
      HF_XET_CACHE: join(base, 'xet'),
      HF_HOME: join(base, 'home'),
      HF_HUB_DISABLE_XET: '0',
    });
    return readFile(out.trim().split('\n').pop() ?? '');
  };

  it.skipIf(!python)('hf_xet (through hf_hub_download) downloads the right bytes over v2, never touching the bridge', async () => {
    expect(sha256(await download())).toBe(sha256(content));
    expect(cas.server.requests.some((r) => r.url.startsWith('/v2/reconstructions/') && r.status === 200)).toBe(true);
    expect(xorbRequests().every((r) => r.status === 206)).toBe(true);
    expect(hub.cdn.requests).toHaveLength(0);
  });

  it.skipIf(!python)('hf_xet falls back to v1 when v2 answers 404', async () => {
    cas.setV2Enabled(false);
    try {
      expect(sha256(await download())).toBe(sha256(content));
    } finally {
      cas.setV2Enabled(true);
    }
    expect(cas.server.requests.some((r) => r.url.startsWith('/v2/reconstructions/') && r.status === 404)).toBe(true);
    expect(cas.server.requests.some((r) => r.url.startsWith('/v1/reconstructions/') && r.status === 200)).toBe(true);
  });

  it.skipIf(!python)('hf_xet rides out a 429, expired signed URLs (403) and a truncated xorb range', async () => {
    cas.injectFault('reconstruction', { status: 429, retryAfterSeconds: 0 });
    // The URLs of the first reconstruction expire at the first xorb request.
    cas.injectFault('xorb', { expireUrls: true });
    expect(sha256(await download())).toBe(sha256(content));
    cas.injectFault('xorb', { status: 429, retryAfterSeconds: 0 });
    cas.injectFault('xorb', { truncate: true });
    // A second download into a fresh cache meets the xorb faults (the first consumed the expiry).
    expect(sha256(await download(join(dir, 'again')))).toBe(sha256(content));
    const statuses = cas.server.requests.map((r) => `${r.url.split('/')[1]}:${r.status}`);
    expect(statuses).toContain('v2:429');
    expect(statuses).toContain('xorbs:429');
    expect(statuses).toContain('xorbs:403');
    const cutShort = cas.server.requests.filter((r) => {
      const [start = 0, end = -1] = /^bytes=(\d+)-(\d+)$/.exec(String(r.headers.range))?.slice(1).map(Number) ?? [];
      return r.url.startsWith('/xorbs/') && r.status === 206 && r.bodyBytes < end - start + 1;
    });
    expect(cutShort).toHaveLength(1);
    expect(cas.server.requests.filter((r) => r.url.startsWith('/v2/reconstructions/') && r.status === 200).length).toBeGreaterThanOrEqual(2);
  });
});
