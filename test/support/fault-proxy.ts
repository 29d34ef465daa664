import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A TCP proxy on 127.0.0.1:0 that sits between a client and a loopback server and misbehaves on
 * demand, after toxiproxy's toxics. Each toxic works on one direction — `downstream` is server →
 * client (response bytes), `upstream` is client → server (request bytes) — and can be added or
 * removed while connections are open: every chunk consults the toxics active at that moment.
 * `toxicity` is the chance that a toxic applies to a given connection (drawn once per connection).
 */

export type Direction = 'upstream' | 'downstream';

export type Toxic =
  /** Delay every chunk by `latencyMs` ± `jitterMs`. */
  | { type: 'latency'; latencyMs: number; jitterMs?: number }
  /** Pace the stream at `bytesPerSec`. */
  | { type: 'bandwidth'; bytesPerSec: number }
  /** Cut chunks into slices of `averageSize` ± `sizeVariation` bytes, `delayMs` apart. */
  | { type: 'slicer'; averageSize: number; sizeVariation?: number; delayMs?: number }
  /** Forward `bytes` bytes on the connection in this direction, then close it cleanly. */
  | { type: 'limit_data'; bytes: number }
  /** Reset the connection (RST) `timeoutMs` after the first byte in this direction (0: at once). */
  | { type: 'reset_peer'; timeoutMs?: number }
  /** Stop forwarding; with `timeoutMs` > 0, close the connection that long after the data stopped. */
  | { type: 'timeout'; timeoutMs?: number };

export interface ToxicSpec {
  /** Unique name to remove it by; defaults to `${type}_${direction}`. */
  name?: string;
  direction: Direction;
  /** Probability 0..1 that a connection is affected. Default 1. */
  toxicity?: number;
  toxic: Toxic;
}

export interface ProxyCounters {
  connections: number;
  bytesUpstream: number;
  bytesDownstream: number;
  /** How many times each toxic type acted (a connection affected, a chunk delayed or sliced). */
  applied: Record<Toxic['type'], number>;
  resets: number;
  closes: number;
}

export interface FaultProxy {
  readonly origin: string;
  readonly port: number;
  readonly counters: ProxyCounters;
  addToxic(spec: ToxicSpec): string;
  removeToxic(name: string): void;
  clearToxics(): void;
  toxics(): ToxicSpec[];
  /** Faults that acted on a connection (resets, closes, timeouts, limits) plus delays and slices. */
  faultsInjected(): number;
  /** Drops every open connection (a reset), e.g. to end a stall. */
  resetAll(): void;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  server: Socket;
  /** Per-toxic decision for this connection (toxicity drawn once). */
  affected: Map<string, boolean>;
  closed: boolean;
}

function emptyCounters(): ProxyCounters {
  return {
    connections: 0,
    bytesUpstream: 0,
    bytesDownstream: 0,
    applied: { latency: 0, bandwidth: 0, slicer: 0, limit_data: 0, reset_peer: 0, timeout: 0 },
    resets: 0,
    closes: 0,
  };
}

