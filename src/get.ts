import { lstat, mkdir } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { commitTempFile } from './cache/atomic.js';
import { isSha256Hex } from './core/validate.js';
import { assertDiskSpace } from './core/disk-space.js';
import { fromSystemError, isModelfetchError, isSystemError, ModelfetchError } from './core/errors.js';
import { hashFile } from './core/hash/file-digest.js';
import { isOfflineEnv } from './core/hf-env.js';
import { discardBody, requestFollowingRedirects, statusError } from './transfer/http.js';
import { transferFile, type EngineOptions } from './transfer/index.js';
import { journalPathFor } from './transfer/journal.js';
import { resolveOptions } from './transfer/options.js';
import { removeIfPresent } from './transfer/temp-file.js';

/** Downloads one file from plain URLs (mirrors of each other) to a path, verified, resumable. */

export interface GetOptions extends EngineOptions {
  /** Mirrors of the same file. */
  urls: string[];
  /**
   * Target file; default: the last path segment of the first URL, in `cwd`. An existing folder, or
   * a path ending in `/` (created if missing), means that name inside the folder.
   */
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
  /** Skip the free-space check made once the size is known, before the first byte. */
  ignoreDiskSpace?: boolean;
  /** Keep a `text/html` answer (by default a web page where a file was asked for is refused). */
  acceptHtml?: boolean;
  /** No request at all (also HF_HUB_OFFLINE=1 in `env`): only a target already there with the expected SHA-256 succeeds. */
  offline?: boolean;
  env?: NodeJS.ProcessEnv;
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
  return (await hashFile(path, 'sha256')).hex;
}

