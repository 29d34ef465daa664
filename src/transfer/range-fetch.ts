import type { FileHandle } from 'node:fs/promises';
import { isModelfetchError, ModelfetchError } from '../core/errors.js';
import { strongEtag } from '../core/validate.js';
import { discardBody, headerValue, requestFollowingRedirects, statusError, type HttpResponse, type Transport } from './http.js';
import { assertIdentityEncoding, parseContentRange } from './probe.js';
import { SegmentWriter } from './segment-writer.js';
import type { Segment } from './segment-table.js';
import { StallWatch } from './stall-watch.js';

/** Where a segment's bytes come from: one mirror, after its redirects were followed by the probe. */
export interface FetchTarget {
  url: string;
  /** Origin the caller's credential headers belong to. */
  credentialOrigin: string;
  /** Whether `url` is still that origin (credentials are sent). */
  credentialed: boolean;
  headers: Record<string, string> | undefined;
  /** Strong ETag this mirror reported, sent as If-Range and checked on every answer. */
  etag: string | undefined;
}

export interface FetchContext {
  transport: Transport;
  file: FileHandle;
  /** Total size, or undefined for a stream of unknown length (whole-body mode only). */
  size: number | undefined;
  /** Range requests (true) or one plain GET of the whole body (false: the server ignores Range). */
  ranged: boolean;
  stallTimeoutMs: number;
  signal: AbortSignal;
  now: () => number;
  /** Network body bytes received (for bytesFetched and speed). */
  onReceived: (n: number) => void;
  /** After a write completed for `segment`. */
  onWritten: (segment: Segment) => void;
  /** A response started (+1) or ended (-1). */
  onConnection: (delta: 1 | -1) => void;
  /** Live writers, so a checkpoint can flush partly filled buffers. */
  writers: Set<SegmentWriter>;
}

function shortBody(url: string, reached: number, expected: number): ModelfetchError {
  return new ModelfetchError('ERR_NETWORK', `${url} closed the connection at byte ${reached}, before byte ${expected}`, { url, expected, found: reached });
}

/**
 * A whole body of another length is another file (or an error page): ERR_SIZE, not retried. A 206
 * naming another total is a bad range answer: ERR_BAD_RANGE, retried like a wrong start or end.
 */
function checkTotal(total: number | string | undefined, size: number | undefined, url: string, code: 'ERR_SIZE' | 'ERR_BAD_RANGE'): void {
  if (total === undefined || size === undefined || Number(total) === size) return;
  throw new ModelfetchError(code, `${url} serves ${total} bytes, expected ${size}`, { url, expected: size, found: Number(total), hint: 'The file changed upstream, or the server answered with an error page; check the URL.' });
}

function checkRangeResponse(response: HttpResponse, segment: Segment, requestedEnd: number, ctx: FetchContext, target: FetchTarget): void {
  const url = response.url;
  const whole = segment.pos === 0 && requestedEnd === ctx.size;
  if (response.status === 200 && whole && !target.etag) {
    // The whole file was asked for and came as a plain 200 (Range ignored): the same bytes.
    assertIdentityEncoding(response.headers, url);
    checkTotal(headerValue(response.headers, 'content-length'), ctx.size, url, 'ERR_SIZE');
    return;
  }
  if (response.status === 200) {
    // A full body where a range was due: after If-Range that means the file changed.
    throw new ModelfetchError(target.etag ? 'ERR_ETAG_CHANGED' : 'ERR_RANGE_IGNORED', `${url} answered a range request with the whole file`, { url });
  }
  if (response.status !== 206) throw statusError(response.status, url, response.headers, ctx.now());
  assertIdentityEncoding(response.headers, url);
  const etag = strongEtag(headerValue(response.headers, 'etag'));
  if (target.etag && etag && etag !== target.etag) {
    throw new ModelfetchError('ERR_ETAG_CHANGED', `${url} now serves ETag "${etag}" instead of "${target.etag}"`, { url, expected: target.etag, found: etag });
  }
  const raw = headerValue(response.headers, 'content-range');
  const range = parseContentRange(raw);
  checkTotal(range?.total, ctx.size, url, 'ERR_BAD_RANGE');
  if (!range || range.start !== segment.pos || range.end !== requestedEnd - 1 || (range.total !== undefined && range.total !== ctx.size)) {
    throw new ModelfetchError('ERR_BAD_RANGE', `${url} answered bytes=${segment.pos}-${requestedEnd - 1} with Content-Range ${JSON.stringify(raw ?? null)}`, {
      url,
      expected: `bytes ${segment.pos}-${requestedEnd - 1}/${ctx.size}`,
      found: raw ?? 'none',
    });
  }
  const length = headerValue(response.headers, 'content-length');
  if (length !== undefined && Number(length) !== requestedEnd - segment.pos) {
    throw new ModelfetchError('ERR_BAD_RANGE', `${url} sent Content-Length ${length} for a ${requestedEnd - segment.pos}-byte range`, { url });
  }
}

