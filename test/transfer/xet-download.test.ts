import { spawn } from 'node:child_process';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/transfer/options.js';
import { downloadXetFile, type XetDownloadJob } from '../../src/transfer/xet/xet-download.js';
import { hubXetTokenProvider, type XetTokenProvider } from '../../src/transfer/xet/xet-token.js';
import type { Clock } from '../../src/transfer/types.js';
import { startFixtureCas, type FixtureCas, type FixtureCasFile } from '../support/fixture-cas.js';
import type { RequestRecord } from '../support/fixture-server.js';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';
import { testTempDir } from '../support/temp.js';

/** The Xet downloader against the fixture CAS: right bytes, each range once, and every fault the fixture injects. */

/** Compressible floats, noise, and the floats again (so the file repeats chunk ranges). */
function fileWithRepeats(): Buffer {
  const floats = new Float32Array(400_000);
  for (let i = 0; i < floats.length; i++) floats[i] = Math.cos(i / 30) * 0.5;
  const head = Buffer.from(floats.buffer);
  return Buffer.concat([head, randomBytes(900_000), head, randomBytes(5_000)]);
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
/** Retries without waiting: the tests check what is retried, never how long it takes. */
const noWaitClock: Clock = { now: () => Date.now(), sleep: async () => undefined };

let cas: FixtureCas;
let content: Buffer;
let file: FixtureCasFile;
let dir: string;

const casToken = (): XetTokenProvider => {
  return async () => {
    const token = cas.issueToken();
    return { accessToken: token.accessToken, casUrl: token.casUrl, expiresAt: token.exp };
  };
};

const job = (overrides: Partial<XetDownloadJob> = {}): XetDownloadJob => ({ fileHash: file.fileHash, size: file.size, sha256: file.sha256, tempPath: join(dir, 'file.part'), token: casToken(), ...overrides });
const statuses = () => cas.server.requests.map((r) => `${r.url.split('/')[1]}:${r.status}`);

beforeAll(async () => {
  cas = await startFixtureCas({ chunksPerXorb: 6 });
  content = fileWithRepeats();
  file = await cas.addFile({ data: content });
});
afterAll(() => cas.close());
beforeEach(async () => {
  dir = await testTempDir('mf-xet-dl-');
  cas.server.resetLog();
});

/** A file without repeated chunks, downloaded once cleanly; the next xorb answer is then cut in half. */
async function downloadCleanThenCut(): Promise<{ plain: FixtureCasFile; plainJob: (tempPath: string) => XetDownloadJob; clean: { bytesFetched: number } }> {
  // Fixed pseudo-random bytes: the chunker then cuts them the same way on every run, so the cut-off
  // request always delivers some whole chunks (with fresh random bytes, one chunk of up to 128 KiB could span the whole delivered part).
  const data = createCipheriv('aes-128-ctr', Buffer.alloc(16, 7), Buffer.alloc(16)).update(Buffer.alloc(700_000));
  const plain = await cas.addFile({ data });
  const plainJob = (tempPath: string): XetDownloadJob => job({ fileHash: plain.fileHash, size: plain.size, sha256: plain.sha256, tempPath });
  const clean = await downloadXetFile(plainJob(join(dir, 'clean.part')), { connections: 1 });
  cas.server.resetLog();
  cas.injectFault('xorb', { truncate: true });
  return { plain, plainJob, clean };
}

/**
 * The whole chunks a cut-off xorb request delivered before its cut: their stored bytes (headers
 * included) and their file bytes. Taken from the fixture's chunk layout, so the figures follow the chunker's cuts
 * rather than a fixed guess that holds only for some cuts.
 */
function wholeChunksDelivered(cut: RequestRecord): { stored: number; unpacked: number } {
  const hash = cut.url.split('?')[0]?.split('/').at(-1) ?? '';
  const xorb = cas.xorbs.get(hash);
  const range = /^bytes=(\d+)-(\d+)$/.exec(String(cut.headers.range));
  if (!xorb || !range) throw new Error(`no xorb or range for ${cut.url}`);
  const start = Number(range[1]);
  const received = start + cut.bodyBytes;
  let stored = 0;
  let unpacked = 0;
  for (let i = 0; i + 1 < xorb.chunkOffsets.length; i++) {
    const [from, to] = [xorb.chunkOffsets[i] as number, xorb.chunkOffsets[i + 1] as number];
    if (from < start || to > received) continue;
    stored += to - from;
    // Chunk header: version (1), stored length (3), scheme (1), unpacked length (3), little-endian.
    unpacked += xorb.data.readUIntLE(from + 5, 3);
  }
  return { stored, unpacked };
}

describe('downloadXetFile', () => {
  it('rebuilds the file from v2, fetching each distinct range once with its exact signed Range and no credentials', async () => {
    const result = await downloadXetFile(job(), { connections: 4 });
    expect(sha256(await readFile(result.tempPath))).toBe(file.sha256);
    // The journal is gone once the file is complete; the temp file is the caller's to commit.
    expect(await readdir(dir)).toEqual(['file.part']);
    expect(result.reconstructionVersion).toBe(2);
    expect(result.reconstructions).toBe(1);
    const xorbRequests = cas.server.requests.filter((r) => r.url.startsWith('/xorbs/'));
    expect(xorbRequests.every((r) => r.status === 206 && r.headers.authorization === undefined)).toBe(true);
    // The repeated floats are served by the same ranges: nothing is fetched twice.
    const ranges = xorbRequests.map((r) => `${r.url.split('?')[0]} ${String(r.headers.range)}`);
    expect(new Set(ranges).size).toBe(ranges.length);
    expect(result.bytesDeduplicated).toBeGreaterThanOrEqual(1_600_000 - 2 * 128 * 1024);
    expect(result.bytesFetched).toBe(xorbRequests.reduce((n, r) => n + r.bodyBytes, 0));
    expect(result.bytesFetched).toBeLessThan(content.length - 1_000_000);
  });

  it('falls back to v1 when v2 answers 404', async () => {
    cas.setV2Enabled(false);
    try {
      const result = await downloadXetFile(job());
      expect(result.reconstructionVersion).toBe(1);
      expect(sha256(await readFile(result.tempPath))).toBe(file.sha256);
    } finally {
      cas.setV2Enabled(true);
    }
    expect(statuses().filter((s) => s.startsWith('v'))).toEqual(['v2:404', 'v1:200']);
  });

  it('retries a 429 on the reconstruction and on a xorb range', async () => {
    cas.injectFault('reconstruction', { status: 429, retryAfterSeconds: 0 });
    cas.injectFault('xorb', { status: 429 }, 2);
    const result = await downloadXetFile(job(), { clock: noWaitClock });
    expect(sha256(await readFile(result.tempPath))).toBe(file.sha256);
    expect(statuses().filter((s) => s.endsWith(':429'))).toEqual(['v2:429', 'xorbs:429', 'xorbs:429']);
  });

  it('fetches a truncated xorb range that serves several different terms again whole', async () => {
    cas.injectFault('xorb', { truncate: true });
    const result = await downloadXetFile(job(), { clock: noWaitClock, connections: 1 });
    expect(sha256(await readFile(result.tempPath))).toBe(file.sha256);
    const xorbRequests = cas.server.requests.filter((r) => r.url.startsWith('/xorbs/'));
    const first = xorbRequests[0];
    // The first range serves the floats and their repeat, which start at different chunks: the cut request and its repeat asked for the same signed range.
    expect(xorbRequests.filter((r) => r.url === first?.url && r.headers.range === first?.headers.range)).toHaveLength(2);
  });

  it('after a truncated xorb range, fetches only the rest of its term, through a reconstruction of just those bytes', async () => {
    const { plain, plainJob, clean } = await downloadCleanThenCut();
    const result = await downloadXetFile(plainJob(join(dir, 'cut.part')), { clock: noWaitClock, connections: 1 });
    expect(sha256(await readFile(result.tempPath))).toBe(plain.sha256);
    const cut = cas.server.requests.find((r) => r.url.startsWith('/xorbs/'));
    expect(cut?.bodyBytes).toBeGreaterThan(0);
    // The signed URL allows only its exact Range, so the rest is asked for as a byte range of the file…
    expect(cas.server.requests.filter((r) => r.url.startsWith('/v2/reconstructions/') && r.headers.range !== undefined)).toHaveLength(1);
    expect(cas.server.requests.filter((r) => r.url === cut?.url && r.headers.range === cut?.headers.range)).toHaveLength(1);
    // …and the whole chunks that came before the cut are not fetched again.
    const kept = wholeChunksDelivered(cut as RequestRecord);
    expect(kept.stored).toBeGreaterThan(0);
    expect(result.bytesFetched).toBe(clean.bytesFetched + (cut?.bodyBytes ?? 0) - kept.stored);
  });

  it('journals the chunks a cut-off range delivered before the run gave up; the next run fetches only the rest', async () => {
    const { plain, plainJob, clean } = await downloadCleanThenCut();
    await expect(downloadXetFile(plainJob(join(dir, 'cut.part')), { clock: noWaitClock, connections: 1, maxAttempts: 1 })).rejects.toMatchObject({ code: 'ERR_NETWORK' });
    const result = await downloadXetFile(plainJob(join(dir, 'cut.part')), { connections: 1 });
    expect(sha256(await readFile(result.tempPath))).toBe(plain.sha256);
    const cut = cas.server.requests.find((r) => r.url.startsWith('/xorbs/'));
    const kept = wholeChunksDelivered(cut as RequestRecord);
    expect(kept.unpacked).toBeGreaterThan(0);
    expect(result.bytesResumed).toBe(kept.unpacked);
    expect(cas.server.requests.filter((r) => r.url.startsWith('/v2/reconstructions/') && r.headers.range !== undefined)).toHaveLength(1);
    expect(result.bytesFetched).toBe(clean.bytesFetched - kept.stored);
  });

  it('aborts a xorb range that sends nothing for the stall timeout and fetches it again', async () => {
    cas.injectFault('xorb', { delayMs: 30_000 });
    const result = await downloadXetFile(job(), { clock: noWaitClock, stallTimeoutMs: 300, connections: 1 });
    expect(sha256(await readFile(result.tempPath))).toBe(file.sha256);
    const xorbRequests = cas.server.requests.filter((r) => r.url.startsWith('/xorbs/'));
    const first = xorbRequests[0];
    expect(xorbRequests.filter((r) => r.url === first?.url && r.headers.range === first?.headers.range)).toHaveLength(2);
  });

  it('asks for a new reconstruction when the signed URLs expire (403) and finishes with the new URLs', async () => {
    cas.injectFault('xorb', { expireUrls: true });
    const result = await downloadXetFile(job(), { connections: 2 });
    expect(sha256(await readFile(result.tempPath))).toBe(file.sha256);
    expect(result.reconstructions).toBe(2);
    expect(statuses()).toContain('xorbs:403');
  });

  it('refreshes the access token once when the CAS answers 401', async () => {
    let calls = 0;
    let stale: { accessToken: string; casUrl: string; expiresAt: number } | undefined;
    const token: XetTokenProvider = async (refresh) => {
      calls += 1;
      if (!stale) {
        const issued = cas.issueToken();
        stale = { accessToken: issued.accessToken, casUrl: issued.casUrl, expiresAt: issued.exp };
        cas.expireTokens();
      }
      if (!refresh) return stale;
      const fresh = cas.issueToken();
      return { accessToken: fresh.accessToken, casUrl: fresh.casUrl, expiresAt: fresh.exp };
    };
    const result = await downloadXetFile(job({ token }));
    expect(sha256(await readFile(result.tempPath))).toBe(file.sha256);
    expect(statuses().filter((s) => s.startsWith('v'))).toEqual(['v2:401', 'v2:200']);
    expect(calls).toBeGreaterThanOrEqual(2);
  });

  it('gives up on a range that keeps failing, keeps the finished terms, and the next run fetches only the rest', async () => {
    // Three ranges go through, then every request fails.
    cas.injectFault('xorb', { delayMs: 0 }, 3);
    cas.injectFault('xorb', { status: 503 }, 100);
    try {
      await expect(downloadXetFile(job(), { clock: noWaitClock, maxAttempts: 3, connections: 1 })).rejects.toMatchObject({ code: 'ERR_HTTP', status: 503 });
    } finally {
      cas.clearFaults();
    }
    expect(statuses().filter((s) => s === 'xorbs:503')).toHaveLength(3);
    expect((await readdir(dir)).sort()).toEqual(['file.part', 'file.part.journal']);
    const firstRun = cas.server.requests.filter((r) => r.url.startsWith('/xorbs/') && r.status === 206).map((r) => `${r.url.split('?')[0]} ${String(r.headers.range)}`);
    expect(firstRun).toHaveLength(3);
    cas.server.resetLog();
    const result = await downloadXetFile(job(), { connections: 1 });
    expect(sha256(await readFile(result.tempPath))).toBe(file.sha256);
    expect(result.bytesResumed).toBeGreaterThan(0);
    const secondRun = cas.server.requests.filter((r) => r.url.startsWith('/xorbs/')).map((r) => `${r.url.split('?')[0]} ${String(r.headers.range)}`);
    expect(secondRun.filter((r) => firstRun.includes(r))).toEqual([]);
    expect(await readdir(dir)).toEqual(['file.part']);
  });

  it('refuses bytes whose SHA-256 is not the expected one (ERR_INTEGRITY) and keeps nothing', async () => {
    await expect(downloadXetFile(job({ sha256: 'f'.repeat(64) }))).rejects.toMatchObject({ code: 'ERR_INTEGRITY' });
    expect(await readdir(dir)).toEqual([]);
  });

  it('refuses a corrupt chunk header in a xorb with ERR_BAD_RESPONSE', async () => {
    const other = await cas.addFile({ data: randomBytes(300_000) });
    const xorbHash = other.terms[0]?.xorbHash ?? '';
    const xorb = cas.xorbs.get(xorbHash);
    if (!xorb) throw new Error('no xorb');
    xorb.data[0] = 7; // header version 7
    await expect(downloadXetFile(job({ fileHash: other.fileHash, size: other.size, sha256: other.sha256 }))).rejects.toMatchObject({ code: 'ERR_BAD_RESPONSE', message: expect.stringContaining('header version 7') });
  });

  it('refuses a malformed file hash before any request', async () => {
    await expect(downloadXetFile(job({ fileHash: '../../etc' }))).rejects.toMatchObject({ code: 'ERR_INVALID_DIGEST' });
    expect(cas.server.requests).toHaveLength(0);
  });
});

describe('hubXetTokenProvider', () => {
  let hub: FixtureHub;
  beforeAll(async () => {
    hub = await startFixtureHub({ cas, repos: [{ repoId: 'org/gated-xet', gatedToken: 'hf_secret', files: [{ path: 'w.bin', content: fileWithRepeats(), xet: true }] }] });
  });
  afterAll(() => hub.close());

  it('gets the access token from the Hub with the Hub token, which never reaches the CAS', async () => {
    const target = hub.file('org/gated-xet', 'w.bin');
    const tokenUrl = `${hub.endpoint}/api/models/org/gated-xet/xet-read-token/${hub.commitOf('org/gated-xet')}`;
    const token = hubXetTokenProvider({ tokenUrl, headers: { authorization: 'Bearer hf_secret' }, transport: { dispatcher: undefined, fast: undefined }, clock: systemClock });
    const result = await downloadXetFile({ fileHash: target.xetHash ?? '', size: target.size, sha256: target.sha256, tempPath: join(dir, 'w.part'), token });
    expect(sha256(await readFile(result.tempPath))).toBe(target.sha256);
    expect(hub.hub.requests.filter((r) => r.url.includes('/xet-read-token/')).map((r) => [r.status, r.headers.authorization])).toEqual([[200, 'Bearer hf_secret']]);
    expect(cas.server.requests.every((r) => r.headers.authorization !== 'Bearer hf_secret')).toBe(true);
    expect(cas.server.requests.filter((r) => r.url.startsWith('/v2/')).every((r) => String(r.headers.authorization).startsWith('Bearer xet_'))).toBe(true);
  });

  it('reports a refused Hub token as the Hub\'s error', async () => {
    const tokenUrl = `${hub.endpoint}/api/models/org/gated-xet/xet-read-token/${hub.commitOf('org/gated-xet')}`;
    const token = hubXetTokenProvider({ tokenUrl, transport: { dispatcher: undefined, fast: undefined }, clock: systemClock });
    await expect(token(false)).rejects.toMatchObject({ code: 'ERR_AUTH', status: 401 });
  });
});

describe('downloadXetFile after kill -9', () => {
  const CHILD = join(dirname(fileURLToPath(import.meta.url)), '..', 'support', 'xet-download-child.ts');
  let hub: FixtureHub;
  beforeAll(async () => {
    hub = await startFixtureHub({ cas, repos: [{ repoId: 'org/kill-xet', files: [{ path: 'w.bin', content: randomBytes(3 * 1024 * 1024 + 77), xet: true }] }] });
  });
  afterAll(() => hub.close());

  it('fetches only the terms the killed run had not journaled', async () => {
    const target = hub.file('org/kill-xet', 'w.bin');
    const tempPath = join(dir, 'w.part');
    const tokenUrl = `${hub.endpoint}/api/models/org/kill-xet/xet-read-token/${hub.commitOf('org/kill-xet')}`;
    // Four ranges are served, then the CAS holds every answer back: the process is killed while it waits.
    cas.injectFault('xorb', { delayMs: 0 }, 4);
    cas.injectFault('xorb', { delayMs: 60_000 }, 1000);
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, tokenUrl, target.xetHash ?? '', String(target.size), target.sha256, tempPath], { stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code)));
    try {
      // Four ranges served, and the journal still for a while: their terms are synced and journaled.
      let lines = -1;
      for (let i = 0, still = 0; i < 1500 && still < 15; i++) {
        const served = cas.server.requests.filter((r) => r.url.startsWith('/xorbs/') && r.status === 206).length;
        const now = await readFile(`${tempPath}.journal`, 'utf8').then((t) => t.split('\n').length - 1, () => 0);
        still = served >= 4 && now === lines ? still + 1 : 0;
        lines = now;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      child.kill('SIGKILL');
      expect(await exited).toBe('SIGKILL');
    } finally {
      cas.clearFaults();
    }
    const killedRun = cas.server.requests.filter((r) => r.url.startsWith('/xorbs/') && r.status === 206).map((r) => `${r.url.split('?')[0]} ${String(r.headers.range)}`);
    expect(killedRun).toHaveLength(4);
    cas.server.resetLog();
    const token = hubXetTokenProvider({ tokenUrl, transport: { dispatcher: undefined, fast: undefined }, clock: systemClock });
    const result = await downloadXetFile({ fileHash: target.xetHash ?? '', size: target.size, sha256: target.sha256, tempPath, token }, { connections: 2 });
    expect(sha256(await readFile(tempPath))).toBe(target.sha256);
    const rerun = cas.server.requests.filter((r) => r.url.startsWith('/xorbs/')).map((r) => `${r.url.split('?')[0]} ${String(r.headers.range)}`);
    expect(rerun.filter((r) => killedRun.includes(r))).toEqual([]);
    expect(result.bytesResumed).toBeGreaterThan(0);
    expect(result.bytesFetched + result.bytesResumed).toBeLessThanOrEqual(target.size + 4096);
  }, 60_000);
});
