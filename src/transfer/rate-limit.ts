import { untilAborted } from '../core/abortable.js';
import type { Clock, RateLimitWait } from './types.js';

/**
 * Paces requests by the rate-limit headers servers send (IETF draft
 * draft-ietf-httpapi-ratelimit-headers, as the Hugging Face Hub spells it):
 *   RateLimit: "api";r=489;t=189                       (r requests left in the window, t seconds until it resets)
 *   RateLimit-Policy: "fixed window";"api";q=500;w=300 (q requests per w seconds)
 * The Hub counts its API ("api") and its `/resolve/` URLs ("resolvers") in separate buckets. Here a
 * bucket is kept per origin and per name, learned from the answers: a request waits for its
 * bucket's window to reset rather than being answered 429.
 *
 * Many requests go out at once (16 connections), so each one is counted against its bucket before
 * it leaves, and an answer's `r` is read as "at most this many left, minus what is still in
 * flight". Until an origin has said which bucket its API or resolve requests count against, they go
 * one at a time: the first answer tells. Other requests (a CDN, a CAS, any URL) are never held
 * before a header shows up, so a stuck first connection there holds nothing else. One `RateLimits` is shared per clock (`rateLimitsFor`), so
 * every pull of a process, the mirror's pull-throughs and its API calls included, spends one budget.
 */

/** Which requests count together until an answer says which bucket they count against. */
export type RequestKind = 'api' | 'resolve' | 'other';

/** A request let through: tell it what came back, so the bucket is known and kept up to date. */
export interface RateLimitTicket {
  /** The answer's `RateLimit` header (undefined when it had none). */
  answered(rateLimitHeader: string | undefined): void;
  /** No answer came (network failure, abort). */
  failed(): void;
}

/** After the announced reset, this much longer: `t` is whole seconds, and a request a moment early would be refused. */
export const RESET_MARGIN_MS = 1000;

/** `"api";r=12;t=34` → bucket, remaining and seconds to reset; undefined when it is not that shape. */
export function parseRateLimit(value: string | undefined): { bucket: string; remaining: number; resetSeconds: number } | undefined {
  if (!value) return undefined;
  const match = /^\s*"([^"]+)"\s*;(.*)$/.exec(value);
  if (!match) return undefined;
  const params = new Map((match[2] ?? '').split(';').map((p) => p.split('=').map((s) => s.trim()) as [string, string]));
  const remaining = Number(params.get('r'));
  const resetSeconds = Number(params.get('t'));
  if (!Number.isInteger(remaining) || remaining < 0 || !Number.isFinite(resetSeconds) || resetSeconds < 0) return undefined;
  return { bucket: match[1] ?? '', remaining, resetSeconds };
}

/** A Hub URL's kind by its path: `/api/…` or `…/resolve/…`; anything else (a CDN, a CAS) is `other`. */
export function requestKind(url: URL): RequestKind {
  if (url.pathname.startsWith('/api/')) return 'api';
  return url.pathname.includes('/resolve/') ? 'resolve' : 'other';
}

/** A wait shared by every request held by one spent bucket: one timer, one notice per listener. */
interface SharedWait {
  done: Promise<void>;
  stop: AbortController;
  waiters: number;
  told: Set<(wait: RateLimitWait) => void>;
}

interface Lane {
  /** The bucket the last answer named; undefined once an answer came without a header (not limited). */
  bucket?: string;
  learned: boolean;
  /** The one request out while the lane is not learned. */
  probe?: Promise<void>;
}

interface Bucket {
  remaining: number;
  resetAt: number;
}

export class RateLimits {
  private readonly lanes = new Map<string, Lane>();
  private readonly buckets = new Map<string, Bucket>();
  /** Requests counted against a bucket whose answer has not come yet. */
  private readonly inFlight = new Map<string, number>();
  private readonly waits = new Map<string, SharedWait>();

  constructor(private readonly clock: Clock) {}

  /** Waits until a request to `url` may go (its bucket has room), counts it, and returns where to report its answer. */
  async acquire(url: URL, kind: RequestKind, signal?: AbortSignal, onWait?: (wait: RateLimitWait) => void): Promise<RateLimitTicket> {
    const { origin } = url;
    const laneKey = `${origin} ${kind}`;
    for (;;) {
      let lane = this.lanes.get(laneKey);
      if (!lane) this.lanes.set(laneKey, (lane = { learned: false }));
      if (!lane.learned && kind === 'other') return this.ticket(origin, lane, undefined, undefined);
      if (!lane.learned) {
        if (lane.probe) {
          await untilAborted(lane.probe, signal);
          continue;
        }
        let settle = (): void => undefined;
        lane.probe = new Promise<void>((resolve) => (settle = resolve));
        return this.ticket(origin, lane, undefined, settle);
      }
      if (lane.bucket === undefined) return this.ticket(origin, lane, undefined, undefined);
      const key = `${origin} ${lane.bucket}`;
      const bucket = this.buckets.get(key);
      if (!bucket || this.clock.now() >= bucket.resetAt) {
        // The window is over: how much the next one holds is unknown until an answer says.
        this.buckets.delete(key);
        lane.learned = false;
        continue;
      }
      if (bucket.remaining > 0) {
        bucket.remaining -= 1;
        this.inFlight.set(key, (this.inFlight.get(key) ?? 0) + 1);
        return this.ticket(origin, lane, key, undefined);
      }
      await this.waitForReset(origin, lane.bucket, bucket, signal, onWait);
    }
  }

