import { ModelfetchError } from '../core/errors.js';
import { strongEtag } from '../core/validate.js';
import { StallWatch } from './stall-watch.js';
import { discardBody, headerValue, requestFollowingRedirects, statusError, type HttpResponse, type ResponseHeaders, type Transport } from './http.js';

/** What one request tells us about a file before we cut it into segments. */
export interface ProbeResult {
  /** Total size, when the server said (Content-Range total, or Content-Length of a full 200). */
  size: number | undefined;
  /** Strong ETag, unquoted. */
  etag: string | undefined;
  rangeSupported: boolean;
  /** The URL that answered after redirects; segment requests go there. */
  url: string;
  /** Whether `url` is still the origin the credentials were given for. */
  credentialed: boolean;
  /** The answer's Content-Type, as sent (undefined when absent). */
  contentType?: string;
  /** A server that ignored Range answered 200 with the whole body: this is that body, to be used as the one stream. */
  stream?: HttpResponse;
}

export interface ProbeRequest {
  url: string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  now: number;
  /** Give up (ERR_STALL, retried) when no answer came for this long. */
  stallTimeoutMs: number;
  /**
   * Ask with HEAD first (the caller knows the size already, e.g. from a hub listing). A server's
   * `Accept-Ranges` then decides before any GET: a mirror that has not verified a file yet says
   * `none`, so the file is streamed instead of waiting for Range answers it may only give once the
   * whole file is verified. A HEAD that is refused or says nothing about ranges falls back to the GET probe.
   */
  headFirst?: boolean;
}

/** Refuses any Content-Encoding but identity: the bytes on disk must be the bytes the digest names. */
export function assertIdentityEncoding(headers: ResponseHeaders, url: string): void {
  const encoding = headerValue(headers, 'content-encoding')?.trim().toLowerCase();
  if (encoding && encoding !== 'identity') {
    throw new ModelfetchError('ERR_BAD_RESPONSE', `${url} sent Content-Encoding: ${encoding} although only identity was accepted`, {
      url,
      hint: 'The server or a proxy compresses downloads; fetch from a server that honours Accept-Encoding: identity.',
    });
  }
}

/** Parses a Content-Range: `bytes a-b/total` (total may be a star) or the unsatisfied form with a star range. */
export function parseContentRange(header: string | undefined): { start?: number; end?: number; total?: number } | undefined {
  if (!header) return undefined;
  const full = /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/.exec(header.trim());
  if (full) {
    const [, a, b, t] = full;
    return { start: Number(a), end: Number(b), ...(t !== '*' && { total: Number(t) }) };
  }
  const unsatisfied = /^bytes\s+\*\/(\d+)$/.exec(header.trim());
  if (unsatisfied) return { total: Number(unsatisfied[1]) };
  return undefined;
}

function contentLength(headers: ResponseHeaders): number | undefined {
  const value = headerValue(headers, 'content-length');
  return value !== undefined && /^\d+$/.test(value.trim()) ? Number(value) : undefined;
}

/**
 * Learns size, strong ETag and Range support with `Range: bytes=0-0`, falling back to HEAD for
 * servers that refuse that GET. A 200 answer (Range ignored) is handed back as the stream to use.
 */
export async function probe(transport: Transport, request: ProbeRequest): Promise<ProbeResult> {
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(request.signal?.reason);
  if (request.signal?.aborted) onAbort();
  request.signal?.addEventListener('abort', onAbort, { once: true });
  const watch = new StallWatch(request.stallTimeoutMs, () => controller.abort(new Error('stall')));
  try {
    return await probeOnce(transport, { ...request, signal: controller.signal });
  } catch (error) {
    if (watch.stalled) throw new ModelfetchError('ERR_STALL', `No answer from ${request.url} for ${request.stallTimeoutMs} ms`, { url: request.url, cause: error });
    throw error;
  } finally {
    watch.stop();
    request.signal?.removeEventListener('abort', onAbort);
  }
}

