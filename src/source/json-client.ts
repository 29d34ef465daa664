import type { Dispatcher } from 'undici';
import { ModelfetchError } from '../core/errors.js';
import { redactUrl } from '../core/redact.js';
import { systemClock } from '../transfer/options.js';
import { headerValue, sendPaced } from '../transfer/http.js';
import { describeConnectFailure, dispatcherForDefaults } from '../transfer/proxy.js';
import { decideRetry, parseRetryAfter, UNREACHABLE_MAX_ATTEMPTS } from '../transfer/retry-policy.js';
import { rateLimitsFor } from '../transfer/rate-limit.js';
import type { Clock, RateLimitWait, RetryEvent } from '../transfer/types.js';

/**
 * The one client for the JSON APIs of the sources (the Hub's, ModelScope's): a GET that follows
 * redirects only within the endpoint's origin (the token never leaves it), through the configured
 * proxy and CA, with an optional per-request deadline and rate-limit pacing, a bounded body, and
 * retries decided by `transfer/retry-policy.ts` and waited on the injected clock. What an answer
 * means (which status is which error, what the body must hold) is the source's: see `JsonApi`.
 * undici is imported lazily, so a cache hit never loads it.
 */

export type HeaderValue = string | string[] | undefined;
export type ResponseHeaders = Record<string, HeaderValue>;

export interface JsonClientOptions {
  /** Normalised endpoint origin (+ optional path prefix), no trailing slash. */
  endpoint: string;
  dispatcher?: Dispatcher;
  signal?: AbortSignal;
  /** Told when a request waits for its rate-limit bucket's window to reset (requests are paced by the clock's `RateLimits`). */
  onRateLimitWait?: (wait: RateLimitWait) => void;
  /** How long one API request may take (HF_HUB_ETAG_TIMEOUT); none by default. */
  requestTimeoutMs?: number;
  /** Waits between attempts (and reads Retry-After dates) on this clock; the system's by default. */
  clock?: Clock;
  /** Source of the retry policy's jitter, uniform in [0, 1); Math.random by default. */
  random?: () => number;
  /** Told before each wait to retry a failed call (as the engine tells of downloads), so a long Retry-After is never a silent pause. */
  onRetry?: (event: RetryEvent) => void;
}

/** A final answer (not a redirect), before its body is read. */
export interface AnswerHead {
  status: number;
  headers: ResponseHeaders;
  /** The URL that answered, after redirects. */
  url: string;
  /** The answer's Retry-After in ms, for the error the source makes of it (the retry policy reads it there). */
  retryAfterMs?: number;
}

export interface Answer extends AnswerHead {
  /** The parsed body; undefined when it is not JSON. */
  body: unknown;
  /** Why the body did not parse, when it did not. */
  parseError?: unknown;
}

/** What one API says in its errors, and what its answers mean. */
export interface JsonApi {
  /** "the hub", "ModelScope": as in "Could not reach the hub at …". */
  serviceName: string;
  /** "hub", "ModelScope": as in "The hub API redirected …". */
  apiName: string;
  /** Where the user points modelfetch at the service, for hints: "HF_ENDPOINT". */
  endpointSetting: string;
  /** The hint of a network failure. */
  unreachableHint: string;
  /** The error for a redirect without a Location. */
  noLocation(url: string, status: number): ModelfetchError;
  /** The error for a body beyond MAX_JSON_BYTES; `declared` when its Content-Length said so before anything was read. */
  tooLarge(url: string, limit: number, declared?: number): ModelfetchError;
  /** The error for an answer whose body is not worth reading (the Hub: any status but 200); undefined to read it. */
  headError?(answer: AnswerHead): ModelfetchError | undefined;
  /** The error for an answer read whole, or undefined when it is a success. */
  answerError(answer: Answer): ModelfetchError | undefined;
}

export interface JsonResponse {
  body: unknown;
  /** The URL that answered, after redirects: where relative links (`Link: rel="next"`) start from. */
  url: string;
  headers: ResponseHeaders;
}

const MAX_REDIRECTS = 5;
/** The same budget as a download's first contact with a host, so get and pull give up on a dead address alike. */
const MAX_API_ATTEMPTS = UNREACHABLE_MAX_ATTEMPTS;
export const MAX_JSON_BYTES = 64 * 1024 * 1024;

/** GETs JSON from `url`; failures the retry policy retries (network, 429, 5xx) are tried again after the wait it decides. */
export async function getJson(api: JsonApi, url: string, headers: Record<string, string>, options: JsonClientOptions): Promise<JsonResponse> {
  const clock = options.clock ?? systemClock;
  const random = options.random ?? Math.random;
  for (let attempt = 1; ; attempt++) {
    try {
      return await getJsonOnce(api, url, headers, options, clock);
    } catch (error) {
      if (!(error instanceof ModelfetchError) || options.signal?.aborted) throw error;
      const decision = decideRetry(error, { attempt, maxAttempts: MAX_API_ATTEMPTS, random: random(), url, onRetry: options.onRetry });
      if (!decision.retry) throw error;
      try {
        await clock.sleep(decision.delayMs, options.signal);
      } catch (cause) {
        throw new ModelfetchError('ERR_ABORTED', 'Aborted', { cause });
      }
    }
  }
}

