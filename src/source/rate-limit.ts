import type { Clock } from '../transfer/types.js';

/**
 * Paces requests to the Hub by the rate-limit headers it sends (IETF draft
 * draft-ietf-httpapi-ratelimit-headers, as the Hub spells it):
 *   RateLimit: "api";r=489;t=189                       (r requests left in the window, t seconds until it resets)
 *   RateLimit-Policy: "fixed window";"api";q=500;w=300 (q requests per w seconds)
 * Each bucket ("api", "resolvers", …) is tracked on its own. A request whose bucket has nothing
 * left waits until the window resets rather than being answered 429.
 */

export interface RateLimitState {
  bucket: string;
  remaining: number;
  resetAt: number;
}

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

export class RateLimitPacer {
  private readonly buckets = new Map<string, RateLimitState>();
  /** Which bucket a kind of request (api, resolve) was last told it counts against. */
  private readonly bucketOfKind = new Map<string, string>();

  constructor(private readonly clock: Clock) {}

  /** Records what a response said about its bucket. */
  observe(kind: string, rateLimitHeader: string | undefined): void {
    const parsed = parseRateLimit(rateLimitHeader);
    if (!parsed) return;
    this.bucketOfKind.set(kind, parsed.bucket);
    this.buckets.set(parsed.bucket, { bucket: parsed.bucket, remaining: parsed.remaining, resetAt: this.clock.now() + parsed.resetSeconds * 1000 });
  }

  /** How long a request of this kind must wait now (0 when its bucket has room or is unknown). */
  delayFor(kind: string): number {
    const state = this.stateOf(kind);
    if (!state || state.remaining > 0) return 0;
    return Math.max(0, state.resetAt - this.clock.now());
  }

  /** Waits until the bucket has room, then counts this request against it (until the response says otherwise). */
  async beforeRequest(kind: string, signal?: AbortSignal, onWait?: (ms: number, bucket: string) => void): Promise<void> {
    for (;;) {
      const wait = this.delayFor(kind);
      if (wait <= 0) break;
      const state = this.stateOf(kind);
      onWait?.(wait, state?.bucket ?? kind);
      await this.clock.sleep(wait, signal);
      // The window has reset: its size is unknown until the next answer, so let this request through.
      if (state && this.clock.now() >= state.resetAt) this.buckets.delete(state.bucket);
    }
    const state = this.stateOf(kind);
    if (state) state.remaining = Math.max(0, state.remaining - 1);
  }

  private stateOf(kind: string): RateLimitState | undefined {
    const bucket = this.bucketOfKind.get(kind);
    return bucket === undefined ? undefined : this.buckets.get(bucket);
  }
}
