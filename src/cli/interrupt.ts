import { ModelfetchError } from '../core/errors.js';

/**
 * Turns SIGINT/SIGTERM into an abort of the running command, so the engine stops cleanly and keeps
 * its resume journals; `dispose()` restores the default handlers.
 */
export function abortOnInterrupt(): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const dispose = onInterrupt(() => controller.abort(new ModelfetchError('ERR_ABORTED', 'Interrupted; run the same command again to resume')));
  return { signal: controller.signal, dispose };
}

type StopSignal = 'SIGINT' | 'SIGTERM';

/**
 * Resolves with the signal's name at the first SIGINT or SIGTERM, or with undefined after `ms` when
 * given (never, when not); the default handlers are back by then, so a second Ctrl-C stops at once.
 */
export function untilInterrupted(ms?: number): Promise<StopSignal | undefined> {
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const dispose = onInterrupt((signal) => {
      clearTimeout(timer);
      dispose();
      resolve(signal);
    });
    if (ms !== undefined) {
      timer = setTimeout(() => {
        dispose();
        resolve(undefined);
      }, ms);
    }
  });
}

/** Calls `handler` on SIGINT or SIGTERM instead of the default (exit); the returned function restores the default. */
function onInterrupt(handler: (signal: StopSignal) => void): () => void {
  const onInt = (): void => handler('SIGINT');
  const onTerm = (): void => handler('SIGTERM');
  process.once('SIGINT', onInt);
  process.once('SIGTERM', onTerm);
  return () => {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  };
}
