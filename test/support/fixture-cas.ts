import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CompressionScheme, decodeChunkHeader, encodeChunk } from '../../src/transfer/xet/chunk-codec.js';
import { chunkBoundaries, XetChunker } from '../../src/transfer/xet/chunker.js';
import { chunkHash, fileHash, type HashedChunk, prepareChunkHashing, xetHashToHex, xorbHash } from '../../src/core/hash/xet-hash.js';
import { contentSha256, loadStoredFile, saveStoredFile, type StoredXorb } from './fixture-cas-store.js';
import { startFixtureServer, type FixtureServer } from './fixture-server.js';

/**
 * A loopback Xet CAS. Files are chunked with the real content-defined chunker, their new chunks packed
 * into xorbs (chunks compressed with LZ4, ByteGrouping4-LZ4 or stored as they are, in rotation), and
 * chunks already stored anywhere are referenced, not stored again, as the real CAS deduplicates.
 *
 * It serves what a downloading client talks to:
 * - `GET /v1/reconstructions/{fileHash}` and `/v2/…` (optionally with `Range: bytes=a-b`), with a
 *   Bearer access token issued by `issueToken()` (the fixture Hub's xet-read-token endpoint);
 * - `GET /xorbs/default/{xorbHash}?…` signed URLs: the signature covers the xorb, the exact Range
 *   value(s) and an expiry; a v2 URL signed for several ranges accepts their multi-range header
 *   (answered as multipart/byteranges) or any one of them alone.
 *
 * Faults on demand: a status (429, 500…) for the next requests of one kind, truncated xorb bodies,
 * expiry of every URL (403) or token (401) issued so far, and v2 switched off (404, so clients fall back to v1).
 */

export interface FixtureCasOptions {
  /** New chunks per xorb; small values spread a file over many xorbs. Default 64. */
  chunksPerXorb?: number;
  /** Rotation of schemes for new chunks (incompressible chunks end up stored as they are). */
  schemes?: CompressionScheme[];
  /** Lifetime of signed URLs and tokens, seconds. Default 3600. */
  ttlSeconds?: number;
  /** Clock in milliseconds (tests of expiry inject one). */
  now?: () => number;
  /** A folder keeping built xorbs and files across runs (fixture-cas-store.ts); content found there is loaded, not chunked again. */
  store?: string;
}

export interface FixtureCasTerm {
  xorbHash: string;
  chunkStart: number;
  chunkEnd: number;
  unpackedLength: number;
}

export interface FixtureCasFile {
  fileHash: string;
  size: number;
  sha256: string;
  terms: FixtureCasTerm[];
}

export interface FixtureCasXorb {
  hash: string;
  data: Buffer;
  /** Byte offset of each chunk's header, plus the end. */
  chunkOffsets: number[];
}

export type CasRequestKind = 'reconstruction' | 'xorb';

/**
 * A status answer; half the body then a dropped connection; every URL signed so far expiring (403)
 * at this request; or an answer held back for `delayMs` (0: served normally, which lets later faults
 * start after a number of requests).
 */
export type CasFault = { status: number; retryAfterSeconds?: number } | { truncate: true } | { expireUrls: true } | { delayMs: number };

export interface FixtureCas {
  /** The CAS base URL handed out with tokens. */
  readonly casUrl: string;
  readonly server: FixtureServer;
  readonly files: Map<string, FixtureCasFile>;
  readonly xorbs: Map<string, FixtureCasXorb>;
  /** Chunks `data` into xorbs (deduplicating against what is stored) and registers the file. */
  addFile(source: { data: Buffer } | { path: string }): Promise<FixtureCasFile>;
  /** A fresh access token, as the Hub's xet-read-token endpoint hands out. */
  issueToken(): { accessToken: string; casUrl: string; exp: number };
  /** The next `times` requests of `kind` get `fault` (default once). */
  injectFault(kind: CasRequestKind, fault: CasFault, times?: number): void;
  /** Drops the faults not yet spent. */
  clearFaults(): void;
  /** Every signed URL issued so far answers 403 from now on, as an expired S3 URL does. */
  expireSignedUrls(): void;
  /** Every access token issued so far answers 401 from now on. */
  expireTokens(): void;
  /** Whether `/v2/reconstructions` exists (default true); when false it answers 404. */
  setV2Enabled(enabled: boolean): void;
  /** Hands out this origin (an https front) in tokens and signed URLs from now on, instead of the server's own. */
  setPublicOrigin(origin: string): void;
  /** Xorb body bytes served since start (or the last reset of the server's log). */
  xorbBytesServed(): number;
  close(): Promise<void>;
}

