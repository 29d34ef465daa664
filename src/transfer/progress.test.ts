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

  it('counts the connections that carried data since the last event, not only those open at that instant', () => {
    let now = 0;
    const events: ProgressEvent[] = [];
    const progress = new BatchProgress([{ tempPath: 'a.part', size: 100 }, { tempPath: 'b.part', size: 100 }], (e) => events.push(e), () => now);
    progress.update(0, { phase: 'download' });
    // A small file: its one connection opens, delivers and closes between two events.
    progress.connection(1);
    progress.addReceived(100);
    progress.update(0, { bytesDone: 100 });
    progress.connection(-1);
    now = 150;
    progress.update(0, { phase: 'done' });
    expect(events.at(-1)).toMatchObject({ phase: 'done', bytesDone: 100, connections: 1 });
    // Nothing open and nothing flowing since: 0.
    now = 300;
    progress.update(1, { phase: 'download' });
    expect(events.at(-1)?.connections).toBe(0);
  });
});
