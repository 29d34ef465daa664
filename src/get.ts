import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { commitTempFile } from './cache/atomic.js';
import { isSha256Hex } from './cache/validate.js';
import { ModelfetchError } from './errors.js';
import { discardBody, requestFollowingRedirects, statusError } from './transfer/http.js';
import { transferFile, type EngineOptions } from './transfer/index.js';
import { resolveOptions } from './transfer/options.js';
import { removeIfPresent } from './transfer/temp-file.js';

/** Downloads one file from plain URLs (mirrors of each other) to a path, verified, resumable. */

export interface GetOptions extends EngineOptions {
  /** Mirrors of the same file. */
  urls: string[];
  /** Target file; default: the last path segment of the first URL, in `cwd`. */
  output?: string;
  cwd?: string;
  /** Expected SHA-256 (hex). */
  sha256?: string;
  /** URL of a checksum file (`hex` or `hex  filename`) to take the expected SHA-256 from. */
  sha256Url?: string;
  /** Request headers (credentials only go to the origins of `urls`, the checksum URL included only when it shares one). */
  headers?: Record<string, string>;
  /** Replace an existing target that does not match. */
  force?: boolean;
}

export interface GetResult {
  path: string;
  size: number;
  sha256: string;
  bytesFetched: number;
  bytesResumed: number;
  elapsedMs: number;
  /** Most connections open at once. */
  connections: number;
  /** The target was already there with the expected digest; nothing was downloaded. */
  alreadyPresent: boolean;
}

export const PARTIAL_SUFFIX = '.modelfetch-partial';

function usage(message: string, hint?: string): ModelfetchError {
  return new ModelfetchError('ERR_USAGE', message, hint === undefined ? {} : { hint });
}

function outputNameFrom(url: string): string {
  let name: string;
  try {
    name = decodeURIComponent(basename(new URL(url).pathname));
  } catch {
    name = '';
  }
  if (!name || name === '.' || name === '..' || name.includes('/') || name.includes('\\') || name.includes('\0')) {
    throw usage(`Cannot name the output file after ${url}`, 'Pass -o FILE.');
  }
  return name;
}

async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Reads a checksum file: the first word of the first non-empty line must be 64 hex characters. */
export function parseChecksumText(text: string, url: string): string {
  const first = text.split(/\r?\n/).find((line) => line.trim() !== '')?.trim().split(/\s+/)[0]?.replace(/^\\/, '').toLowerCase() ?? '';
  if (!isSha256Hex(first)) {
    throw new ModelfetchError('ERR_INVALID_DIGEST', `${url} does not start with a SHA-256 (expected "hex" or "hex  filename")`, { url });
  }
  return first;
}

async function fetchChecksum(url: string, options: GetOptions): Promise<string> {
  const opts = resolveOptions(options);
  // --header credentials were given for the download URLs: a checksum on another origin gets none of them.
  const origin = new URL(url).origin;
  const credentialed = options.urls.some((download) => new URL(download).origin === origin);
  const response = await requestFollowingRedirects(opts.transport, { url, credentialed, ...(options.headers && { headers: options.headers }), ...(options.signal && { signal: options.signal }) });
  if (response.status !== 200) {
    await response.body.dump().catch(() => undefined);
    throw statusError(response.status, response.url, response.headers, opts.clock.now());
  }
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of response.body as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > 64 * 1024) {
      discardBody(response);
      throw new ModelfetchError('ERR_BAD_RESPONSE', `${url} is too large to be a checksum file`, { url });
    }
    chunks.push(chunk);
  }
  return parseChecksumText(Buffer.concat(chunks).toString('utf8'), url);
}

export async function get(options: GetOptions): Promise<GetResult> {
  const began = performance.now();
  if (options.urls.length === 0) throw usage('No URL given');
  for (const url of [...options.urls, ...(options.sha256Url === undefined ? [] : [options.sha256Url])]) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(url);
    } catch {
      parsed = undefined;
    }
    if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) throw usage(`Not an http(s) URL: ${url}`);
  }
  const path = resolve(options.cwd ?? process.cwd(), options.output ?? outputNameFrom(options.urls[0] ?? ''));
  let expected = options.sha256?.toLowerCase();
  if (expected !== undefined && !isSha256Hex(expected)) throw usage(`--sha256 must be 64 hex characters, got ${JSON.stringify(options.sha256)}`);
  if (expected === undefined && options.sha256Url) expected = await fetchChecksum(options.sha256Url, options);

  const existing = await lstat(path).catch(() => undefined);
  if (existing) {
    if (existing.isFile() && expected !== undefined && (await sha256OfFile(path)) === expected) {
      return { path, size: existing.size, sha256: expected, bytesFetched: 0, bytesResumed: 0, elapsedMs: performance.now() - began, connections: 0, alreadyPresent: true };
    }
    if (!options.force) {
      throw usage(`${path} already exists${expected !== undefined ? ' and does not match the expected SHA-256' : ''}`, 'Choose another -o FILE, remove it, or pass --force to replace it.');
    }
  }

  const tempPath = `${path}${PARTIAL_SUFFIX}`;
  const result = await transferFile(
    {
      urls: options.urls,
      tempPath,
      identity: `get:${options.urls.join(' ')}`,
      ...(expected !== undefined && { digest: { algorithm: 'sha256' as const, hex: expected } }),
      ...(options.headers && { headers: options.headers }),
    },
    options,
  );
  if (options.force) await removeIfPresent(path);
  if ((await commitTempFile(tempPath, path)) === 'exists') {
    throw usage(`${path} appeared while downloading; the download was discarded`, 'Remove it or pass --force, then run again.');
  }
  return {
    path,
    size: result.size,
    sha256: result.digest.hex,
    bytesFetched: result.bytesFetched,
    bytesResumed: result.bytesResumed,
    elapsedMs: Math.round(performance.now() - began),
    connections: result.peakConnections ?? 0,
    alreadyPresent: false,
  };
}
