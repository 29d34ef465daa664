/**
 * `pending`, or the signal's reason as soon as it aborts, whichever comes first. What was being
 * waited for is not stopped: `onLate` gets its value if it still arrives (to release it).
 */
export function untilAborted<T>(pending: Promise<T>, signal: AbortSignal | undefined, onLate?: (late: T) => void): Promise<T> {
  if (!signal) return pending;
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      reject(signal.reason as Error);
      pending.then((late) => onLate?.(late), () => undefined);
    };
    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    pending.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error as Error);
      },
    );
  });
}
