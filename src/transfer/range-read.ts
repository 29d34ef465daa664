import { isModelfetchError, ModelfetchError } from '../core/errors.js';
import { discardBody, headerValue, requestFollowingRedirects, statusError, type HttpResponse } from './http.js';
import { resolveOptions, type EngineOptions, type ResolvedOptions } from './options.js';
import { assertIdentityEncoding, parseContentRange } from './probe.js';
import { decideRetry } from './retry-policy.js';
import { StallWatch } from './stall-watch.js';

/**
 * Small ranged reads into memory (a file's header, an index): the engine's redirects, credential
 * rule, per-host connection budget, retry policy and stall watch, without a temp file. A reader
 * made once shares one budget across every read, so a hundred shards never open a hundred
 * connections to one host.
 */

export interface RangeReadRequest {
  url: string;
  /** First byte, and the end (exclusive) of the range wanted; fewer bytes come back at the end of the file. */
  start: number;
  end: number;
  headers?: Record<string, string>;
  /** Origin the credential headers belong to (default: the origin of `url`). */
  credentialOrigin?: string;
  /** False when `url` is already past a cross-origin redirect. */
  credentialed?: boolean;
}

export interface RangeReadResult {
  bytes: Buffer;
  /** The file's full size, when the server said (Content-Range total, or Content-Length of a whole body). */
  total: number | undefined;
  /** The URL that answered after redirects, and whether credentials still go there: ask it directly next time. */
  url: string;
  credentialed: boolean;
}

export type RangeReader = (request: RangeReadRequest) => Promise<RangeReadResult>;

/** One reader over one budget (the options' `budget`, or one made here) and transport. */
export function createRangeReader(options: EngineOptions = {}): RangeReader {
  const opts = resolveOptions(options);
  return (request) => readRangeWithRetry(opts, request);
}

async function readRangeWithRetry(opts: ResolvedOptions, request: RangeReadRequest): Promise<RangeReadResult> {
  for (let attempt = 1; ; attempt += 1) {
    const release = await opts.budget.acquire(new URL(request.url).host, opts.signal);
    try {
      return await readRangeOnce(opts, request);
    } catch (caught) {
      if (opts.signal?.aborted) throw opts.signal.reason;
      const error = isModelfetchError(caught) ? caught : new ModelfetchError('ERR_NETWORK', `Reading ${request.url} failed: ${caught instanceof Error ? caught.message : String(caught)}`, { url: request.url, cause: caught });
      const decision = decideRetry(error, { attempt, maxAttempts: opts.maxAttempts, random: opts.random(), url: request.url });
      if (!decision.retry) throw error;
      release();
      await opts.clock.sleep(decision.delayMs, opts.signal);
    } finally {
      release();
    }
  }
}

async function readRangeOnce(opts: ResolvedOptions, request: RangeReadRequest): Promise<RangeReadResult> {
  const want = request.end - request.start;
  if (!Number.isSafeInteger(request.start) || request.start < 0 || !(want > 0)) throw new RangeError(`invalid range ${request.start}-${request.end}`);
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(opts.signal?.reason);
  if (opts.signal?.aborted) onAbort();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const watch = new StallWatch(opts.stallTimeoutMs, () => controller.abort(new Error('stall')));
  let response: HttpResponse | undefined;
  try {
    response = await requestFollowingRedirects(opts.transport, {
      url: request.url,
      method: 'GET',
      ...(request.headers && { headers: request.headers }),
      ...(request.credentialOrigin && { credentialOrigin: request.credentialOrigin }),
      ...(request.credentialed !== undefined && { credentialed: request.credentialed }),
      extraHeaders: { range: `bytes=${request.start}-${request.end - 1}` },
      signal: controller.signal,
    });
    watch.touch();
    const { status, headers, url } = response;
    let skip = 0;
    let total: number | undefined;
    let expected = want;
    if (status === 206) {
      assertIdentityEncoding(headers, url);
      const raw = headerValue(headers, 'content-range');
      const range = parseContentRange(raw);
      if (!range || range.start !== request.start || range.end === undefined || range.end > request.end - 1) {
        throw new ModelfetchError('ERR_BAD_RANGE', `${url} answered bytes=${request.start}-${request.end - 1} with Content-Range ${JSON.stringify(raw ?? null)}`, { url });
      }
      total = range.total;
      expected = range.end - range.start + 1;
    } else if (status === 200) {
      // Range ignored: the whole body comes; take the bytes wanted and drop the connection.
      assertIdentityEncoding(headers, url);
      const length = headerValue(headers, 'content-length');
      total = length !== undefined && /^\d+$/.test(length.trim()) ? Number(length) : undefined;
      skip = request.start;
      if (total !== undefined) expected = Math.max(0, Math.min(want, total - request.start));
    } else if (status === 416) {
      const range = parseContentRange(headerValue(headers, 'content-range'));
      await response.body.dump().catch(() => undefined);
      return { bytes: Buffer.alloc(0), total: range?.total, url, credentialed: response.credentialed };
    } else {
      throw statusError(status, url, headers, opts.clock.now());
    }
    const chunks: Buffer[] = [];
    let got = 0;
    for await (const chunk of response.body) {
      watch.touch();
      let piece = chunk;
      if (skip > 0) {
        const dropped = Math.min(skip, piece.length);
        skip -= dropped;
        piece = piece.subarray(dropped);
      }
      const take = piece.subarray(0, expected - got);
      if (take.length) chunks.push(Buffer.from(take));
      got += take.length;
      // A 206 body is read to its end so the connection can be reused; a whole body is cut off.
      if (got >= expected && (status === 200 || take.length < piece.length)) break;
    }
    if (got < expected && (status === 206 || total !== undefined)) {
      throw new ModelfetchError('ERR_NETWORK', `${url} closed the connection after ${got} of ${expected} bytes`, { url, expected, found: got });
    }
    return { bytes: Buffer.concat(chunks, got), total, url, credentialed: response.credentialed };
  } catch (error) {
    if (watch.stalled) throw new ModelfetchError('ERR_STALL', `No data from ${request.url} for ${opts.stallTimeoutMs} ms`, { url: request.url, cause: error });
    throw error;
  } finally {
    watch.stop();
    opts.signal?.removeEventListener('abort', onAbort);
    if (response && !response.body.readableEnded) discardBody(response);
  }
}