/**
 * Fetches the rest of `segment` from `target` in one response and writes it at its offsets.
 * Reads never go past `segment.end` (which may shrink while running when the segment is split):
 * extra bytes are cut off and the response dropped, so an endless body never grows the file.
 * Throws a ModelfetchError on any failure; bytes received before it are written and kept.
 */
export async function fetchSegment(ctx: FetchContext, segment: Segment, target: FetchTarget, reuse?: HttpResponse): Promise<void> {
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(ctx.signal.reason);
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  const watch = new StallWatch(ctx.stallTimeoutMs, () => controller.abort(new Error('stall')));
  const writer = new SegmentWriter(ctx.file, segment.pos, (end) => {
    segment.written = end;
    ctx.onWritten(segment);
  });
  ctx.writers.add(writer);
  let response: HttpResponse | undefined = reuse;
  let counted = false;
  const requestedEnd = segment.end;
  try {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    if (!response) {
      const extraHeaders: Record<string, string> = {};
      if (ctx.ranged) {
        extraHeaders.range = `bytes=${segment.pos}-${requestedEnd - 1}`;
        if (target.etag) extraHeaders['if-range'] = `"${target.etag}"`;
      }
      response = await requestFollowingRedirects(ctx.transport, {
        url: target.url,
        method: 'GET',
        ...(target.headers && { headers: target.headers }),
        credentialOrigin: target.credentialOrigin,
        credentialed: target.credentialed,
        extraHeaders,
        signal: controller.signal,
      });
    }
    const started = response;
    controller.signal.addEventListener('abort', () => discardBody(started), { once: true });
    ctx.onConnection(1);
    counted = true;
    watch.touch();
    if (ctx.ranged) {
      checkRangeResponse(response, segment, requestedEnd, ctx, target);
      // Learn the ETag when no probe did (small files), so retries send If-Range.
      target.etag ??= response.status === 206 ? strongEtag(headerValue(response.headers, 'etag')) : undefined;
    } else {
      if (response.status !== 200) throw statusError(response.status, response.url, response.headers, ctx.now());
      assertIdentityEncoding(response.headers, response.url);
    }
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      watch.touch();
      const room = segment.end - segment.pos;
      const take = chunk.length <= room ? chunk : chunk.subarray(0, room);
      ctx.onReceived(take.length);
      segment.pos += take.length;
      await writer.push(take);
      if (segment.pos >= segment.end) break;
    }
    await writer.flush();
    if (segment.end === Infinity) segment.end = segment.pos; // a body of unknown length ended cleanly
    if (segment.pos < segment.end) throw shortBody(response.url, segment.pos, segment.end);
  } catch (error) {
    // Keep what did arrive; a failing write (disk full) outranks the network error.
    const writeError: unknown = await writer.flush().then(
      () => undefined,
      (e: unknown) => e,
    );
    if (writeError !== undefined) throw writeError;
    if (ctx.signal.aborted) throw ctx.signal.reason;
    if (watch.stalled) {
      throw new ModelfetchError('ERR_STALL', `No data from ${target.url} for ${ctx.stallTimeoutMs} ms`, { url: target.url, cause: error });
    }
    if (isModelfetchError(error)) throw error;
    const code = (error as { code?: string } | undefined)?.code;
    const detail = error instanceof Error ? error.message : String(error);
    throw new ModelfetchError('ERR_NETWORK', `Connection to ${target.url} failed at byte ${segment.pos}: ${detail}${code ? ` (${code})` : ''}`, { url: target.url, cause: error });
  } finally {
    watch.stop();
    ctx.signal.removeEventListener('abort', onAbort);
    if (counted) ctx.onConnection(-1);
    // Dropping an unfinished body closes its connection; a finished one goes back to the pool.
    if (response && !response.body.readableEnded) discardBody(response);
    ctx.writers.delete(writer);
    writer.dispose();
  }
}
