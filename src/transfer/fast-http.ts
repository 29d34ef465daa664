import { connect, type Socket } from 'node:net';
import { ModelfetchError } from '../core/errors.js';

/**
 * A small HTTP/1.1 client for the engine's hot path: plain-http GETs of byte ranges, the bulk of
 * every download (and, since it is already here, every other plain-http request). Each connection reads with one reusable 512 KiB buffer (`onread`), so the kernel
 * hands over up to 512 KiB per read with no allocation, and the body is passed on as views into it
 * while the socket is paused — several times less CPU per byte than a general client, which
 * matters when network, writes and hashing must share two cores. Keep-alive, Content-Length and
 * chunked bodies are handled; redirects are returned to the caller. https goes through undici.
 */

const READ_BUFFER_SIZE = 512 * 1024;
const MAX_HEAD_BYTES = 64 * 1024;
const IDLE_TIMEOUT_MS = 4000;

export interface FastResponse {
  status: number;
  headers: Record<string, string>;
  body: FastBody;
}

type Framing = { kind: 'length'; left: number } | { kind: 'chunked'; state: 'size' | 'data' | 'data-end' | 'trailer'; left: number; line: string } | { kind: 'close' };

/** One response body: an async iterable of views that are valid until the next iteration. */
export class FastBody implements AsyncIterable<Buffer> {
  destroyed = false;
  readableEnded = false;
  private readonly queue: Buffer[] = [];
  private complete = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly connection: Connection) {}

  /** Parser side. */
  deliver(view: Buffer): void {
    if (view.length > 0) this.queue.push(view);
  }

  finish(): void {
    this.complete = true;
    this.signal();
  }

  fail(error: Error): void {
    if (this.complete) return;
    this.failure ??= error;
    this.signal();
  }

  hasQueued(): boolean {
    return this.queue.length > 0;
  }

  signal(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  on(): this {
    return this; // errors surface through iteration; kept for callers that treat bodies as streams
  }

  /** Reads and drops the rest of the body. */
  async dump(): Promise<void> {
    for await (const _ of this) {
      // discard
    }
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.queue.length = 0;
    if (this.complete && !this.readableEnded) {
      // Fully received but not fully read: the connection is still clean.
      this.readableEnded = true;
      this.connection.release();
    } else if (!this.readableEnded) {
      this.connection.destroy();
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    try {
      for (;;) {
        const view = this.queue.shift();
        if (view) {
          yield view;
          continue;
        }
        if (this.failure) throw this.failure;
        if (this.complete) {
          this.readableEnded = true;
          this.destroyed = true;
          this.connection.release();
          return;
        }
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          this.connection.resume();
        });
      }
    } finally {
      if (!this.readableEnded) this.destroy();
    }
  }
}

function protocolError(detail: string): ModelfetchError {
  return new ModelfetchError('ERR_NETWORK', `Malformed HTTP response: ${detail}`);
}

class Connection {
  readonly socket: Socket;
  private head: Buffer[] = [];
  private headLength = 0;
  private onHead: ((response: FastResponse) => void) | undefined;
  private onFail: ((error: Error) => void) | undefined;
  private body: FastBody | undefined;
  private framing: Framing | undefined;
  private reusable = true;
  /** Bytes received for the current request; 0 means a reused socket died before answering. */
  received = 0;

  constructor(
    readonly key: string,
    host: string,
    port: number,
    private readonly pool: FastHttpPool,
  ) {
    const buffer = Buffer.allocUnsafe(READ_BUFFER_SIZE);
    this.socket = connect({ host, port, noDelay: true, onread: { buffer, callback: (n) => this.onRead(buffer.subarray(0, n)) } });
    this.socket.on('error', (error) => this.failAll(error));
    this.socket.on('close', () => {
      pool.forget(this);
      this.failAll(new Error('other side closed'));
    });
    this.socket.on('end', () => this.onEnd());
    this.socket.on('timeout', () => this.socket.destroy());
  }

