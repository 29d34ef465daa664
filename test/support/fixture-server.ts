import { createHash, randomFillSync } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A loopback HTTP server that serves files the way a hub's CDN does (Range, If-Range, strong ETags)
 * and can misbehave on demand. Tests start it on port 0; nothing here touches the internet.
 */

export interface ServedFile {
  /** Absolute path of the content on disk, or the content itself. */
  source: { path: string } | { data: Buffer };
  size: number;
  etag: string;
  sha256: string;
  /** Extra response headers (e.g. X-Repo-Commit). */
  headers?: Record<string, string>;
}

export interface Fault {
  /** Sleep before answering. */
  latencyMs?: number;
  /** Bytes per second for this response. */
  throttleBytesPerSec?: number;
  /** After this many body bytes, stop sending and keep the socket open. */
  stallAfterBytes?: number;
  /** After this many body bytes, destroy the socket (a connection reset). */
  resetAfterBytes?: number;
  /** After this many body bytes, close the socket without error (a short clean close). */
  truncateAfterBytes?: number;
  /** Absolute file offsets whose byte is flipped on the way out. */
  corruptOffsets?: number[];
  /** Answer every request with 200 and the whole body. */
  ignoreRange?: boolean;
  /** With ignoreRange: still advertise `Accept-Ranges: bytes`. */
  lieAboutRanges?: boolean;
  /** Serve the range even when If-Range names another ETag (a server that does not implement If-Range). */
  ignoreIfRange?: boolean;
  /** Answer with this status instead (e.g. 429, 503, 403, 404), and these headers (e.g. Retry-After). */
  status?: number;
  statusHeaders?: Record<string, string>;
  /** Replace the body with this text (e.g. an HTML error page) and send it with status 200. */
  replaceBody?: string;
  /** Omit Content-Length (chunked). */
  noContentLength?: boolean;
  /** Send `Content-Encoding: gzip` and a gzip body even when identity was asked for. */
  forceGzip?: boolean;
  /** Send a 206 whose Content-Range is shifted by this many bytes (a lying server). */
  wrongRangeShift?: number;
  /** Send a 206 whose Content-Range claims this total size instead of the real one. */
  wrongRangeTotal?: number;
  /**
   * Answer a range request with bytes starting this many bytes off the requested start (-1000: a CDN
   * that aligns ranges to its own chunks), with an honest Content-Range.
   */
  rangeStartShift?: number;
  /** Keep sending bytes past the end of the range (an endless body), up to this many extra. */
  extraBytes?: number;
}

export interface FaultRule {
  /** Which requests it applies to; default all. */
  match?: (req: IncomingMessage) => boolean;
  /** How many matching requests it applies to before it is spent; default unlimited. */
  times?: number;
  fault: Fault;
}

export interface RequestRecord {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  status: number;
  /** Body bytes actually written to the socket for this response. */
  bodyBytes: number;
  /** performance.now() when the request arrived and when its response finished (or the socket closed). */
  receivedAt: number;
  finishedAt?: number;
}

/** What a route gets besides the request: the faults that apply to it, and a counter for the body bytes it sends. */
export interface RouteContext {
  /** Takes (and spends) the faults matching this request, as files served by `setFile` do. */
  takeFault(): Fault;
  /** Adds to this request's `bodyBytes` in the log; pass it to `serveFile`. */
  onBody(n: number): void;
}

export type RouteHandler = (req: IncomingMessage, res: ServerResponse, url: URL, context: RouteContext) => void | Promise<void>;

export interface FixtureServer {
  readonly origin: string;
  readonly port: number;
  readonly requests: RequestRecord[];
  /** Body bytes served in total since start (or the last reset). */
  bodyBytesServed(): number;
  /** Serves `file` at `urlPath` (e.g. `/files/model.bin`). Replacing a file changes its ETag. */
  setFile(urlPath: string, file: ServedFile): void;
  removeFile(urlPath: string): void;
  /** Adds a route checked before files; the first matching prefix wins. */
  route(pathPrefix: string, handler: RouteHandler): void;
  addFault(rule: FaultRule): void;
  clearFaults(): void;
  resetLog(): void;
  close(): Promise<void>;
}

