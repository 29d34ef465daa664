import { setImmediate as idle } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import type { Clock } from '../transfer/types.js';
import { restartDelay, supervise, type ChildExit, type StopSignal, type SuperviseOptions, type SupervisedChild } from './supervisor.js';

/** Virtual time that moves only when every pending promise has settled: deterministic under any load. */
class VirtualClock implements Clock {
  time = 0;
  private timers: { at: number; seq: number; fire: () => void }[] = [];
  private seq = 0;
  now(): number {
    return this.time;
  }
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(new Error('aborted'));
      const timer = { at: this.time + ms, seq: this.seq++, fire: () => resolve() };
      this.timers.push(timer);
      signal?.addEventListener('abort', () => {
        this.timers = this.timers.filter((t) => t !== timer);
        reject(new Error('aborted'));
      }, { once: true });
    });
  }
  /** Runs `work` while advancing time to the next timer whenever nothing else can happen. */
  async drive<T>(work: Promise<T>): Promise<T> {
    let done = false;
    const result = work.finally(() => (done = true));
    for (let guard = 0; !done && guard < 100_000; guard++) {
      for (let i = 0; i < 5; i++) await idle();
      if (done) break;
      this.timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.timers.shift();
      if (next) {
        this.time = Math.max(this.time, next.at);
        next.fire();
      }
    }
    return result;
  }
}

interface Behaviour {
  /** Exit on its own after this long with this status. */
  exitAfterMs?: number;
  exit?: ChildExit;
  /** Ignore SIGTERM/SIGINT (SIGKILL always works). */
  stubborn?: boolean;
}

function harness(behaviours: Behaviour[], overrides: Partial<SuperviseOptions> = {}) {
  const clock = new VirtualClock();
  const log: string[] = [];
  const killed: string[] = [];
  const starts: number[] = [];
  let signalHandler: ((signal: StopSignal) => void) | undefined;
  const spawn = (): SupervisedChild => {
    const behaviour = behaviours[Math.min(starts.length, behaviours.length - 1)]!;
    const pid = 1000 + starts.length;
    starts.push(clock.now());
    let finish: (exit: ChildExit) => void = () => {};
    const exited = new Promise<ChildExit>((resolve) => (finish = resolve));
    if (behaviour.exitAfterMs !== undefined) void clock.sleep(behaviour.exitAfterMs).then(() => finish(behaviour.exit ?? { code: 1, signal: null }));
    return {
      pid,
      exited,
      kill: (signal) => {
        killed.push(`${pid}:${signal}`);
        if (signal === 'SIGKILL' || !behaviour.stubborn) queueMicrotask(() => finish({ code: null, signal }));
      },
    };
  };
  const options: SuperviseOptions = {
    command: 'svc',
    args: [],
    env: {},
    restarts: 2,
    spawn,
    clock,
    probe: async () => true,
    onStopSignal: (handler) => {
      signalHandler = handler;
      return () => (signalHandler = undefined);
    },
    log: (line) => log.push(line),
    ...overrides,
  };
  return { clock, log, killed, starts, options, signal: (s: StopSignal) => signalHandler?.(s) };
}

describe('supervise', () => {
  it('restarts a crashing command N times with exponential backoff, then gives up with its status', async () => {
    const h = harness([{ exitAfterMs: 100, exit: { code: 3, signal: null } }], { restarts: 3, backoffMs: 1000 });
    const result = await h.clock.drive(supervise(h.options));
    expect(result).toEqual({ exitCode: 3, starts: 4, reason: 'gave-up' });
    // start, +100 crash, +1000 backoff, +100, +2000, +100, +4000
    expect(h.starts).toEqual([0, 1100, 3200, 7300]);
    expect(h.log.filter((l) => l.includes('restart'))).toEqual([
      'command exited with code 3; restart 1/3 in 1s',
      'command exited with code 3; restart 2/3 in 2s',
      'command exited with code 3; restart 3/3 in 4s',
      'command exited with code 3; giving up after 3 restarts',
    ]);
  });

  it('does not restart a command that finished with status 0', async () => {
    const h = harness([{ exitAfterMs: 5, exit: { code: 0, signal: null } }]);
    expect(await h.clock.drive(supervise(h.options))).toEqual({ exitCode: 0, starts: 1, reason: 'exited' });
  });

  it('recovers when a restarted command stays up', async () => {
    const h = harness([{ exitAfterMs: 5, exit: { code: null, signal: 'SIGSEGV' } }, { exitAfterMs: 50, exit: { code: 0, signal: null } }]);
    const result = await h.clock.drive(supervise(h.options));
    expect(result).toEqual({ exitCode: 0, starts: 2, reason: 'exited' });
    expect(h.log[0]).toBe('command was killed by SIGSEGV; restart 1/2 in 1s');
  });

  it('kills and restarts a command that stays unhealthy past the grace period, counting only consecutive failures', async () => {
    const answers = [false, false, true, false, false, false];
    let probes = 0;
    const h = harness([{}], {
      restarts: 1,
      healthUrl: 'http://svc/health',
      healthIntervalMs: 1000,
      healthGraceMs: 1500,
      unhealthyThreshold: 3,
      probe: async () => answers[probes++ % answers.length]!,
    });
    const result = await h.clock.drive(supervise(h.options));
    expect(result).toEqual({ exitCode: 143, starts: 2, reason: 'gave-up' });
    expect(h.killed).toEqual(['1000:SIGTERM', '1001:SIGTERM']);
    // probes at 1s (grace), 2s fail, 3s ok, 4s, 5s, 6s fail → killed at 6 s
    expect(h.starts[1]).toBe(6000 + 1000);
    expect(h.log[0]).toBe('command was unhealthy (3 failed health checks of http://svc/health); stopping it');
  });

  it('counts a probe that hangs past its timeout as failed', async () => {
    const h = harness([{}], { restarts: 0, healthUrl: 'http://svc/h', healthIntervalMs: 1000, healthGraceMs: 0, healthTimeoutMs: 500, unhealthyThreshold: 2, probe: () => new Promise(() => {}) });
    const result = await h.clock.drive(supervise(h.options));
    expect(result.reason).toBe('gave-up');
    expect(h.clock.now()).toBe(3000);
  });

  it('forwards a stop signal, does not restart, and exits with the command status', async () => {
    const h = harness([{}]);
    const running = supervise(h.options);
    void h.clock.sleep(2000).then(() => h.signal('SIGTERM'));
    const result = await h.clock.drive(running);
    expect(result).toEqual({ exitCode: 143, starts: 1, reason: 'stopped' });
    expect(h.killed).toEqual(['1000:SIGTERM']);
  });

  it('sends SIGKILL when the command ignores the stop signal past the timeout', async () => {
    const h = harness([{ stubborn: true }], { stopTimeoutMs: 3000 });
    const running = supervise(h.options);
    void h.clock.sleep(10).then(() => h.signal('SIGINT'));
    const result = await h.clock.drive(running);
    expect(h.killed).toEqual(['1000:SIGINT', '1000:SIGKILL']);
    expect(result).toEqual({ exitCode: 137, starts: 1, reason: 'stopped' });
    expect(h.clock.now()).toBe(3010);
  });

  it('caps the backoff', () => {
    expect([1, 2, 3, 4, 5, 6].map((n) => restartDelay(n, 1000, 10_000))).toEqual([1000, 2000, 4000, 8000, 10_000, 10_000]);
  });
});
