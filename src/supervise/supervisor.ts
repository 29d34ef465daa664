import { constants } from 'node:os';
import type { Clock } from '../transfer/types.js';

/**
 * Keeps one child process running: forwards stop signals to it, polls a health URL, and restarts it
 * with exponential backoff when it dies or stays unhealthy, up to a limit. Process spawning, time,
 * HTTP and signal delivery are injected, so every branch is testable without real processes.
 */

export type StopSignal = 'SIGINT' | 'SIGTERM' | 'SIGHUP';

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** What the supervisor needs of a child process. */
export interface SupervisedChild {
  readonly pid?: number;
  /** Resolves once, when the process has exited (or failed to start: code 127). */
  readonly exited: Promise<ChildExit>;
  kill(signal: NodeJS.Signals): void;
}

export type SpawnChild = (command: string, args: string[], env: NodeJS.ProcessEnv) => SupervisedChild;

/** Answers true when the service is healthy. Rejections and non-2xx answers count as unhealthy. */
export type HealthProbe = (url: string, signal: AbortSignal) => Promise<boolean>;

export interface SuperviseOptions {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** Restarts allowed after the first start; 0 = never restart. */
  restarts: number;
  healthUrl?: string;
  /** Between health probes. Default 5 s. */
  healthIntervalMs?: number;
  /** No probe counts as failed during this time after each start. Default 60 s. */
  healthGraceMs?: number;
  /** Consecutive failed probes that make the child unhealthy. Default 3. */
  unhealthyThreshold?: number;
  /** A single probe is abandoned (failed) after this long. Default 5 s. */
  healthTimeoutMs?: number;
  /** First restart delay; doubles each time up to backoffMaxMs. Default 1 s, max 30 s. */
  backoffMs?: number;
  backoffMaxMs?: number;
  /** After a stop signal or an unhealthy verdict, SIGKILL follows SIGTERM after this long. Default 10 s. */
  stopTimeoutMs?: number;
  spawn: SpawnChild;
  clock: Clock;
  probe: HealthProbe;
  /** Subscribes to stop signals meant for the child; returns the unsubscribe function. */
  onStopSignal: (handler: (signal: StopSignal) => void) => () => void;
  log: (line: string) => void;
}

export interface SupervisorResult {
  /** The status the wrapper should exit with: the child's own, 128+n for a signal, 1 when it gave up. */
  exitCode: number;
  /** Times the child was started. */
  starts: number;
  reason: 'exited' | 'stopped' | 'gave-up';
}

const DEFAULTS = { healthIntervalMs: 5_000, healthGraceMs: 60_000, unhealthyThreshold: 3, healthTimeoutMs: 5_000, backoffMs: 1_000, backoffMaxMs: 30_000, stopTimeoutMs: 10_000 };

/** Status a shell would report for this exit. */
export function exitStatus(exit: ChildExit): number {
  if (exit.code !== null) return exit.code;
  const number = exit.signal ? constants.signals[exit.signal] : undefined;
  return number === undefined ? 1 : 128 + number;
}

export function describeExit(exit: ChildExit): string {
  return exit.code !== null ? `exited with code ${exit.code}` : `was killed by ${exit.signal ?? 'an unknown signal'}`;
}

/** Delay before restart number `restart` (1-based): backoff, 2×backoff, 4×… capped. */
export function restartDelay(restart: number, backoffMs: number, backoffMaxMs: number): number {
  return Math.min(backoffMaxMs, backoffMs * 2 ** (restart - 1));
}