const DEFAULT_SCHEMES: CompressionScheme[] = [CompressionScheme.LZ4, CompressionScheme.ByteGrouping4LZ4, CompressionScheme.None];

interface ChunkLocation {
  xorb: XorbBuilder;
  index: number;
}

/** A xorb being filled while a file is chunked; its hash is known once it is closed. */
interface XorbBuilder {
  chunks: HashedChunk[];
  stored: Buffer[];
  hash?: string;
}

/** The chunks of `data`, cut by the content-defined chunker. */
function* chunksOfBuffer(data: Buffer): Generator<Buffer> {
  let start = 0;
  for (const end of chunkBoundaries(data)) {
    yield data.subarray(start, end);
    start = end;
  }
}

/** The chunks of the file at `path`, read a piece at a time (a bench file of gigabytes never sits in memory whole). */
async function* chunksOfFile(path: string): AsyncGenerator<Buffer> {
  const chunker = new XetChunker();
  const handle = await open(path, 'r');
  let pending = Buffer.alloc(0);
  try {
    for (;;) {
      const piece = Buffer.allocUnsafe(16 * 1024 * 1024);
      const { bytesRead } = await handle.read(piece, 0, piece.length, null);
      if (bytesRead === 0) break;
      const read = piece.subarray(0, bytesRead);
      pending = pending.length === 0 ? read : Buffer.concat([pending, read]);
      let start = 0;
      for (const length of chunker.push(read)) {
        yield pending.subarray(start, start + length);
        start += length;
      }
      pending = pending.subarray(start);
    }
  } finally {
    await handle.close();
  }
  if (chunker.finish() !== undefined) yield pending;
}

