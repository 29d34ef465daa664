import type { ProgressEvent, RateLimitWait, RetryEvent } from '../transfer/types.js';
import { formatBytes } from '../core/format-bytes.js';

/**
 * Renders engine progress events on stderr: a redrawn bar on a terminal, a plain line every few
 * seconds otherwise (logs, CI), nothing when quiet. Shared by every command that moves bytes.
 */

export type ProgressMode = 'bar' | 'lines' | 'none';

export interface ProgressRenderer {
  onProgress: (event: ProgressEvent) => void;
  /** Clears the bar (call before printing the result or an error). */
  finish: () => void;
  /** A line of its own (a retry notice) above the bar, which the next event redraws; dropped when quiet. */
  note: (line: string) => void;
  /** The same, quiet or not (a warning): a line never lands in the middle of the bar. */
  above: (line: string) => void;
  /** A retry: its notice above the bar and, for a wait of a second or more, `waiting 30 s (host: HTTP 429)` counting down on the bar. */
  onRetry: (event: RetryEvent) => void;
  /** A request held for a rate-limit window: `waiting 42 s (host: "resolvers" rate limit)` counting down on the bar. */
  onRateLimitWait: (wait: RateLimitWait) => void;
}

type Stream = NodeJS.WritableStream & { isTTY?: boolean; columns?: number };

const LINE_EVERY_MS = 2000;
/** Shorter waits are not worth a countdown: the retry notice says them. */
const SHOWN_WAIT_MS = 1000;

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${rest}` : `${m}:${rest}`;
}

/** One status line for an event, without the bar. */
export function describeProgress(event: ProgressEvent): string {
  const done = event.batchBytesDone;
  const total = event.batchTotalBytes;
  const percent = total > 0 ? `${Math.floor((done / total) * 100)}%` : '';
  const eta = event.eta === undefined ? '' : ` ETA ${formatDuration(event.eta)}`;
  return `${percent} ${formatBytes(done)}${total > 0 ? `/${formatBytes(total)}` : ''} ${formatBytes(event.speed)}/s ${event.connections} conn${eta}`.trim();
}

export function progressModeFor(stream: Stream, quiet: boolean): ProgressMode {
  if (quiet) return 'none';
  return stream.isTTY ? 'bar' : 'lines';
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

/** `waiting 28 s (huggingface.co: HTTP 429)`, the countdown the bar shows while nothing may be asked. */
export function describeWait(remainingMs: number, why: string): string {
  return `waiting ${Math.ceil(remainingMs / 1000)} s (${why})`;
}

export function createProgressRenderer(stream: Stream, mode: ProgressMode, now: () => number = () => Date.now()): ProgressRenderer {
  let drawn = false;
  let lastLine = -Infinity;
  let lastText = '';
  let lastEvent: ProgressEvent | undefined;
  let wait: { why: string; until: number } | undefined;
  let ticker: ReturnType<typeof setInterval> | undefined;
  const stopTicker = (): void => {
    if (ticker) clearInterval(ticker);
    ticker = undefined;
  };
  /** The bar (when an event came) and its status, with the wait's countdown while there is one. */
  const draw = (): void => {
    const remaining = wait ? wait.until - now() : 0;
    if (wait && remaining <= 0) {
      wait = undefined;
      stopTicker();
    }
    const waiting = wait ? describeWait(remaining, wait.why) : undefined;
    if (!lastEvent) {
      if (waiting) stream.write(`\r${waiting}\u001b[K`);
      else if (drawn) stream.write('\r\u001b[K');
      drawn = waiting !== undefined;
      return;
    }
    const text = waiting ? `${describeProgress(lastEvent)}, ${waiting}` : describeProgress(lastEvent);
    const width = Math.max(10, Math.min(40, (stream.columns ?? 80) - text.length - 4));
    const ratio = lastEvent.batchTotalBytes > 0 ? Math.min(1, lastEvent.batchBytesDone / lastEvent.batchTotalBytes) : 0;
    const filled = Math.round(ratio * width);
    stream.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}\u001b[K`);
    drawn = true;
  };
  const onProgress = (event: ProgressEvent): void => {
    if (mode === 'none' || event.phase === 'probe') return;
    if (mode === 'lines') {
      const text = describeProgress(event);
      // A log gets a line every few seconds and the final one; never the same line twice (a stalled download says it once).
      const at = now();
      const final = event.phase === 'done' && event.batchBytesDone >= event.batchTotalBytes;
      if ((!final && at - lastLine < LINE_EVERY_MS) || text === lastText) return;
      lastLine = at;
      lastText = text;
      stream.write(`${text}\n`);
      return;
    }
    lastEvent = event;
    draw();
  };
  const clearLine = (): void => {
    if (drawn) stream.write('\r\u001b[K');
    drawn = false;
  };
  const finish = (): void => {
    stopTicker();
    wait = undefined;
    clearLine();
  };
  const above = (line: string): void => {
    clearLine();
    stream.write(`${line}\n`);
  };
  const note = (line: string): void => {
    if (mode !== 'none') above(line);
  };
  /** On a terminal, the bar says what is waited for, counting down each second; a log has the notice. */
  const showWait = (delayMs: number, why: string): void => {
    if (mode !== 'bar' || delayMs < SHOWN_WAIT_MS) return;
    const until = now() + delayMs;
    // Several requests may wait at once: the bar shows the one that ends last.
    if (!wait || until >= wait.until) wait = { why, until };
    ticker ??= setInterval(draw, 1000);
    ticker.unref?.();
    draw();
  };
  const onRetry = (event: RetryEvent): void => {
    note(`modelfetch: ${describeRetry(event)}`);
    showWait(event.delayMs, `${hostOf(event.url)}: ${event.reason}`);
  };
  const onRateLimitWait = (limit: RateLimitWait): void => showWait(limit.delayMs, `${hostOf(limit.origin)}: "${limit.bucket}" rate limit`);
  return { onProgress, finish, note, above, onRetry, onRateLimitWait };
}

/** A retry notice: `127.0.0.1:9: connection refused, retry 1/2 in 0.2 s`. */
export function describeRetry(event: RetryEvent): string {
  const host = hostOf(event.url);
  const seconds = event.delayMs / 1000;
  return `${host}: ${event.reason}, retry ${event.retry}/${event.maxRetries} in ${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`;
}