export async function supervise(options: SuperviseOptions): Promise<SupervisorResult> {
  const o = { ...DEFAULTS, ...options };
  let stopSignal: StopSignal | undefined;
  let current: SupervisedChild | undefined;
  const stopWaiters = new Set<() => void>();
  const unsubscribe = o.onStopSignal((signal) => {
    stopSignal = signal;
    if (current) {
      o.log(`forwarding ${signal} to the command (pid ${current.pid ?? '?'})`);
      current.kill(signal);
    }
    if (signal !== 'SIGHUP') for (const wake of stopWaiters) wake();
  });
  try {
    for (let start = 1; ; start++) {
      const child = o.spawn(o.command, o.args, o.env);
      current = child;
      const outcome = await watch(child, o, () => stopSignal, stopWaiters);
      current = undefined;
      if (stopSignal !== undefined) {
        const status = exitStatus(outcome.exit);
        o.log(`command ${describeExit(outcome.exit)} after ${stopSignal}`);
        return { exitCode: status, starts: start, reason: 'stopped' };
      }
      if (outcome.why === undefined) return { exitCode: 0, starts: start, reason: 'exited' };
      if (start > o.restarts) {
        o.log(`command ${outcome.why}; giving up after ${o.restarts} restart${o.restarts === 1 ? '' : 's'}`);
        const status = exitStatus(outcome.exit);
        return { exitCode: status === 0 ? 1 : status, starts: start, reason: 'gave-up' };
      }
      const delay = restartDelay(start, o.backoffMs, o.backoffMaxMs);
      o.log(`command ${outcome.why}; restart ${start}/${o.restarts} in ${formatMs(delay)}`);
      const controller = new AbortController();
      const wake = (): void => controller.abort();
      stopWaiters.add(wake);
      await o.clock.sleep(delay, controller.signal).catch(() => {});
      stopWaiters.delete(wake);
      if (stopSignal !== undefined && stopSignal !== 'SIGHUP') {
        o.log(`${stopSignal} while waiting to restart; not restarting`);
        return { exitCode: exitStatus(outcome.exit) || 1, starts: start, reason: 'stopped' };
      }
    }
  } finally {
    unsubscribe();
  }
}

interface WatchOutcome {
  exit: ChildExit;
  /** Why it must be restarted; undefined when it finished cleanly (code 0) on its own. */
  why?: string;
}

/** Waits for the child to exit; kills it when it stays unhealthy or a stop signal is not obeyed in time. */
async function watch(child: SupervisedChild, o: SuperviseOptions & typeof DEFAULTS, stopped: () => StopSignal | undefined, stopWaiters: Set<() => void>): Promise<WatchOutcome> {
  let exited = false;
  const exit = child.exited.then((e) => {
    exited = true;
    return e;
  });
  const healthAbort = new AbortController();
  let unhealthy: string | undefined;

  const escalate = async (): Promise<void> => {
    await o.clock.sleep(o.stopTimeoutMs, healthAbort.signal).catch(() => {});
    if (!exited && !healthAbort.signal.aborted) {
      o.log(`command did not stop within ${formatMs(o.stopTimeoutMs)}; sending SIGKILL`);
      child.kill('SIGKILL');
    }
  };
  const onStop = (): void => void escalate();
  stopWaiters.add(onStop);

  const health = async (): Promise<void> => {
    if (!o.healthUrl) return;
    const startedAt = o.clock.now();
    let failures = 0;
    while (!exited && !healthAbort.signal.aborted) {
      await o.clock.sleep(o.healthIntervalMs, healthAbort.signal).catch(() => {});
      const stop = stopped();
      if (exited || healthAbort.signal.aborted || (stop !== undefined && stop !== 'SIGHUP')) return;
      const healthy = await probeOnce(o, healthAbort.signal);
      if (exited || healthAbort.signal.aborted) return;
      const inGrace = o.clock.now() - startedAt < o.healthGraceMs;
      if (healthy) failures = 0;
      else if (!inGrace) failures++;
      if (failures >= o.unhealthyThreshold) {
        unhealthy = `was unhealthy (${failures} failed health checks of ${o.healthUrl})`;
        o.log(`command ${unhealthy}; stopping it`);
        child.kill('SIGTERM');
        void escalate();
        return;
      }
    }
  };
  void health();
  const result = await exit;
  healthAbort.abort();
  stopWaiters.delete(onStop);
  if (unhealthy) return { exit: result, why: unhealthy };
  if (result.code === 0) return { exit: result };
  return { exit: result, why: describeExit(result) };
}

async function probeOnce(o: SuperviseOptions & typeof DEFAULTS, parent: AbortSignal): Promise<boolean> {
  const controller = new AbortController();
  const abort = (): void => controller.abort();
  parent.addEventListener('abort', abort, { once: true });
  const timeout = o.clock.sleep(o.healthTimeoutMs, controller.signal).then(
    () => false,
    () => false,
  );
  try {
    return await Promise.race([o.probe(o.healthUrl!, controller.signal).catch(() => false), timeout]);
  } finally {
    controller.abort();
    parent.removeEventListener('abort', abort);
  }
}

function formatMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(ms % 1000 === 0 ? 0 : 1)}s` : `${ms}ms`;
}