export async function startFaultProxy(target: { host?: string; port: number }, options: { random?: () => number } = {}): Promise<FaultProxy> {
  const random = options.random ?? Math.random;
  const specs = new Map<string, ToxicSpec>();
  const pairs = new Set<Pair>();
  const counters = emptyCounters();

  const active = (pair: Pair, direction: Direction): Toxic[] => {
    const out: Toxic[] = [];
    for (const [name, spec] of specs) {
      if (spec.direction !== direction) continue;
      let hit = pair.affected.get(name);
      if (hit === undefined) {
        hit = random() < (spec.toxicity ?? 1);
        pair.affected.set(name, hit);
      }
      if (hit) out.push(spec.toxic);
    }
    return out;
  };

  const reset = (pair: Pair): void => {
    if (pair.closed) return;
    pair.closed = true;
    counters.resets += 1;
    pair.client.resetAndDestroy();
    pair.server.resetAndDestroy();
  };

  const closeCleanly = (pair: Pair): void => {
    if (pair.closed) return;
    pair.closed = true;
    counters.closes += 1;
    pair.client.end();
    pair.server.destroy();
  };

  /** Pumps one direction chunk by chunk, in order, applying the toxics active for each chunk. */
  const pump = (pair: Pair, from: Socket, to: Socket, direction: Direction): void => {
    const queue: Buffer[] = [];
    let running = false;
    let forwarded = 0;
    let resetTimer: NodeJS.Timeout | undefined;
    let timeoutTimer: NodeJS.Timeout | undefined;
    let timedOut = false;
    let ended = false;

    const write = async (chunk: Buffer): Promise<void> => {
      if (pair.closed || chunk.length === 0) return;
      forwarded += chunk.length;
      if (direction === 'upstream') counters.bytesUpstream += chunk.length;
      else counters.bytesDownstream += chunk.length;
      if (!to.write(chunk)) await new Promise<void>((resolve) => { to.once('drain', resolve); to.once('close', resolve); });
    };

    const handle = async (chunk: Buffer): Promise<void> => {
      let pending = chunk;
      for (const toxic of active(pair, direction)) {
        if (pair.closed) return;
        switch (toxic.type) {
          case 'timeout':
            if (!timedOut) {
              timedOut = true;
              counters.applied.timeout += 1;
              if (toxic.timeoutMs) timeoutTimer = setTimeout(() => closeCleanly(pair), toxic.timeoutMs);
            }
            return; // dropped
          case 'reset_peer':
            if (!resetTimer) {
              counters.applied.reset_peer += 1;
              resetTimer = setTimeout(() => reset(pair), toxic.timeoutMs ?? 0);
              if (!toxic.timeoutMs) {
                reset(pair);
                return;
              }
            }
            break;
          case 'latency': {
            counters.applied.latency += 1;
            const jitter = toxic.jitterMs ? (random() * 2 - 1) * toxic.jitterMs : 0;
            await sleep(Math.max(0, toxic.latencyMs + jitter));
            break;
          }
          case 'bandwidth':
            counters.applied.bandwidth += 1;
            await sleep((pending.length / toxic.bytesPerSec) * 1000);
            break;
          case 'limit_data': {
            const room = toxic.bytes - forwarded;
            if (room < pending.length) {
              counters.applied.limit_data += 1;
              await write(pending.subarray(0, Math.max(0, room)));
              closeCleanly(pair);
              return;
            }
            break;
          }
          case 'slicer': {
            counters.applied.slicer += 1;
            let offset = 0;
            while (offset < pending.length && !pair.closed) {
              const variation = toxic.sizeVariation ? Math.round((random() * 2 - 1) * toxic.sizeVariation) : 0;
              const size = Math.max(1, toxic.averageSize + variation);
              await write(pending.subarray(offset, offset + size));
              offset += size;
              if (toxic.delayMs) await sleep(toxic.delayMs);
            }
            pending = Buffer.alloc(0);
            break;
          }
        }
      }
      await write(pending);
    };

    const drain = async (): Promise<void> => {
      running = true;
      try {
        while (queue.length > 0 && !pair.closed) await handle(queue.shift()!);
      } catch {
        reset(pair);
      } finally {
        running = false;
        if (!pair.closed) from.resume();
      }
      if (ended && queue.length === 0 && !pair.closed) to.end();
    };

    from.on('data', (chunk: Buffer) => {
      queue.push(chunk);
      from.pause();
      if (!running) void drain();
    });
    // A source that ends (or closes) ends the other side once the queued bytes are out.
    const finish = (): void => {
      ended = true;
      if (!running && queue.length === 0 && !pair.closed) to.end();
    };
    from.on('end', finish);
    from.on('close', finish);
    const stopTimers = (): void => {
      clearTimeout(resetTimer);
      clearTimeout(timeoutTimer);
    };
    from.on('close', stopTimers);
    to.on('close', stopTimers);
  };

  const server: Server = createServer((client) => {
    counters.connections += 1;
    const upstream = createConnection({ host: target.host ?? '127.0.0.1', port: target.port });
    const pair: Pair = { client, server: upstream, affected: new Map(), closed: false };
    pairs.add(pair);
    const teardown = (): void => {
      if (!pair.closed) {
        pair.closed = true;
        client.destroy();
        upstream.destroy();
      }
      pairs.delete(pair);
    };
    client.on('error', teardown);
    upstream.on('error', () => reset(pair));
    client.on('close', teardown);
    pump(pair, client, upstream, 'upstream');
    pump(pair, upstream, client, 'downstream');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    origin: `http://127.0.0.1:${port}`,
    port,
    counters,
    addToxic: (spec) => {
      const name = spec.name ?? `${spec.toxic.type}_${spec.direction}`;
      specs.set(name, spec);
      for (const pair of pairs) pair.affected.delete(name);
      return name;
    },
    removeToxic: (name) => void specs.delete(name),
    clearToxics: () => specs.clear(),
    toxics: () => [...specs.values()],
    faultsInjected: () => Object.values(counters.applied).reduce((a, b) => a + b, 0),
    resetAll: () => {
      for (const pair of pairs) reset(pair);
    },
    close: async () => {
      for (const pair of pairs) {
        reset(pair);
        // A pair closed cleanly earlier may still hold a half-open client socket: server.close would wait on it.
        pair.client.destroy();
        pair.server.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
