import type { Clock } from '../../src/transfer/types.js';

/** A clock whose sleeps return at once, advancing its time and recording how long each was asked to be. */
export function fakeClock(start = 1_000_000): Clock & { slept: number[] } {
  let now = start;
  const slept: number[] = [];
  return {
    slept,
    now: () => now,
    sleep: (ms) => {
      slept.push(ms);
      now += ms;
      return Promise.resolve();
    },
  };
}