/** `tls`: serve https with this leaf (e.g. a test CA's, test/support/test-ca.ts) instead of plain http. */
export async function startFixtureServer(options: { host?: string; tls?: { key: Buffer; cert: Buffer } } = {}): Promise<FixtureServer> {
  const files = new Map<string, ServedFile>();
  const routes: Array<{ prefix: string; handler: RouteHandler }> = [];
  const rules: Array<FaultRule & { used: number }> = [];
  const requests: RequestRecord[] = [];
  const sockets = new Set<Socket>();

  const takeFault = (req: IncomingMessage): Fault => {
    const merged: Fault = {};
    for (const rule of rules) {
      if (rule.times !== undefined && rule.used >= rule.times) continue;
      if (rule.match && !rule.match(req)) continue;
      rule.used += 1;
      Object.assign(merged, rule.fault);
    }
    return merged;
  };

  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    const record: RequestRecord = { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers, status: 0, bodyBytes: 0, receivedAt: performance.now() };
    requests.push(record);
    res.on('finish', () => {
      record.status = res.statusCode;
      record.finishedAt ??= performance.now();
    });
    res.on('close', () => {
      record.status ||= res.statusCode;
      record.finishedAt ??= performance.now();
    });
    void handle(req, res, record).catch((error: unknown) => {
      if (!res.headersSent) {
        res.statusCode = 500;
        res.end(String(error));
      } else {
        res.destroy();
      }
    });
  };
  const server: Server = options.tls ? createTlsServer({ key: options.tls.key, cert: options.tls.cert }, listener) : createServer(listener);

  const handle = async (req: IncomingMessage, res: ServerResponse, record: RequestRecord): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://fixture.invalid');
    for (const { prefix, handler } of routes) {
      if (url.pathname.startsWith(prefix)) {
        await handler(req, res, url, { takeFault: () => takeFault(req), onBody: (n) => (record.bodyBytes += n) });
        return;
      }
    }
    const file = files.get(url.pathname);
    if (!file) {
      res.statusCode = 404;
      res.setHeader('Content-Type', 'text/plain');
      res.end('not found');
      return;
    }
    await serveFile(req, res, file, takeFault(req), (n) => (record.bodyBytes += n));
  };

  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, options.host ?? '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    origin: `${options.tls ? 'https' : 'http'}://${options.host ?? '127.0.0.1'}:${port}`,
    port,
    requests,
    bodyBytesServed: () => requests.reduce((sum, r) => sum + r.bodyBytes, 0),
    setFile: (urlPath, file) => void files.set(urlPath, file),
    removeFile: (urlPath) => void files.delete(urlPath),
    route: (prefix, handler) => void routes.push({ prefix, handler }),
    addFault: (rule) => void rules.push({ ...rule, used: 0 }),
    clearFaults: () => void rules.splice(0),
    resetLog: () => void requests.splice(0),
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Parses a single `bytes=a-b` / `bytes=a-` / `bytes=-n` range; undefined for none or unsupported forms. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (!header) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match) return undefined;
  const [, a = '', b = ''] = match;
  if (a === '' && b === '') return undefined;
  let start: number;
  let end: number;
  if (a === '') {
    const suffix = Number(b);
    if (suffix === 0) return 'unsatisfiable';
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(a);
    end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
    if (b !== '' && Number(b) < start) return undefined;
  }
  if (start >= size) return 'unsatisfiable';
  return { start, end };
}