  /** How long a request of `kind` to `origin` would wait now (0 when its bucket has room or is not known). */
  delayFor(origin: string, kind: RequestKind): number {
    const lane = this.lanes.get(`${origin} ${kind}`);
    const bucket = lane?.bucket === undefined ? undefined : this.buckets.get(`${origin} ${lane.bucket}`);
    if (!bucket || bucket.remaining > 0) return 0;
    return Math.max(0, bucket.resetAt - this.clock.now());
  }

  private ticket(origin: string, lane: Lane, countedIn: string | undefined, settleProbe: (() => void) | undefined): RateLimitTicket {
    let open = true;
    const close = (): void => {
      open = false;
      if (countedIn !== undefined) this.inFlight.set(countedIn, (this.inFlight.get(countedIn) ?? 1) - 1);
      if (settleProbe) {
        lane.probe = undefined;
        settleProbe();
      }
    };
    return {
      answered: (header) => {
        if (!open) return;
        const parsed = parseRateLimit(header);
        if (parsed) this.observe(origin, lane, parsed, countedIn);
        else if (settleProbe) lane.learned = true; // the first answer had no header: this kind of request is not limited
        close();
      },
      failed: () => {
        if (open) close();
      },
    };
  }

  private observe(origin: string, lane: Lane, parsed: { bucket: string; remaining: number; resetSeconds: number }, countedIn: string | undefined): void {
    lane.bucket = parsed.bucket;
    lane.learned = true;
    const key = `${origin} ${parsed.bucket}`;
    const now = this.clock.now();
    const resetAt = now + parsed.resetSeconds * 1000 + RESET_MARGIN_MS;
    // Requests still out may or may not be in the server's count: assume they are not.
    const othersOut = (this.inFlight.get(key) ?? 0) - (countedIn === key ? 1 : 0);
    const left = Math.max(0, parsed.remaining - othersOut);
    const known = this.buckets.get(key);
    if (!known || now >= known.resetAt) this.buckets.set(key, { remaining: left, resetAt });
    else this.buckets.set(key, { remaining: Math.min(known.remaining, left), resetAt: Math.max(known.resetAt, resetAt) });
  }

  private async waitForReset(origin: string, bucketName: string, bucket: Bucket, signal: AbortSignal | undefined, onWait: ((wait: RateLimitWait) => void) | undefined): Promise<void> {
    const key = `${origin} ${bucketName}`;
    let wait = this.waits.get(key);
    // A clock may move as the sleep starts (a test's does): the wait is measured before.
    const delay = Math.max(0, bucket.resetAt - this.clock.now());
    if (!wait) {
      const stop = new AbortController();
      const created: SharedWait = { done: this.clock.sleep(delay, stop.signal).catch(() => undefined), stop, waiters: 0, told: new Set() };
      void created.done.then(() => {
        if (this.waits.get(key) === created) this.waits.delete(key);
      });
      this.waits.set(key, created);
      wait = created;
    }
    if (onWait && !wait.told.has(onWait)) {
      wait.told.add(onWait);
      onWait({ origin, bucket: bucketName, delayMs: delay });
    }
    wait.waiters += 1;
    try {
      await untilAborted(wait.done, signal);
    } finally {
      wait.waiters -= 1;
      // The last one waiting gave up: nobody needs the timer.
      if (wait.waiters === 0 && signal?.aborted) {
        wait.stop.abort();
        if (this.waits.get(key) === wait) this.waits.delete(key);
      }
    }
  }
}

const byClock = new WeakMap<Clock, RateLimits>();

/** The one `RateLimits` of a clock: the system clock's is the whole process's. */
export function rateLimitsFor(clock: Clock): RateLimits {
  let limits = byClock.get(clock);
  if (!limits) byClock.set(clock, (limits = new RateLimits(clock)));
  return limits;
}

/** A wait in words, for a warning line: `huggingface.co: the "resolvers" rate limit is spent; waiting 42 s for its window to reset`. */
export function describeRateLimitWait(wait: RateLimitWait): string {
  return `${new URL(wait.origin).host}: the "${wait.bucket}" rate limit is spent; waiting ${Math.ceil(wait.delayMs / 1000)} s for its window to reset`;
}
