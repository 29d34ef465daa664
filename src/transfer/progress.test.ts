import { afterEach, describe, expect, it, vi } from 'vitest';
import { BatchProgress } from './progress.js';
import type { ProgressEvent } from './types.js';

describe('BatchProgress', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('sends at most one event per 100 ms, and a held-back update once no newer one comes', () => {
    vi.useFakeTimers();
    const events: ProgressEvent[] = [];
    const progress = new BatchProgress([{ tempPath: 'a.part', size: 100 }], (e) => events.push(e), () => Date.now());
    progress.update(0, { phase: 'download', bytesDone: 10 });
    progress.update(0, { bytesDone: 20 });
    progress.update(0, { bytesDone: 30 });
    expect(events.map((e) => e.bytesDone)).toEqual([10]);
    // The download pauses here: the last state still goes out.
    vi.advanceTimersByTime(100);
    expect(events.map((e) => e.bytesDone)).toEqual([10, 30]);
    vi.advanceTimersByTime(1000);
    expect(events).toHaveLength(2);
  });

  it('sends nothing after close', () => {
    vi.useFakeTimers();
    const events: ProgressEvent[] = [];
    const progress = new BatchProgress([{ tempPath: 'a.part', size: 100 }], (e) => events.push(e), () => Date.now());
    progress.update(0, { phase: 'download', bytesDone: 10 });
    progress.update(0, { bytesDone: 20 });
    progress.close();
    vi.advanceTimersByTime(1000);
    expect(events.map((e) => e.bytesDone)).toEqual([10]);
  });
});
