import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ProgressEvent } from '../transfer/types.js';
import { formatBytes } from '../core/format-bytes.js';
import { PassThrough } from 'node:stream';
import { createProgressRenderer, describeProgress, describeRetry, describeWait, formatDuration } from './progress.js';

const event = (patch: Partial<ProgressEvent> = {}): ProgressEvent => ({
  job: 0,
  tempPath: '/tmp/x',
  bytesDone: 512 * 1024 * 1024,
  contiguousBytes: 0,
  totalBytes: 1024 * 1024 * 1024,
  batchBytesDone: 512 * 1024 * 1024,
  batchTotalBytes: 1024 * 1024 * 1024,
  speed: 100 * 1024 * 1024,
  eta: 5.2,
  connections: 16,
  phase: 'download',
  ...patch,
});

function sink(isTTY: boolean): NodeJS.WritableStream & { isTTY: boolean; columns: number; text: string } {
  const out = { isTTY, columns: 100, text: '', write: (s: string) => ((out.text += s), true) };
  return out as unknown as NodeJS.WritableStream & { isTTY: boolean; columns: number; text: string };
}

describe('progress rendering', () => {
  it('formats sizes, durations and a status line', () => {
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatDuration(3725)).toBe('1:02:05');
    expect(describeProgress(event())).toBe('50% 512.0 MiB/1.0 GiB 100.0 MiB/s 16 conn ETA 0:05');
  });

  it('draws a bar on a terminal and clears it when done', () => {
    const out = sink(true);
    const renderer = createProgressRenderer(out, 'bar');
    renderer.onProgress(event());
    expect(out.text).toMatch(/^\r\[#+\.+\] 50%/);
    renderer.finish();
    expect(out.text.endsWith('\r\u001b[K')).toBe(true);
  });

  it('prints plain lines at most every two seconds elsewhere, and nothing when quiet', () => {
    let now = 0;
    const out = sink(false);
    const renderer = createProgressRenderer(out, 'lines', () => now);
    renderer.onProgress(event({ phase: 'probe' }));
    renderer.onProgress(event());
    now = 500;
    renderer.onProgress(event());
    now = 2600;
    renderer.onProgress(event({ bytesDone: 600 * 1024 * 1024, batchBytesDone: 600 * 1024 * 1024 }));
    renderer.onProgress(event({ phase: 'done', batchBytesDone: 1024 * 1024 * 1024, bytesDone: 1024 * 1024 * 1024, speed: 0 }));
    expect(out.text.split('\n').filter(Boolean)).toHaveLength(3);
    const quiet = sink(false);
    createProgressRenderer(quiet, 'none').onProgress(event());
    expect(quiet.text).toBe('');
  });

  it('never repeats an identical line in a log, and shows one file finishing in a batch only at the usual pace', () => {
    let now = 0;
    const out = sink(false);
    const renderer = createProgressRenderer(out, 'lines', () => now);
    const stalled = event({ speed: 0, eta: undefined, connections: 4 });
    for (let i = 0; i < 5; i += 1) {
      now = i * 2500;
      renderer.onProgress(stalled);
    }
    expect(out.text.split('\n').filter(Boolean)).toEqual(['50% 512.0 MiB/1.0 GiB 0 B/s 4 conn']);
    const batch = sink(false);
    const lines = createProgressRenderer(batch, 'lines', () => now);
    lines.onProgress(event());
    now += 100;
    lines.onProgress(event({ phase: 'done', job: 1, batchBytesDone: 600 * 1024 * 1024 })); // one file of several: not the end of the batch
    expect(batch.text.split('\n').filter(Boolean)).toHaveLength(1);
  });
});

describe('retry notices', () => {
  it('name the host, the reason, the retry count and the wait', () => {
    expect(describeRetry({ url: 'http://127.0.0.1:9/f.bin', reason: 'connection refused', retry: 3, maxRetries: 7, delayMs: 2000 })).toBe('127.0.0.1:9: connection refused, retry 3/7 in 2.0 s');
    expect(describeRetry({ url: 'https://cdn.example/x', reason: 'HTTP 503', retry: 1, maxRetries: 7, delayMs: 12_400 })).toBe('cdn.example: HTTP 503, retry 1/7 in 12 s');
  });

  it('print above the bar on a terminal and nothing when quiet', () => {
    const written: string[] = [];
    const stream = Object.assign(new PassThrough(), { isTTY: true, columns: 80 });
    stream.on('data', (chunk: Buffer) => written.push(chunk.toString()));
    createProgressRenderer(stream, 'bar').note('a notice');
    createProgressRenderer(stream, 'none').note('hidden');
    expect(written.join('')).toBe('a notice\n');
  });
});

describe('waits on the progress line', () => {
  afterEach(() => vi.useRealTimers());
  /** What the terminal shows now: the text after the last carriage return, without the erase code. */
  const shown = (text: string): string => (text.split('\r').pop() ?? '').replace('\u001b[K', '');

  it('a 429 shows `waiting N s (host: HTTP 429)` on the bar, counting down each second, then the bar alone', () => {
    vi.useFakeTimers();
    const out = sink(true);
    const renderer = createProgressRenderer(out, 'bar', () => Date.now());
    renderer.onProgress(event());
    renderer.onRetry({ url: 'https://huggingface.co/org/name/resolve/main/a.bin', reason: 'HTTP 429', retry: 1, maxRetries: 7, delayMs: 30_000 });
    // The notice stays above, as before; the bar says what it waits for.
    expect(out.text).toContain('modelfetch: huggingface.co: HTTP 429, retry 1/7 in 30 s\n');
    expect(shown(out.text)).toMatch(/^\[#+\.+\] 50% .*, waiting 30 s \(huggingface\.co: HTTP 429\)$/);
    vi.advanceTimersByTime(1000);
    expect(shown(out.text)).toMatch(/waiting 29 s \(huggingface\.co: HTTP 429\)$/);
    vi.advanceTimersByTime(3000);
    expect(shown(out.text)).toMatch(/waiting 26 s \(huggingface\.co: HTTP 429\)$/);
    // Progress from other connections keeps the countdown.
    renderer.onProgress(event({ batchBytesDone: 600 * 1024 * 1024 }));
    expect(shown(out.text)).toMatch(/58%.*, waiting 26 s \(huggingface\.co: HTTP 429\)$/);
    vi.advanceTimersByTime(26_000);
    expect(shown(out.text)).not.toContain('waiting');
    expect(shown(out.text)).toMatch(/^\[#+\.+\] 58%/);
    renderer.finish();
  });

  it('an API call waiting before any byte shows the countdown alone; a rate-limit window says its bucket', () => {
    vi.useFakeTimers();
    const out = sink(true);
    const renderer = createProgressRenderer(out, 'bar', () => Date.now());
    renderer.onRetry({ url: 'https://huggingface.co/api/models/org/name/revision/main', reason: 'HTTP 429', retry: 1, maxRetries: 2, delayMs: 5000 });
    expect(shown(out.text)).toBe('waiting 5 s (huggingface.co: HTTP 429)');
    renderer.onRateLimitWait({ origin: 'https://huggingface.co', bucket: 'resolvers', delayMs: 42_000 });
    // A shorter wait told later does not replace it: the wait that ends last is the one shown.
    renderer.onRetry({ url: 'https://huggingface.co/api/models/org/name/revision/main', reason: 'HTTP 429', retry: 2, maxRetries: 2, delayMs: 5000 });
    expect(shown(out.text)).toBe('waiting 42 s (huggingface.co: "resolvers" rate limit)');
    renderer.finish();
    expect(shown(out.text)).toBe('');
    vi.advanceTimersByTime(5000);
    expect(shown(out.text)).toBe('');
  });

  it('short waits, logs and quiet runs get no countdown', () => {
    vi.useFakeTimers();
    const out = sink(true);
    createProgressRenderer(out, 'bar', () => Date.now()).onRetry({ url: 'http://127.0.0.1:9/f', reason: 'connection refused', retry: 1, maxRetries: 2, delayMs: 200 });
    expect(out.text).toBe('modelfetch: 127.0.0.1:9: connection refused, retry 1/2 in 0.2 s\n');
    const log = sink(false);
    createProgressRenderer(log, 'lines', () => Date.now()).onRateLimitWait({ origin: 'https://huggingface.co', bucket: 'api', delayMs: 60_000 });
    expect(log.text).toBe('');
    expect(describeWait(1500, 'hub: HTTP 429')).toBe('waiting 2 s (hub: HTTP 429)');
  });
});
