import { ModelfetchError } from '../core/errors.js';

/**
 * Turns SIGINT/SIGTERM into an abort of the running command, so the engine stops cleanly and keeps
 * its resume journals; `dispose()` restores the default handlers.
 */
export function abortOnInterrupt(): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const onSignal = (): void => controller.abort(new ModelfetchError('ERR_ABORTED', 'Interrupted; run the same command again to resume'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}