export async function startFixtureCas(options: FixtureCasOptions = {}): Promise<FixtureCas> {
  const server = await startFixtureServer();
  let publicOrigin = server.origin;
  const now = options.now ?? Date.now;
  const ttlSeconds = options.ttlSeconds ?? 3600;
  const chunksPerXorb = options.chunksPerXorb ?? 64;
  const schemes = options.schemes ?? DEFAULT_SCHEMES;
  const secret = randomBytes(32);
  const files = new Map<string, FixtureCasFile>();
  const xorbs = new Map<string, FixtureCasXorb>();
  const chunkIndex = new Map<string, ChunkLocation>();
  const tokens = new Map<string, { exp: number; generation: number }>();
  const faults: Array<{ kind: CasRequestKind; fault: CasFault; left: number }> = [];
  let tokenGeneration = 0;
  let urlGeneration = 0;
  let v2Enabled = true;
  let schemeTurn = 0;
  const nowSeconds = (): number => Math.floor(now() / 1000);

  /** Xorbs made since the last file was saved to the store. */
  let added: StoredXorb[] = [];

  const closeXorb = (builder: XorbBuilder): void => {
    if (builder.hash || builder.chunks.length === 0) return;
    const hash = xetHashToHex(xorbHash(builder.chunks));
    builder.hash = hash;
    const chunkOffsets = [0];
    for (const stored of builder.stored) chunkOffsets.push((chunkOffsets.at(-1) as number) + stored.length);
    if (!xorbs.has(hash)) {
      xorbs.set(hash, { hash, data: Buffer.concat(builder.stored), chunkOffsets });
      added.push({ ...(xorbs.get(hash) as FixtureCasXorb), chunks: builder.chunks });
    }
  };
  /** Registers a stored file and its xorbs, their chunks included (so files added later dedup against them). */
  const loadFile = async (source: { data: Buffer } | { path: string }, store: string): Promise<FixtureCasFile | undefined> => {
    const stored = await loadStoredFile(store, await contentSha256(source), (hash) => xorbs.has(hash));
    if (!stored) return undefined;
    for (const xorb of stored.xorbs) {
      xorbs.set(xorb.hash, { hash: xorb.hash, data: xorb.data, chunkOffsets: xorb.chunkOffsets });
      const builder: XorbBuilder = { chunks: xorb.chunks, stored: [], hash: xorb.hash };
      xorb.chunks.forEach((chunk, index) => {
        const key = xetHashToHex(chunk.hash);
        if (!chunkIndex.has(key)) chunkIndex.set(key, { xorb: builder, index });
      });
    }
    files.set(stored.file.fileHash, stored.file);
    return stored.file;
  };

  const addFile = async (source: { data: Buffer } | { path: string }): Promise<FixtureCasFile> => {
    await prepareChunkHashing();
    if (options.store) {
      const loaded = await loadFile(source, options.store);
      if (loaded) return loaded;
    }
    added = [];
    const hashed: HashedChunk[] = [];
    const locations: ChunkLocation[] = [];
    const sha256 = createHash('sha256');
    let size = 0;
    let current: XorbBuilder = { chunks: [], stored: [] };
    for await (const bytes of 'data' in source ? chunksOfBuffer(source.data) : chunksOfFile(source.path)) {
      sha256.update(bytes);
      size += bytes.length;
      const chunk = { hash: chunkHash(bytes), size: bytes.length };
      hashed.push(chunk);
      const key = xetHashToHex(chunk.hash);
      let location = chunkIndex.get(key);
      if (!location) {
        if (current.chunks.length === chunksPerXorb) {
          closeXorb(current);
          current = { chunks: [], stored: [] };
        }
        location = { xorb: current, index: current.chunks.length };
        current.chunks.push(chunk);
        current.stored.push(encodeChunk(bytes, schemes[schemeTurn++ % schemes.length] ?? CompressionScheme.None));
        chunkIndex.set(key, location);
      }
      locations.push(location);
    }
    closeXorb(current);

    // Consecutive chunks of one xorb, in order, make one term.
    const terms: FixtureCasTerm[] = [];
    locations.forEach((location, i) => {
      const size = (hashed[i] as HashedChunk).size;
      const hash = location.xorb.hash as string;
      const last = terms.at(-1);
      if (last && last.xorbHash === hash && last.chunkEnd === location.index) {
        last.chunkEnd += 1;
        last.unpackedLength += size;
      } else {
        terms.push({ xorbHash: hash, chunkStart: location.index, chunkEnd: location.index + 1, unpackedLength: size });
      }
    });
    const file: FixtureCasFile = { fileHash: xetHashToHex(fileHash(hashed)), size, sha256: sha256.digest('hex'), terms };
    files.set(file.fileHash, file);
    if (options.store) await saveStoredFile(options.store, file, added);
    added = [];
    return file;
  };

  const sign = (xorb: string, range: string, expires: number, generation: number): string =>
    createHmac('sha256', secret).update(`${xorb}\n${range}\n${expires}\n${generation}`).digest('hex');

  const signedUrl = (xorb: string, ranges: Array<{ start: number; end: number }>): string => {
    const range = `bytes=${ranges.map((r) => `${r.start}-${r.end}`).join(',')}`;
    const expires = nowSeconds() + ttlSeconds;
    const query = new URLSearchParams({ 'X-Xet-Signed-Range': range, Expires: String(expires), Generation: String(urlGeneration), Signature: sign(xorb, range, expires, urlGeneration) });
    return `${publicOrigin}/xorbs/default/${xorb}?${query.toString()}`;
  };

  const takeFault = (kind: CasRequestKind): CasFault | undefined => {
    const at = faults.findIndex((f) => f.kind === kind && f.left > 0);
    if (at < 0) return undefined;
    const entry = faults[at] as (typeof faults)[number];
    entry.left -= 1;
    if (entry.left === 0) faults.splice(at, 1);
    return entry.fault;
  };

  const answer = (res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void => {
    res.statusCode = status;
    for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
    res.setHeader('Content-Type', 'text/plain');
    res.end(body);
  };

  const authorized = (req: IncomingMessage): boolean => {
    const match = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
    const token = match ? tokens.get(match[1] as string) : undefined;
    return token !== undefined && token.generation === tokenGeneration && token.exp > nowSeconds();
  };

  /** Decoded length of chunk `index` of a stored xorb. */
  const chunkLength = (xorbHash: string, index: number): number => {
    const xorb = xorbs.get(xorbHash) as FixtureCasXorb;
    return decodeChunkHeader(xorb.data, xorb.chunkOffsets[index] as number).uncompressedLength;
  };

  /**
   * The terms covering bytes [start, end] of the file, cut to the chunks that hold those bytes (as
   * the real CAS answers a ranged reconstruction), and how far into the first chunk `start` is.
   */
  const termsFor = (file: FixtureCasFile, start: number, end: number): { terms: FixtureCasTerm[]; offset: number } => {
    const terms: FixtureCasTerm[] = [];
    let at = 0;
    let offset = 0;
    for (const term of file.terms) {
      const termEnd = at + term.unpackedLength;
      if (termEnd > start && at <= end) {
        const cut = { ...term };
        let chunkAt = at;
        // Chunks wholly before `start` (first term) or wholly after `end` (last term) are left out.
        while (start > chunkAt && chunkAt + chunkLength(cut.xorbHash, cut.chunkStart) <= start) {
          chunkAt += chunkLength(cut.xorbHash, cut.chunkStart);
          cut.unpackedLength -= chunkLength(cut.xorbHash, cut.chunkStart);
          cut.chunkStart += 1;
        }
        let cutEnd = termEnd;
        while (cutEnd - 1 > end && cutEnd - chunkLength(cut.xorbHash, cut.chunkEnd - 1) > end) {
          cutEnd -= chunkLength(cut.xorbHash, cut.chunkEnd - 1);
          cut.unpackedLength -= chunkLength(cut.xorbHash, cut.chunkEnd - 1);
          cut.chunkEnd -= 1;
        }
        if (terms.length === 0) offset = start - chunkAt;
        terms.push(cut);
      }
      at = termEnd;
    }
    return { terms, offset };
  };

  /** Per xorb, the unions of the chunk ranges the terms need (overlapping or touching ranges merged). */
  const rangesByXorb = (terms: FixtureCasTerm[]): Map<string, Array<{ chunkStart: number; chunkEnd: number }>> => {
    const byXorb = new Map<string, Array<{ chunkStart: number; chunkEnd: number }>>();
    for (const term of terms) {
      const list = byXorb.get(term.xorbHash) ?? [];
      list.push({ chunkStart: term.chunkStart, chunkEnd: term.chunkEnd });
      byXorb.set(term.xorbHash, list);
    }
    for (const [hash, list] of byXorb) {
      list.sort((a, b) => a.chunkStart - b.chunkStart);
      const merged: typeof list = [];
      for (const range of list) {
        const last = merged.at(-1);
        if (last && range.chunkStart <= last.chunkEnd) last.chunkEnd = Math.max(last.chunkEnd, range.chunkEnd);
        else merged.push({ ...range });
      }
      byXorb.set(hash, merged);
    }
    return byXorb;
  };

  server.route('/v1/reconstructions/', (req, res, url) => reconstruction(req, res, url, 1));
  server.route('/v2/reconstructions/', (req, res, url) => reconstruction(req, res, url, 2));

  const reconstruction = (req: IncomingMessage, res: ServerResponse, url: URL, version: 1 | 2): void => {
    if (version === 2 && !v2Enabled) return answer(res, 404, 'not found');
    if (!authorized(req)) return answer(res, 401, 'missing or expired access token');
    const fault = takeFault('reconstruction');
    if (fault && 'status' in fault) return answer(res, fault.status, `fault ${fault.status}`, fault.retryAfterSeconds === undefined ? {} : { 'Retry-After': String(fault.retryAfterSeconds) });
    const file = files.get(url.pathname.split('/').pop() ?? '');
    if (!file) return answer(res, 404, 'file not found');
    let start = 0;
    let end = file.size - 1;
    if (req.headers.range !== undefined) {
      const match = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range);
      if (!match) return answer(res, 400, 'bad range');
      start = Number(match[1]);
      end = Math.min(Number(match[2]), file.size - 1);
      if (start >= file.size || end < start) return answer(res, 416, 'range not satisfiable');
    }
    const { terms, offset } = file.size === 0 ? { terms: [], offset: 0 } : termsFor(file, start, end);
    const byXorb = rangesByXorb(terms);
    const body: Record<string, unknown> = {
      offset_into_first_range: offset,
      terms: terms.map((t) => ({ hash: t.xorbHash, range: { start: t.chunkStart, end: t.chunkEnd }, unpacked_length: t.unpackedLength })),
    };
    const byteRange = (xorb: FixtureCasXorb, r: { chunkStart: number; chunkEnd: number }) => ({ start: xorb.chunkOffsets[r.chunkStart] as number, end: (xorb.chunkOffsets[r.chunkEnd] as number) - 1 });
    if (version === 1) {
      body.fetch_info = Object.fromEntries(
        [...byXorb].map(([hash, ranges]) => {
          const xorb = xorbs.get(hash) as FixtureCasXorb;
          return [hash, ranges.map((r) => ({ range: { start: r.chunkStart, end: r.chunkEnd }, url: signedUrl(hash, [byteRange(xorb, r)]), url_range: byteRange(xorb, r) }))];
        }),
      );
    } else {
      body.xorbs = Object.fromEntries(
        [...byXorb].map(([hash, ranges]) => {
          const xorb = xorbs.get(hash) as FixtureCasXorb;
          const bytes = ranges.map((r) => byteRange(xorb, r));
          return [hash, [{ url: signedUrl(hash, bytes), ranges: ranges.map((r, i) => ({ chunks: { start: r.chunkStart, end: r.chunkEnd }, bytes: bytes[i] })) }]];
        }),
      );
    }
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify(body));
  };

  server.route('/xorbs/default/', async (req, res, url, context) => {
    const hash = url.pathname.split('/').pop() ?? '';
    const xorb = xorbs.get(hash);
    const signedRange = url.searchParams.get('X-Xet-Signed-Range') ?? '';
    const expires = Number(url.searchParams.get('Expires'));
    const generation = Number(url.searchParams.get('Generation'));
    const signature = Buffer.from(url.searchParams.get('Signature') ?? '', 'hex');
    const expected = Buffer.from(sign(hash, signedRange, expires, generation), 'hex');
    if (!xorb || signature.length !== expected.length || !timingSafeEqual(signature, expected)) return answer(res, 403, 'SignatureDoesNotMatch');
    const fault = takeFault('xorb');
    if (fault && 'delayMs' in fault && fault.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, fault.delayMs).unref());
    if (fault && 'expireUrls' in fault) urlGeneration += 1;
    if (generation !== urlGeneration || expires <= nowSeconds()) return answer(res, 403, 'Request has expired');
    const parts = signedRange.slice('bytes='.length).split(',');
    const asked = req.headers.range ?? '';
    // The signed value as a whole, or (as clients that split multi-range URLs send) one of its ranges.
    if (asked !== signedRange && !parts.some((part) => asked === `bytes=${part}`)) return answer(res, 403, `Range ${asked || '(none)'} is not the signed range`);
    if (fault && 'status' in fault) return answer(res, fault.status, `fault ${fault.status}`, fault.retryAfterSeconds === undefined ? {} : { 'Retry-After': String(fault.retryAfterSeconds) });
    const ranges = asked.slice('bytes='.length).split(',').map((part) => {
      const [a = '', b = ''] = part.split('-');
      return { start: Number(a), end: Number(b) };
    });
    if (ranges.some((r) => r.end >= xorb.data.length)) return answer(res, 416, 'range not satisfiable', { 'Content-Range': `bytes */${xorb.data.length}` });
    let body: Buffer;
    res.statusCode = 206;
    if (ranges.length === 1) {
      const r = ranges[0] as { start: number; end: number };
      body = xorb.data.subarray(r.start, r.end + 1);
      res.setHeader('Content-Type', 'application/octet-stream');
      res.setHeader('Content-Range', `bytes ${r.start}-${r.end}/${xorb.data.length}`);
    } else {
      const boundary = `fixture${randomBytes(8).toString('hex')}`;
      const pieces: Buffer[] = [];
      for (const r of ranges) {
        pieces.push(Buffer.from(`\r\n--${boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes ${r.start}-${r.end}/${xorb.data.length}\r\n\r\n`), xorb.data.subarray(r.start, r.end + 1));
      }
      pieces.push(Buffer.from(`\r\n--${boundary}--\r\n`));
      body = Buffer.concat(pieces);
      res.setHeader('Content-Type', `multipart/byteranges; boundary=${boundary}`);
    }
    res.setHeader('Content-Length', String(body.length));
    if (fault && 'truncate' in fault) {
      // Half the promised bytes, then the connection closes: a transfer cut off mid-body. The socket is
      // ended, not destroyed, so the client reads all of the half before the close (a destroy could
      // reset the connection while the half still sat unread, and the client would see less).
      const half = body.subarray(0, Math.floor(body.length / 2));
      res.flushHeaders();
      await new Promise<void>((resolve) => res.write(half, () => resolve()));
      context.onBody(half.length);
      // A moment before the close, so the client has taken in the half before it learns of the cut.
      await new Promise((resolve) => setTimeout(resolve, 100));
      res.socket?.end();
      return;
    }
    res.end(body);
    context.onBody(body.length);
  });

  return {
    get casUrl() {
      return publicOrigin;
    },
    server,
    files,
    xorbs,
    addFile,
    issueToken: () => {
      const accessToken = `xet_${randomBytes(16).toString('hex')}`;
      const exp = nowSeconds() + ttlSeconds;
      tokens.set(accessToken, { exp, generation: tokenGeneration });
      return { accessToken, casUrl: publicOrigin, exp };
    },
    injectFault: (kind, fault, times = 1) => void faults.push({ kind, fault, left: times }),
    clearFaults: () => void faults.splice(0),
    expireSignedUrls: () => void (urlGeneration += 1),
    expireTokens: () => void (tokenGeneration += 1),
    setV2Enabled: (enabled) => void (v2Enabled = enabled),
    setPublicOrigin: (origin) => void (publicOrigin = origin),
    xorbBytesServed: () => server.requests.filter((r) => r.url.startsWith('/xorbs/')).reduce((sum, r) => sum + r.bodyBytes, 0),
    close: () => server.close(),
  };
}
