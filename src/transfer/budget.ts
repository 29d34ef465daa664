/**
 * A per-host connection budget. Every file in flight (and, when one budget is shared, every
 * concurrent pull) takes a slot before opening a connection to a host and gives it back after.
 */
export interface ConnectionBudget {
  readonly perHost: number;
  /** Waits for a free slot on `host`; resolves to the function that gives it back (idempotent). */
  acquire(host: string, signal?: AbortSignal): Promise<() => void>;
  /** Slots in use on `host`. */
  inUse(host: string): number;
  /** Slots in use over every host. */
  total(): number;
}

interface HostState {
  used: number;
  waiters: Array<() => void>;
}

export function createConnectionBudget(perHost: number): ConnectionBudget {
  if (!Number.isFinite(perHost) || perHost < 1) throw new RangeError(`connections per host must be ≥ 1, got ${perHost}`);
  const limit = Math.floor(perHost);
  const hosts = new Map<string, HostState>();
  let total = 0;

  const stateOf = (host: string): HostState => {
    let state = hosts.get(host);
    if (!state) {
      state = { used: 0, waiters: [] };
      hosts.set(host, state);
    }
    return state;
  };

  const releaser = (host: string, state: HostState): (() => void) => {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = state.waiters.shift();
      if (next) {
        next(); // the slot passes straight to the next waiter
        return;
      }
      state.used -= 1;
      total -= 1;
      if (state.used === 0) hosts.delete(host);
    };
  };

  return {
    perHost: limit,
    acquire(host, signal) {
      const state = stateOf(host);
      if (signal?.aborted) return Promise.reject(signal.reason);
      if (state.used < limit) {
        state.used += 1;
        total += 1;
        return Promise.resolve(releaser(host, state));
      }
      return new Promise((resolve, reject) => {
        const grant = (): void => {
          signal?.removeEventListener('abort', onAbort);
          resolve(releaser(host, state));
        };
        const onAbort = (): void => {
          const at = state.waiters.indexOf(grant);
          if (at >= 0) state.waiters.splice(at, 1);
          reject(signal?.reason);
        };
        state.waiters.push(grant);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    },
    inUse: (host) => hosts.get(host)?.used ?? 0,
    total: () => total,
  };
}