  send(method: string, path: string, headers: Record<string, string>): Promise<FastResponse> {
    this.head = [];
    this.headLength = 0;
    this.body = undefined;
    this.framing = undefined;
    this.received = 0;
    this.method = method;
    this.socket.resume(); // a parked connection may have been paused by its last body
    let text = `${method} ${path} HTTP/1.1\r\n`;
    for (const [name, value] of Object.entries(headers)) text += `${name}: ${value}\r\n`;
    text += '\r\n';
    return new Promise((resolve, reject) => {
      this.onHead = resolve;
      this.onFail = reject;
      this.socket.write(text);
    });
  }

  private method = 'GET';

  resume(): void {
    if (!this.socket.destroyed) this.socket.resume();
  }

  release(): void {
    this.body = undefined;
    if (this.reusable && !this.socket.destroyed) this.pool.park(this);
    else this.socket.destroy();
  }

  destroy(): void {
    this.reusable = false;
    this.socket.destroy();
  }

  private failAll(error: Error): void {
    this.reusable = false;
    const fail = this.onFail;
    this.onFail = undefined;
    this.onHead = undefined;
    fail?.(error);
    if (this.body && this.framing?.kind === 'close') {
      this.body.finish(); // a body delimited by the connection closing ends here
      return;
    }
    this.body?.fail(error);
  }

  private onEnd(): void {
    if (this.body && this.framing?.kind === 'close') this.body.finish();
  }

  /** Returns false to pause the socket while the consumer still holds views into the read buffer. */
  private onRead(data: Buffer): boolean {
    this.received += data.length;
    try {
      let rest = data;
      if (!this.body) {
        rest = this.readHead(data);
        if (!this.body) return true;
      }
      this.readBody(rest);
    } catch (error) {
      this.reusable = false;
      this.failAll(error instanceof Error ? error : new Error(String(error)));
      this.socket.destroy();
      return false;
    }
    const body = this.body;
    if (!body) return true;
    body.signal();
    return !body.hasQueued();
  }