/** Serves one file with Range/If-Range/HEAD semantics, applying `fault`. Exported for the fixture hub. */
export async function serveFile(req: IncomingMessage, res: ServerResponse, file: ServedFile, fault: Fault = {}, onBody: (n: number) => void = () => {}): Promise<void> {
  if (fault.latencyMs) await sleep(fault.latencyMs);
  for (const [k, v] of Object.entries(file.headers ?? {})) res.setHeader(k, v);
  if (fault.status) {
    res.statusCode = fault.status;
    for (const [k, v] of Object.entries(fault.statusHeaders ?? {})) res.setHeader(k, v);
    res.setHeader('Content-Type', 'text/plain');
    res.end(`fault ${fault.status}`);
    return;
  }
  if (fault.replaceBody !== undefined) {
    res.statusCode = 200;
    res.setHeader('Content-Type', 'text/html');
    res.end(fault.replaceBody);
    onBody(Buffer.byteLength(fault.replaceBody));
    return;
  }

  res.setHeader('ETag', `"${file.etag}"`);
  // A server that ignores Range says so (a lying one is `lieAboutRanges`).
  res.setHeader('Accept-Ranges', fault.ignoreRange && !fault.lieAboutRanges ? 'none' : 'bytes');
  res.setHeader('Content-Type', 'application/octet-stream');

  let range = fault.ignoreRange ? undefined : parseRange(req.headers.range, file.size);
  const ifRange = req.headers['if-range'];
  if (range && ifRange !== undefined && ifRange !== `"${file.etag}"` && !fault.ignoreIfRange) range = undefined;
  if (range === 'unsatisfiable') {
    res.statusCode = 416;
    res.setHeader('Content-Range', `bytes */${file.size}`);
    res.end();
    return;
  }
  const start = range ? Math.min(Math.max(0, range.start + (fault.rangeStartShift ?? 0)), range.end) : 0;
  const end = range ? range.end : file.size - 1;
  const length = file.size === 0 ? 0 : end - start + 1;
  res.statusCode = range ? 206 : 200;
  if (range) {
    const shift = fault.wrongRangeShift ?? 0;
    res.setHeader('Content-Range', `bytes ${start + shift}-${end + shift}/${fault.wrongRangeTotal ?? file.size}`);
  }
  if (fault.forceGzip) res.setHeader('Content-Encoding', 'gzip');
  if (!fault.noContentLength && !fault.forceGzip && !fault.extraBytes) res.setHeader('Content-Length', String(length));
  if (req.method === 'HEAD') {
    res.setHeader('Content-Length', String(length));
    res.end();
    return;
  }

  if (fault.forceGzip) {
    const { gzipSync } = await import('node:zlib');
    const body = gzipSync(await readSlice(file, start, length));
    res.end(body);
    onBody(body.length);
    return;
  }

  await streamBody(res, file, start, length, fault, onBody);
}

async function readSlice(file: ServedFile, start: number, length: number): Promise<Buffer> {
  if ('data' in file.source) return file.source.data.subarray(start, start + length);
  const handle = await open(file.source.path, 'r');
  try {
    const buf = Buffer.alloc(length);
    await handle.read(buf, 0, length, start);
    return buf;
  } finally {
    await handle.close();
  }
}

const CHUNK = 256 * 1024;

function waitForDrain(res: ServerResponse): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

