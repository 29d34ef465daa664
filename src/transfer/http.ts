import type { Dispatcher } from 'undici';
import { untilAborted } from '../core/abortable.js';
import { ModelfetchError } from '../core/errors.js';
import type { FastHttpPool } from './fast-http.js';
import { isCredentialHeader, redactUrl } from '../core/redact.js';
import { parseRetryAfter } from './retry-policy.js';
import { currentNetwork, describeConnectFailure, networkDispatcher, proxyFor } from './proxy.js';
import { requestKind, type RateLimits, type RequestKind } from './rate-limit.js';
import type { RateLimitWait } from './types.js';

/** Requests with redirects followed by hand, so credentials never leave the origin they were given for. */

export const MAX_REDIRECTS = 10;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

export type ResponseHeaders = Dispatcher.ResponseData['headers'];

/** What the engine needs of a response body: undici's, or the fast path's. */
export interface ResponseBody extends AsyncIterable<Buffer> {
  readonly destroyed: boolean;
  readonly readableEnded: boolean;
  destroy(): void;
  on(event: 'error', listener: () => void): unknown;
  dump(): Promise<unknown>;
}

export interface HttpResponse {
  status: number;
  headers: ResponseHeaders;
  body: ResponseBody;
  /** The URL that answered, after redirects. */
  url: string;
  /** Whether credential headers were still being sent to `url` (same origin as the first request). */
  credentialed: boolean;
}

/** Where requests go: a caller's dispatcher, the fast path for plain http, undici (loaded lazily) for the rest. */
export interface Transport {
  dispatcher: Dispatcher | undefined;
  fast: FastHttpPool | undefined;
  /** Each hop waits for room in its origin's rate-limit bucket (src/transfer/rate-limit.ts); told of each wait. */
  pacing?: Pacing;
}

/** The rate-limit buckets requests are counted against, and who is told when one waits for room. */
export interface Pacing {
  limits: RateLimits;
  onWait?: ((wait: RateLimitWait) => void) | undefined;
}

/**
 * One request's rate-limit steps, in the one order that keeps a bucket's count true: wait for room
 * (a wait given up rejects before anything is sent), send, then tell the bucket what came back (the
 * answer's `RateLimit` header) or that nothing did. A failed send rejects with `failure(error)`.
 * Without pacing, only the send.
 */
export async function sendPaced<T extends { headers: ResponseHeaders }>(pacing: Pacing | undefined, url: URL, kind: RequestKind, signal: AbortSignal | undefined, send: () => Promise<T>, failure: (error: unknown) => unknown = (error) => error): Promise<T> {
  const ticket = await pacing?.limits.acquire(url, kind, signal, pacing.onWait);
  let answer: T;
  try {
    answer = await send();
  } catch (error) {
    ticket?.failed();
    throw failure(error);
  }
  ticket?.answered(headerValue(answer.headers, 'ratelimit'));
  return answer;
}

/**
 * The fast path serves plain http only when no proxy applies to that URL (decided per hop, so a
 * redirect to a proxied host steps aside for undici); everything else goes through the caller's
 * dispatcher or the process-wide one of src/transfer/proxy.ts (proxy and CA bundle, loaded lazily).
 */
async function sendOnce(transport: Transport, url: URL, method: 'GET' | 'HEAD', headers: Record<string, string>, signal: AbortSignal | undefined): Promise<{ status: number; headers: ResponseHeaders; body: ResponseBody }> {
  if (transport.fast && url.protocol === 'http:' && !proxyFor(url, currentNetwork())) {
    const response = await transport.fast.request(url, headers, signal, method);
    return { status: response.status, headers: response.headers, body: response.body };
  }
  const dispatcher = transport.dispatcher ?? (await networkDispatcher());
  try {
    const pending = dispatcher.request({ origin: url.origin, path: `${url.pathname}${url.search}`, method, headers, ...(signal && { signal }) });
    const response = await abortable(pending, signal);
    return { status: response.statusCode, headers: response.headers, body: response.body };
  } catch (error) {
    throw (signal?.aborted ? undefined : describeConnectFailure(error, url.href)) ?? error;
  }
}

/**
 * undici does not give up a request whose connection is still being made (a TLS handshake the
 * server never answers) when its signal aborts: it waits for its connect timeout (30 s). Here the
 * abort wins at once, so a stall is a stall whatever the transport; a late answer is dropped.
 */
function abortable(pending: Promise<Dispatcher.ResponseData>, signal: AbortSignal | undefined): Promise<Dispatcher.ResponseData> {
  return untilAborted(pending, signal, (late) => discardBody(late));
}

export interface HttpRequest {
  url: string;
  method?: 'GET' | 'HEAD';
  /** Caller headers; credential headers go only to `credentialOrigin` (default: the origin of `url`). */
  headers?: Record<string, string>;
  credentialOrigin?: string;
  /** False when `url` is already past a cross-origin redirect (credentials stay dropped). Default true. */
  credentialed?: boolean;
  /** Engine headers (Range, If-Range…), sent everywhere and overriding caller headers. */
  extraHeaders?: Record<string, string>;
  signal?: AbortSignal;
  /** False: a redirect is handed back as it is (a Hub resolve answer that may carry Xet headers instead). */
  followRedirects?: boolean;
}

/**
 * Drops a response body we will not read to the end; its connection is closed rather than reused.
 * undici reports an unfinished destroyed body as an 'error' event, which nobody else listens to.
 */
export function discardBody(response: Pick<HttpResponse, 'body'> | undefined): void {
  if (!response || response.body.destroyed) return;
  response.body.on('error', () => undefined);
  response.body.destroy();
}