  private readHead(data: Buffer): Buffer {
    // A head that arrives whole (nearly always) is parsed where it lies, with the body bytes of the same
    // read (up to the whole 512 KiB buffer) left in place. Otherwise what a head may span is copied
    // out of the shared buffer, which the next read reuses.
    const earlier = this.headLength;
    const window = data.subarray(0, MAX_HEAD_BYTES + 4);
    const all = earlier === 0 ? window : Buffer.concat([...this.head, window]);
    const end = all.indexOf('\r\n\r\n');
    if (end < 0 || end > MAX_HEAD_BYTES) {
      if (end > MAX_HEAD_BYTES || earlier + window.length > MAX_HEAD_BYTES) throw protocolError('header section too large');
      this.head.push(Buffer.from(window));
      this.headLength += window.length;
      return Buffer.alloc(0);
    }
    const lines = all.subarray(0, end).toString('latin1').split('\r\n');
    const status = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0] ?? '');
    if (!status) throw protocolError(`status line ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon <= 0) throw protocolError('header line without a name');
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    const code = Number(status[1]);
    if (headers.connection?.toLowerCase().includes('close') || lines[0]?.startsWith('HTTP/1.0')) this.reusable = false;
    const length = headers['content-length'];
    if (this.method === 'HEAD' || code === 204 || code === 304 || (code >= 100 && code < 200)) {
      this.framing = { kind: 'length', left: 0 };
    } else if (headers['transfer-encoding'] !== undefined) {
      if (headers['transfer-encoding'].toLowerCase() !== 'chunked') throw protocolError(`Transfer-Encoding ${headers['transfer-encoding']}`);
      this.framing = { kind: 'chunked', state: 'size', left: 0, line: '' };
    } else if (length !== undefined) {
      if (!/^\d{1,16}$/.test(length)) throw protocolError(`Content-Length ${JSON.stringify(length)}`);
      this.framing = { kind: 'length', left: Number(length) };
    } else {
      this.framing = { kind: 'close' };
      this.reusable = false;
    }
    this.body = new FastBody(this);
    const onHead = this.onHead;
    this.onHead = undefined;
    this.onFail = undefined;
    onHead?.({ status: code, headers, body: this.body });
    // The rest of this read is body; it lives in the shared buffer like any later read.
    const restStart = end + 4 - earlier;
    return data.subarray(Math.max(0, restStart));
  }

  private readBody(data: Buffer): void {
    const body = this.body;
    const framing = this.framing;
    if (!body || !framing) return;
    if (framing.kind === 'close') {
      body.deliver(data);
      return;
    }
    if (framing.kind === 'length') {
      const take = Math.min(framing.left, data.length);
      body.deliver(data.subarray(0, take));
      framing.left -= take;
      if (take < data.length) this.reusable = false; // bytes past the end: never trust this connection again
      if (framing.left === 0) body.finish();
      return;
    }
    let at = 0;
    while (at < data.length) {
      if (framing.state === 'data') {
        const take = Math.min(framing.left, data.length - at);
        body.deliver(data.subarray(at, at + take));
        at += take;
        framing.left -= take;
        if (framing.left === 0) framing.state = 'data-end';
        continue;
      }
      // size lines, the CRLF after data, and trailers are read byte by byte (they are tiny)
      const byte = data[at] ?? 0;
      at += 1;
      if (byte !== 0x0a) {
        if (byte !== 0x0d) framing.line += String.fromCharCode(byte);
        if (framing.line.length > 4096) throw protocolError('chunk line too long');
        continue;
      }
      const line = framing.line;
      framing.line = '';
      if (framing.state === 'data-end') {
        if (line !== '') throw protocolError('missing CRLF after chunk');
        framing.state = 'size';
      } else if (framing.state === 'size') {
        const size = /^([0-9a-fA-F]{1,12})(;.*)?$/.exec(line.trim());
        if (!size) throw protocolError(`chunk size ${JSON.stringify(line.slice(0, 40))}`);
        framing.left = parseInt(size[1] ?? '0', 16);
        framing.state = framing.left === 0 ? 'trailer' : 'data';
      } else if (line === '') {
        if (at < data.length) this.reusable = false;
        body.finish();
        return;
      }
    }
  }
}

/** Keep-alive connections per origin, reused one request at a time. */
export class FastHttpPool {
  private readonly idle = new Map<string, Connection[]>();

  park(connection: Connection): void {
    const list = this.idle.get(connection.key) ?? [];
    list.push(connection);
    this.idle.set(connection.key, list);
    connection.socket.setTimeout(IDLE_TIMEOUT_MS);
    connection.socket.unref();
  }

  forget(connection: Connection): void {
    const list = this.idle.get(connection.key);
    const at = list?.indexOf(connection) ?? -1;
    if (list && at >= 0) list.splice(at, 1);
  }

  private take(key: string): Connection | undefined {
    const list = this.idle.get(key);
    while (list && list.length > 0) {
      const connection = list.pop();
      if (connection && !connection.socket.destroyed) {
        connection.socket.setTimeout(0);
        connection.socket.ref();
        return connection;
      }
    }
    return undefined;
  }

  /** Sends a GET for `url` (http: only) and resolves once the status line and headers are in. */
  async request(url: URL, headers: Record<string, string>, signal?: AbortSignal, method: 'GET' | 'HEAD' = 'GET'): Promise<FastResponse> {
    if (url.protocol !== 'http:') throw new Error('the fast path serves plain http only');
    for (const [name, value] of Object.entries(headers)) {
      if (/[\r\n\0]/.test(name) || /[\r\n\0]/.test(value)) throw new ModelfetchError('ERR_USAGE', `Header ${JSON.stringify(name)} contains a line break`);
    }
    const key = url.host;
    const all = { host: url.host, ...headers, connection: 'keep-alive' };
    const path = `${url.pathname}${url.search}`;
    for (let fresh = false; ; fresh = true) {
      const reused = fresh ? undefined : this.take(key);
      const connection = reused ?? new Connection(key, url.hostname.replace(/^\[|\]$/g, ''), Number(url.port || 80), this);
      const onAbort = (): void => connection.destroy();
      signal?.addEventListener('abort', onAbort, { once: true });
      if (signal?.aborted) connection.destroy();
      try {
        return await connection.send(method, path, all);
      } catch (error) {
        // A kept-alive socket the server had already closed: try once more on a new one.
        if (reused && connection.received === 0 && !signal?.aborted) continue;
        throw error;
      } finally {
        signal?.removeEventListener('abort', onAbort);
      }
    }
  }
}
