import { afterEach, describe, expect, it, vi } from 'vitest';
import { abortOnInterrupt, untilInterrupted } from './interrupt.js';

/** Listeners of both stop signals, to see that a wait leaves the default handlers as it found them. */
const listeners = (): number => process.listenerCount('SIGINT') + process.listenerCount('SIGTERM');

describe('interrupts of a CLI command', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('a wait ends at the first SIGINT or SIGTERM, names it, and restores the handlers', async () => {
    const before = listeners();
    const waiting = untilInterrupted(60_000);
    expect(listeners()).toBe(before + 2);
    process.emit('SIGTERM');
    await expect(waiting).resolves.toBe('SIGTERM');
    expect(listeners()).toBe(before);
    const forever = untilInterrupted();
    process.emit('SIGINT');
    await expect(forever).resolves.toBe('SIGINT');
    expect(listeners()).toBe(before);
  });

  it('a timed wait ends by itself when no signal comes, and restores the handlers', async () => {
    vi.useFakeTimers();
    const before = listeners();
    const waiting = untilInterrupted(5000);
    vi.advanceTimersByTime(5000);
    await expect(waiting).resolves.toBeUndefined();
    expect(listeners()).toBe(before);
  });

  it('an interrupt aborts the running command with ERR_ABORTED until disposed', () => {
    const before = listeners();
    const interrupt = abortOnInterrupt();
    process.emit('SIGINT');
    expect(interrupt.signal.aborted).toBe(true);
    expect(interrupt.signal.reason).toMatchObject({ code: 'ERR_ABORTED' });
    interrupt.dispose();
    expect(listeners()).toBe(before);
  });
});