export function headerValue(headers: ResponseHeaders, name: string): string | undefined {
  const value = headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

/** The headers to send to `url`: caller headers minus credentials off-origin, then engine headers. */
export function headersFor(url: string, request: Pick<HttpRequest, 'headers' | 'credentialOrigin' | 'extraHeaders'>, credentialed: boolean): Record<string, string> {
  const out: Record<string, string> = {};
  const sameOrigin = credentialed && new URL(url).origin === (request.credentialOrigin ?? new URL(url).origin);
  for (const [name, value] of Object.entries(request.headers ?? {})) {
    const lower = name.toLowerCase();
    if (lower === 'host' || lower === 'range' || lower === 'if-range' || lower === 'accept-encoding' || lower === 'connection') continue;
    if (!sameOrigin && isCredentialHeader(lower)) continue;
    out[lower] = value;
  }
  out['accept-encoding'] = 'identity';
  for (const [name, value] of Object.entries(request.extraHeaders ?? {})) out[name.toLowerCase()] = value;
  return out;
}

function assertHttpUrl(url: URL, from: string): void {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ModelfetchError('ERR_REDIRECT', `Refusing to follow a redirect from ${from} to a ${url.protocol} URL`, {
      url: from,
      hint: 'Only http and https downloads are supported; check the URL or the server.',
    });
  }
}

/**
 * One request, with up to MAX_REDIRECTS redirects followed by hand (undici 7's `request` never
 * follows them itself). Credential headers are dropped for good once a redirect leaves the origin
 * they were given for (other host, port or scheme, https→http included). Loops and non-http(s)
 * targets are refused with ERR_REDIRECT.
 */
export async function requestFollowingRedirects(transport: Transport, request: HttpRequest): Promise<HttpResponse> {
  let url = new URL(request.url);
  assertHttpUrl(url, request.url);
  const credentialOrigin = request.credentialOrigin ?? url.origin;
  let credentialed = request.credentialed ?? true;
  let method = request.method ?? 'GET';
  const seen = new Set<string>();
  for (let hop = 0; ; hop += 1) {
    seen.add(url.href);
    credentialed &&= url.origin === credentialOrigin;
    const target = url;
    const send = (): ReturnType<typeof sendOnce> => sendOnce(transport, target, method, headersFor(target.href, { ...request, credentialOrigin }, credentialed), request.signal);
    // Name the URL that failed (after redirects, that is not the one asked for); aborts stay as they are.
    const failure = (error: unknown): unknown => (request.signal?.aborted || error instanceof ModelfetchError ? error : new ModelfetchError('ERR_NETWORK', `${target.href}: ${error instanceof Error ? error.message : String(error)}`, { url: target.href, cause: error }));
    const response = await sendPaced(transport.pacing, target, requestKind(target), request.signal, send, failure);
    const location = headerValue(response.headers, 'location');
    if (!REDIRECT_STATUSES.has(response.status) || location === undefined || request.followRedirects === false) {
      return { status: response.status, headers: response.headers, body: response.body, url: url.href, credentialed };
    }
    await response.body.dump().catch(() => undefined);
    if (hop + 1 > MAX_REDIRECTS) {
      throw new ModelfetchError('ERR_REDIRECT', `More than ${MAX_REDIRECTS} redirects starting at ${request.url}`, { url: request.url, hint: 'The server redirects in circles or too deep; check the URL.' });
    }
    let next: URL;
    try {
      next = new URL(location, url);
    } catch {
      throw new ModelfetchError('ERR_REDIRECT', `Malformed redirect target from ${url.href}`, { url: url.href });
    }
    assertHttpUrl(next, url.href);
    if (seen.has(next.href)) {
      throw new ModelfetchError('ERR_REDIRECT', `Redirect loop at ${redactUrl(next.href)}`, { url: request.url, hint: 'The server redirects in circles; check the URL.' });
    }
    if (response.status === 303) method = 'GET';
    url = next;
  }
}

const AUTH_HINT = 'Set HF_TOKEN (or pass --header "Authorization: Bearer …") with a token that can read this file.';

/** Maps a non-success status to an error with a stable code and a hint. Consumes nothing. */
export function statusError(status: number, url: string, headers: ResponseHeaders, now: number): ModelfetchError {
  const retryAfterMs = parseRetryAfter(headerValue(headers, 'retry-after'), now);
  const base = { url, status, ...(retryAfterMs !== undefined && { retryAfterMs }) };
  let error: ModelfetchError;
  if (status === 404 || status === 410) {
    error = new ModelfetchError('ERR_NOT_FOUND', `${url} answered ${status}`, { ...base, hint: 'Check the URL, repository, revision and file name.' });
  } else if (status === 401) {
    error = new ModelfetchError('ERR_AUTH', `${url} answered 401 Unauthorized`, { ...base, hint: AUTH_HINT });
  } else if (status === 403) {
    error = new ModelfetchError('ERR_GATED', `${url} answered 403 Forbidden`, { ...base, hint: `${AUTH_HINT} Gated models also need their terms accepted on the model page.` });
  } else if (status === 416) {
    error = new ModelfetchError('ERR_BAD_RANGE', `${url} answered 416 Range Not Satisfiable`, base);
  } else {
    error = new ModelfetchError('ERR_HTTP', `${url} answered ${status}`, { ...base, hint: status === 429 || status >= 500 ? 'The server is busy or failing; try again later.' : 'Check the URL.' });
  }
  return error;
}
