import { createReadStream } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';

/** Range, If-Range, HEAD and 206/416 for one file on disk, streamed in large reads. */

/** Large reads keep syscalls and event-loop turns per byte low; 1 MiB is where throughput flattens. */
export const READ_CHUNK = 1 << 20;

export type ByteRange = { start: number; end: number };

/**
 * The single byte range a request asks for: a range, 'unsatisfiable' (416), or undefined for the
 * whole file (no header, another unit, several ranges or a malformed one — all answered with 200).
 */
export function parseRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | undefined {
  if (!header) return undefined;
  const match = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/.exec(header);
  if (!match) return undefined;
  const [, first, last] = match;
  if (first === '' && last === '') return undefined;
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (last !== '' && Number(last) < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return { start, end };
}

/** If-Range holding a strong ETag that matches keeps the range; anything else (a date, another tag) gets the whole file. */
export function rangeStillValid(ifRange: string | undefined, etag: string): boolean {
  if (!ifRange) return true;
  return ifRange.trim() === etag;
}

export interface SendFileOptions {
  file: string;
  size: number;
  /** Quoted strong ETag. */
  etag: string;
  headers: Record<string, string>;
  /** Called with each chunk's size as it is written. */
  onBytes?: (n: number) => void;
}

/** Answers GET/HEAD for a complete file. Resolves when the response is finished or the client went away. */
export async function sendFile(req: IncomingMessage, res: ServerResponse, options: SendFileOptions): Promise<void> {
  const { size, etag } = options;
  for (const [name, value] of Object.entries(options.headers)) res.setHeader(name, value);
  res.setHeader('ETag', etag);
  res.setHeader('Accept-Ranges', 'bytes');
  const header = typeof req.headers.range === 'string' && rangeStillValid(headerOf(req, 'if-range'), etag) ? req.headers.range : undefined;
  const range = parseRange(header, size);
  if (range === 'unsatisfiable') {
    res.writeHead(416, { 'Content-Range': `bytes */${size}`, 'Content-Length': '0' });
    res.end();
    return;
  }
  const { start, end } = range ?? { start: 0, end: size - 1 };
  const length = size === 0 ? 0 : end - start + 1;
  res.setHeader('Content-Length', String(length));
  if (range) {
    res.statusCode = 206;
    res.setHeader('Content-Range', `bytes ${start}-${end}/${size}`);
  } else {
    res.statusCode = 200;
  }
  if (req.method === 'HEAD' || length === 0) {
    res.end();
    return;
  }
  const stream = createReadStream(options.file, { start, end, highWaterMark: READ_CHUNK });
  if (options.onBytes) {
    const onBytes = options.onBytes;
    stream.on('data', (chunk) => onBytes(chunk.length));
  }
  // A client that disconnects ends the pipeline with an error; that is not the server's failure.
  await pipeline(stream, res).catch(() => {
    stream.destroy();
    if (!res.destroyed) res.destroy();
  });
}

export function headerOf(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