async function streamBody(res: ServerResponse, file: ServedFile, start: number, length: number, fault: Fault, onBody: (n: number) => void): Promise<void> {
  let handle: FileHandle | undefined;
  if ('path' in file.source) handle = await open(file.source.path, 'r');
  const socket = res.socket;
  let aborted = false;
  res.on('close', () => (aborted = true));
  try {
    const limit = Math.min(
      fault.stallAfterBytes ?? Infinity,
      fault.resetAfterBytes ?? Infinity,
      fault.truncateAfterBytes ?? Infinity,
    );
    const total = length + (fault.extraBytes ?? 0);
    const rate = fault.throttleBytesPerSec;
    // Throttled responses go out in ~20 slices a second so the pace is smooth.
    const chunkSize = rate ? Math.max(1024, Math.min(CHUNK, Math.floor(rate / 20))) : CHUNK;
    const began = Date.now();
    let sent = 0;
    const buf = Buffer.allocUnsafe(chunkSize);
    while (sent < total && !aborted) {
      const want = Math.min(chunkSize, total - sent, limit - sent);
      if (want <= 0) break;
      const offset = start + sent;
      let chunk: Buffer;
      if (sent >= length) {
        chunk = Buffer.alloc(want, 0x41); // bytes past the end of the range
      } else {
        const n = Math.min(want, length - sent);
        if (handle) {
          const { bytesRead } = await handle.read(buf, 0, n, offset);
          chunk = Buffer.from(buf.subarray(0, bytesRead));
        } else {
          chunk = Buffer.from((file.source as { data: Buffer }).data.subarray(offset, offset + n));
        }
        if (chunk.length === 0) break;
      }
      for (const at of fault.corruptOffsets ?? []) {
        if (at >= offset && at < offset + chunk.length) chunk[at - offset] = (chunk[at - offset] ?? 0) ^ 0xff;
      }
      res.write(chunk);
      sent += chunk.length;
      onBody(chunk.length);
      if (rate) {
        const due = began + (sent / rate) * 1000;
        const wait = due - Date.now();
        if (wait > 0) await sleep(wait);
      }
      // Checked after the throttle's sleep: a 'drain' during the sleep must not be waited for again.
      if (res.writableNeedDrain && !aborted) await waitForDrain(res);
    }
    if (aborted) return;
    if (sent >= limit && limit < total) {
      if (fault.resetAfterBytes !== undefined && sent >= fault.resetAfterBytes) {
        // Over TLS the reset goes to the TCP socket underneath (a TLSSocket has no reset of its own).
        const tcp = (socket as (Socket & { _parent?: Socket }) | null)?._parent ?? socket;
        tcp?.resetAndDestroy();
        return;
      }
      if (fault.truncateAfterBytes !== undefined && sent >= fault.truncateAfterBytes) {
        socket?.end();
        socket?.destroySoon();
        return;
      }
      // A stall: keep the socket open and silent until the client gives up.
      await new Promise<void>((resolve) => res.once('close', resolve));
      return;
    }
    res.end();
  } finally {
    await handle?.close();
  }
}

/** Writes `size` random bytes to `path` and returns their SHA-256 and git blob SHA-1. Test data is made, never committed. */
export async function generateFile(path: string, size: number): Promise<{ size: number; sha256: string; gitSha1: string }> {
  const sha256 = createHash('sha256');
  const sha1 = createHash('sha1').update(`blob ${size}\0`);
  const handle = await open(path, 'w');
  try {
    const buf = Buffer.allocUnsafe(4 * 1024 * 1024);
    let written = 0;
    while (written < size) {
      const n = Math.min(buf.length, size - written);
      const slice = buf.subarray(0, n);
      randomFillSync(slice);
      sha256.update(slice);
      sha1.update(slice);
      await handle.write(slice, 0, n, written);
      written += n;
    }
  } finally {
    await handle.close();
  }
  return { size, sha256: sha256.digest('hex'), gitSha1: sha1.digest('hex') };
}

/** Describes in-memory bytes for `setFile`. */
export function servedBuffer(data: Buffer, headers?: Record<string, string>): ServedFile {
  const sha256 = createHash('sha256').update(data).digest('hex');
  return { source: { data }, size: data.length, etag: sha256, sha256, ...(headers && { headers }) };
}

/** Describes a generated file on disk for `setFile`. */
export function servedPath(path: string, info: { size: number; sha256: string }, headers?: Record<string, string>): ServedFile {
  return { source: { path }, size: info.size, etag: info.sha256, sha256: info.sha256, ...(headers && { headers }) };
}
