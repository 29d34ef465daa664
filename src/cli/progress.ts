import type { ProgressEvent, RetryEvent } from '../transfer/types.js';
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
}

type Stream = NodeJS.WritableStream & { isTTY?: boolean; columns?: number };

const LINE_EVERY_MS = 2000;

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

export function createProgressRenderer(stream: Stream, mode: ProgressMode, now: () => number = () => Date.now()): ProgressRenderer {
  let drawn = false;
  let lastLine = -Infinity;
  let lastText = '';
  const onProgress = (event: ProgressEvent): void => {
    if (mode === 'none' || event.phase === 'probe') return;
    const text = describeProgress(event);
    if (mode === 'lines') {
      // A log gets a line every few seconds and the final one; never the same line twice (a stalled download says it once).
      const at = now();
      const final = event.phase === 'done' && event.batchBytesDone >= event.batchTotalBytes;
      if ((!final && at - lastLine < LINE_EVERY_MS) || text === lastText) return;
      lastLine = at;
      lastText = text;
      stream.write(`${text}\n`);
      return;
    }
    const width = Math.max(10, Math.min(40, (stream.columns ?? 80) - text.length - 4));
    const ratio = event.batchTotalBytes > 0 ? Math.min(1, event.batchBytesDone / event.batchTotalBytes) : 0;
    const filled = Math.round(ratio * width);
    stream.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}\u001b[K`);
    drawn = true;
  };
  const finish = (): void => {
    if (drawn) stream.write('\r\u001b[K');
    drawn = false;
  };
  const note = (line: string): void => {
    if (mode === 'none') return;
    finish();
    stream.write(`${line}\n`);
  };
  return { onProgress, finish, note };
}

/** A retry notice: `127.0.0.1:9: connection refused, retry 1/2 in 0.2 s`. */
export function describeRetry(event: RetryEvent): string {
  let host: string;
  try {
    host = new URL(event.url).host;
  } catch {
    host = event.url;
  }
  const seconds = event.delayMs / 1000;
  return `${host}: ${event.reason}, retry ${event.retry}/${event.maxRetries} in ${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`;
}