async function probeOnce(transport: Transport, request: ProbeRequest): Promise<ProbeResult> {
  if (request.headFirst) {
    const answered = await probeWithHead(transport, request, 'lenient');
    if (answered) return answered;
  }
  const response = await requestFollowingRedirects(transport, {
    url: request.url,
    method: 'GET',
    ...(request.headers && { headers: request.headers }),
    extraHeaders: { range: 'bytes=0-0' },
    ...(request.signal && { signal: request.signal }),
  });
  const contentType = headerValue(response.headers, 'content-type');
  const base = { etag: strongEtag(headerValue(response.headers, 'etag')), url: response.url, credentialed: response.credentialed, ...(contentType !== undefined && { contentType }) };
  if (response.status === 206) {
    await response.body.dump().catch(() => undefined);
    assertIdentityEncoding(response.headers, response.url);
    const range = parseContentRange(headerValue(response.headers, 'content-range'));
    if (!range || range.start !== 0 || range.end !== 0) {
      throw new ModelfetchError('ERR_BAD_RANGE', `${response.url} answered bytes=0-0 with Content-Range ${JSON.stringify(headerValue(response.headers, 'content-range') ?? null)}`, { url: response.url });
    }
    return { ...base, size: range.total, rangeSupported: true };
  }
  if (response.status === 416) {
    await response.body.dump().catch(() => undefined);
    const range = parseContentRange(headerValue(response.headers, 'content-range'));
    if (range?.total === 0) return { ...base, size: 0, rangeSupported: true };
    throw statusError(416, response.url, response.headers, request.now);
  }
  if (response.status === 200) {
    try {
      assertIdentityEncoding(response.headers, response.url);
    } catch (error) {
      discardBody(response);
      throw error;
    }
    return { ...base, size: contentLength(response.headers), rangeSupported: false, stream: response };
  }
  await response.body.dump().catch(() => undefined);
  if (response.status === 405 || response.status === 501 || response.status === 400) {
    const answered = await probeWithHead(transport, request, 'strict');
    if (answered) return answered;
  }
  throw statusError(response.status, response.url, response.headers, request.now);
}

/** HEAD answers that a GET would only repeat (5xx too): anything else, e.g. a 403 from a URL signed for GET, asks again with GET. */
const HEAD_IS_DECISIVE: ReadonlySet<number> = new Set([200, 401, 404, 410, 429]);

/**
 * A HEAD probe. 'strict' (the GET probe was refused): any answer but 200 is the error, and a
 * missing Accept-Ranges means no ranges. 'lenient' (asked first): undefined whenever the answer
 * does not settle the question, so the GET probe asks — a signed CDN URL may be valid for GET only.
 */
async function probeWithHead(transport: Transport, request: ProbeRequest, mode: 'strict' | 'lenient'): Promise<ProbeResult | undefined> {
  const response = await requestFollowingRedirects(transport, {
    url: request.url,
    method: 'HEAD',
    ...(request.headers && { headers: request.headers }),
    ...(request.signal && { signal: request.signal }),
  });
  await response.body.dump().catch(() => undefined);
  const ranges = headerValue(response.headers, 'accept-ranges')?.trim().toLowerCase();
  if (mode === 'lenient' && !HEAD_IS_DECISIVE.has(response.status) && response.status < 500) return undefined;
  if (response.status !== 200) throw statusError(response.status, response.url, response.headers, request.now);
  if (mode === 'lenient' && ranges !== 'bytes' && ranges !== 'none') return undefined;
  assertIdentityEncoding(response.headers, response.url);
  const contentType = headerValue(response.headers, 'content-type');
  return {
    ...(contentType !== undefined && { contentType }),
    size: contentLength(response.headers),
    etag: strongEtag(headerValue(response.headers, 'etag')),
    rangeSupported: ranges === 'bytes',
    url: response.url,
    credentialed: response.credentialed,
  };
}
