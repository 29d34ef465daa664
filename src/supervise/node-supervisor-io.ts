import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Clock } from '../transfer/types.js';
import type { HealthProbe, SpawnChild, StopSignal, SupervisedChild } from './supervisor.js';

/** The real-process implementations of the supervisor's injected I/O. */

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) => sleep(ms, undefined, signal ? { signal } : undefined),
};

/** Spawns with inherited stdio; a command that cannot start resolves as exit code 127, like a shell. */
export const spawnChild: SpawnChild = (command, args, env): SupervisedChild => {
  const child = spawn(command, args, { env, stdio: 'inherit' });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', (error) => {
      process.stderr.write(`modelfetch run: cannot start ${command}: ${error.message}\n`);
      resolve({ code: 127, signal: null });
    });
  });
  return {
    get pid() {
      return child.pid;
    },
    exited,
    kill: (signal) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
  };
};

/** GET the URL; any 2xx is healthy. */
export const httpProbe: HealthProbe = async (url, signal) => {
  const response = await fetch(url, { signal, redirect: 'manual' });
  await response.body?.cancel().catch(() => {});
  return response.status >= 200 && response.status < 300;
};

/** Routes SIGINT/SIGTERM/SIGHUP to the handler instead of killing this process. */
export function onProcessStopSignal(handler: (signal: StopSignal) => void): () => void {
  const signals: StopSignal[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  const listeners = signals.map((signal) => {
    const listener = (): void => handler(signal);
    process.on(signal, listener);
    return [signal, listener] as const;
  });
  return () => {
    for (const [signal, listener] of listeners) process.off(signal, listener);
  };
}