/** Loads undici (~80 ms) ahead of its first use: for long-lived callers such as the mirror. */
export function warmJsonClient(): void {
  void import('undici').catch(() => undefined);
}

/** An answer, whichever client carried it. */
interface RawAnswer {
  status: number;
  headers: ResponseHeaders;
  /** The body as text, refused beyond MAX_JSON_BYTES whatever the headers said. */
  text(): Promise<string>;
  discard(): Promise<void>;
}

async function readCapped(api: JsonApi, body: AsyncIterable<Uint8Array> | null, url: string): Promise<string> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body ?? []) {
    size += chunk.byteLength;
    if (size > MAX_JSON_BYTES) throw api.tooLarge(url, MAX_JSON_BYTES);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The caller's signal, plus a deadline for this one request when a request timeout is set. */
function requestSignal(options: JsonClientOptions): AbortSignal | undefined {
  if (options.requestTimeoutMs === undefined) return options.signal;
  const deadline = AbortSignal.timeout(options.requestTimeoutMs);
  return options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
}

/**
 * One GET, redirects not followed. Node's built-in fetch needs no module load (the undici package
 * takes ~80 ms to load, a quarter of a cache-hit pull); a caller's dispatcher, or a proxy or CA
 * bundle configured (src/transfer/proxy.ts), goes through undici.
 */
async function sendGet(api: JsonApi, url: string, headers: Record<string, string>, options: JsonClientOptions): Promise<RawAnswer> {
  const signal = requestSignal(options);
  const dispatcher = options.dispatcher ?? (await dispatcherForDefaults());
  if (dispatcher) {
    const { request } = await import('undici');
    const response = await request(url, { method: 'GET', headers, dispatcher, ...(signal && { signal }) });
    return { status: response.statusCode, headers: response.headers, text: () => readCapped(api, response.body, url), discard: () => response.body.dump() };
  }
  const response = await fetch(url, { headers, redirect: 'manual', ...(signal && { signal }) });
  return {
    status: response.status,
    headers: Object.fromEntries(response.headers),
    text: () => readCapped(api, response.body, url),
    discard: async () => void (await response.body?.cancel().catch(() => undefined)),
  };
}

/** The innermost reason of a network failure (fetch wraps it as "fetch failed"). */
function networkReason(cause: unknown): string {
  const inner = cause instanceof Error && cause.cause instanceof Error ? cause.cause : cause;
  return inner instanceof Error ? inner.message : String(inner);
}

/** One GET, following same-origin redirects (relative ones included) and refusing others, so the token never leaves the endpoint's origin. */
async function getJsonOnce(api: JsonApi, url: string, headers: Record<string, string>, options: JsonClientOptions, clock: Clock): Promise<JsonResponse> {
  const origin = new URL(options.endpoint).origin;
  let current = url;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    if (new URL(current).origin !== origin) {
      throw new ModelfetchError('ERR_REDIRECT', `The ${api.apiName} API redirected to another origin (${redactUrl(current)})`, { url: current, hint: `API calls only follow redirects within the endpoint; check ${api.endpointSetting}.` });
    }
    const asked = current;
    const pacing = { limits: rateLimitsFor(clock), onWait: options.onRateLimitWait };
    const response = await sendPaced(pacing, new URL(asked), 'api', options.signal, () => sendGet(api, asked, { accept: 'application/json', 'user-agent': 'modelfetch', ...headers }, options), (cause) => {
      if (options.signal?.aborted) return new ModelfetchError('ERR_ABORTED', 'Aborted', { cause });
      return describeConnectFailure(cause, asked) ?? new ModelfetchError('ERR_NETWORK', `Could not reach ${api.serviceName} at ${redactUrl(options.endpoint)}: ${networkReason(cause)}`, { url: asked, cause, hint: api.unreachableHint });
    });
    const { status } = response;
    if (status >= 300 && status < 400 && status !== 304) {
      await response.discard();
      const location = headerValue(response.headers, 'location');
      if (!location) throw api.noLocation(current, status);
      current = new URL(location, current).toString();
      continue;
    }
    const retryAfterMs = parseRetryAfter(headerValue(response.headers, 'retry-after'), clock.now());
    const head: AnswerHead = { status, headers: response.headers, url: current, ...(retryAfterMs !== undefined && { retryAfterMs }) };
    const refused = api.headError?.(head);
    if (refused) {
      await response.discard();
      throw refused;
    }
    const declared = Number(headerValue(response.headers, 'content-length') ?? 0);
    if (declared > MAX_JSON_BYTES) {
      await response.discard();
      throw api.tooLarge(current, MAX_JSON_BYTES, declared);
    }
    const answer = parsed(head, await response.text());
    const failure = api.answerError(answer);
    if (failure) throw failure;
    return { body: answer.body, url: current, headers: response.headers };
  }
  throw new ModelfetchError('ERR_REDIRECT', `Too many redirects from ${redactUrl(url)}`, { url });
}

function parsed(head: AnswerHead, text: string): Answer {
  try {
    return { ...head, body: JSON.parse(text) as unknown };
  } catch (parseError) {
    return { ...head, body: undefined, parseError };
  }
}