/** Reads a checksum file: the first word of the first non-empty line must be 64 hex characters. */
export function parseChecksumText(text: string, url: string): string {
  const first = text.split(/\r?\n/).find((line) => line.trim() !== '')?.trim().split(/\s+/)[0]?.replace(/^\\/, '').toLowerCase() ?? '';
  if (!isSha256Hex(first)) {
    throw new ModelfetchError('ERR_INVALID_DIGEST', `${url} does not start with a SHA-256 (expected "hex" or "hex  filename")`, { url, hint: 'Check the --sha256-url (it must name a checksum file such as model.bin.sha256), or pass --sha256 HEX.' });
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

/** Where the file goes: `-o` as given, or the URL's file name inside `-o DIR/` (or an existing folder), or in `cwd`. */
async function outputPath(options: GetOptions): Promise<string> {
  const cwd = options.cwd ?? process.cwd();
  const output = options.output;
  if (output === undefined) return resolve(cwd, outputNameFrom(options.urls[0] ?? ''));
  const named = resolve(cwd, output);
  const info = await lstat(named).catch(() => undefined);
  if (info?.isDirectory() || output.endsWith('/') || output.endsWith('\\')) {
    // Like curl -O into a folder or wget -P: the folder is made when the path says it is one.
    if (!info) await mkdir(named, { recursive: true }).catch((error: unknown) => Promise.reject(fromSystemError(error)));
    return join(named, outputNameFrom(options.urls[0] ?? ''));
  }
  const folder = await lstat(dirname(named)).catch(() => undefined);
  if (!folder?.isDirectory()) {
    throw usage(`The folder ${dirname(named)} does not exist`, `Create it first, or end -o with / (-o ${dirname(output)}/) to have it created.`);
  }
  return named;
}

/** HF_HUB_OFFLINE: no request at all, so only a file already in place with the expected digest is a success. */
async function presentOffline(path: string, expected: string | undefined, url: string, began: number): Promise<GetResult> {
  const existing = await lstat(path).catch(() => undefined);
  if (existing?.isFile() && expected !== undefined && (await sha256OfFile(path)) === expected) {
    return { path, size: existing.size, sha256: expected, bytesFetched: 0, bytesResumed: 0, elapsedMs: performance.now() - began, connections: 0, alreadyPresent: true };
  }
  throw new ModelfetchError('ERR_OFFLINE', `Offline mode is on (HF_HUB_OFFLINE), so ${url} was not downloaded`, {
    url,
    hint: existing?.isFile() && expected === undefined ? `${path} is there, but without --sha256 it cannot be checked offline. Unset HF_HUB_OFFLINE to download.` : 'Unset HF_HUB_OFFLINE (or set it to 0) to download.',
  });
}

const HUB_BLOB_PATH = /^\/((?:datasets\/|spaces\/)?[^/]+\/[^/]+)\/blob\/(.+)$/;

/** A web page where a file was asked for (the Hub's /blob/ page, a folder listing, a login page) is refused before anything is written. */
function refuseWebPage(answer: { url: string; answeredUrl: string; contentType: string | undefined }): void {
  const type = answer.contentType?.split(';')[0]?.trim().toLowerCase();
  if (type !== 'text/html' && type !== 'application/xhtml+xml') return;
  const asked = new URL(answer.url);
  // The user asked for a page by name: that is what they get.
  if (/\.x?html?$/i.test(asked.pathname)) return;
  const blob = HUB_BLOB_PATH.exec(asked.pathname);
  let hint: string;
  if (blob) {
    asked.pathname = `/${blob[1] ?? ''}/resolve/${blob[2] ?? ''}`;
    hint = `That is the Hub's web page about the file; the file itself is at ${asked.href}`;
  } else if (asked.pathname.endsWith('/')) {
    hint = 'The URL names a folder, and its listing is a web page; add the file name to the URL.';
  } else {
    hint = 'Check the URL (a login page or an error page looks like this); pass --accept-html if the page is what you want.';
  }
  throw new ModelfetchError('ERR_BAD_RESPONSE', `${answer.answeredUrl} answered with a web page (${type}), not a file; nothing was saved`, { url: answer.url, hint });
}

/** What is left of the download after a failure, in words the user can act on. */
async function partialLeft(tempPath: string): Promise<'resumable' | 'none'> {
  const journal = await lstat(journalPathFor(tempPath)).catch(() => undefined);
  const partial = await lstat(tempPath).catch(() => undefined);
  return journal?.isFile() && partial?.isFile() ? 'resumable' : 'none';
}

/** get's own words for errors whose general hint names another command's flags or says less than get knows. */
async function explainForGet(error: ModelfetchError, path: string, tempPath: string): Promise<ModelfetchError> {
  const rewrap = (message: string, hint: string): ModelfetchError =>
    new ModelfetchError(error.code, message, { hint, cause: error, ...(error.url !== undefined && { url: error.url }), ...(error.status !== undefined && { status: error.status }), ...(error.expected !== undefined && { expected: error.expected }), ...(error.found !== undefined && { found: error.found }) });
  const left = isModelfetchError(error, 'ERR_ABORTED') || isModelfetchError(error, 'ERR_NO_SPACE') ? await partialLeft(tempPath) : 'none';
  switch (error.code) {
    case 'ERR_ABORTED':
      return left === 'resumable'
        ? rewrap('Interrupted; the finished part is kept', 'Run the same command again to resume where it stopped.')
        : rewrap('Interrupted; nothing was kept (the server does not support resuming, or nothing had arrived)', 'Running the same command again starts the download over.');
    case 'ERR_NO_SPACE':
      return rewrap(
        error.message,
        `Free space on the disk holding ${dirname(path)}, or pass -o with a folder on a larger disk, then run the same command again; ${left === 'resumable' ? 'the finished part is kept and resumed' : 'the partial file was removed, so it starts over'}.`,
      );
    case 'ERR_READ_ONLY':
    case 'ERR_PERMISSION':
      return rewrap(error.message, `Pass -o with a path in a folder you can write to (${dirname(path)} is not writable).`);
    case 'ERR_NOT_FOUND':
      return rewrap(error.message, 'Check the URL.');
    case 'ERR_AUTH':
    case 'ERR_GATED':
      return rewrap(error.message, "Pass the credentials the server needs with --header 'Name: value' (an Authorization or Cookie header, for example); they are sent only to that URL's origin.");
    default:
      return error;
  }
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
  const path = await outputPath(options);
  const expected = options.sha256?.toLowerCase();
  if (expected !== undefined && !isSha256Hex(expected)) throw usage(`--sha256 must be 64 hex characters, got ${JSON.stringify(options.sha256)}`);
  const offline = options.offline === true || isOfflineEnv(options.env ?? process.env);
  if (offline) return presentOffline(path, expected, options.urls[0] ?? '', began);
  const tempPath = `${path}${PARTIAL_SUFFIX}`;
  try {
    return await download(options, path, tempPath, expected, began);
  } catch (error) {
    if (options.signal?.aborted && !isModelfetchError(error, 'ERR_ABORTED')) throw await explainForGet(new ModelfetchError('ERR_ABORTED', 'Interrupted', { cause: error }), path, tempPath);
    if (isModelfetchError(error) || isSystemError(error)) throw await explainForGet(fromSystemError(error), path, tempPath);
    throw error;
  }
}

async function download(options: GetOptions, path: string, tempPath: string, expectedSha256: string | undefined, began: number): Promise<GetResult> {
  const expected = expectedSha256 ?? (options.sha256Url ? await fetchChecksum(options.sha256Url, options) : undefined);
  const existing = await lstat(path).catch(() => undefined);
  if (existing) {
    if (existing.isFile() && expected !== undefined && (await sha256OfFile(path)) === expected) {
      return { path, size: existing.size, sha256: expected, bytesFetched: 0, bytesResumed: 0, elapsedMs: performance.now() - began, connections: 0, alreadyPresent: true };
    }
    if (!options.force) {
      throw usage(`${path} already exists${expected !== undefined ? ' and does not match the expected SHA-256' : ''}`, 'Choose another -o FILE, remove it, or pass --force to replace it.');
    }
  }

  const result = await transferFile(
    {
      urls: options.urls,
      tempPath,
      identity: `get:${options.urls.join(' ')}`,
      ...(expected !== undefined && { digest: { algorithm: 'sha256' as const, hex: expected } }),
      ...(options.headers && { headers: options.headers }),
      beforeWrite: async (size) => {
        if (size !== undefined) await assertDiskSpace([{ path: tempPath, size }], { ...(options.ignoreDiskSpace && { ignore: true }), elsewhere: 'write it elsewhere with -o' });
      },
      ...(!options.acceptHtml && { acceptAnswer: refuseWebPage }),
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
