import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { ModelfetchError } from '../errors.js';
import type { HashAlgorithm, HashedFile } from './file-digest.js';
import { startWorker } from './start-worker.js';

/**
 * Hashes whole files on worker threads, one file per worker at a time, so that a cache of several
 * large files uses every core. Each worker (hash-pool-worker.ts) hashes through file-digest.ts: one
 * large reused buffer (never the whole file), and no atime update where the kernel allows, so
 * verifying does not look like a use to gc.
 */

export type HashOutcome = HashedFile;

/** What the pool sends a worker: one file to hash. */
export interface PoolTask {
  id: number;
  path: string;
  algorithm: HashAlgorithm;
}

/** What a worker sends back: progress (bytes read since the last report), then the digest or an error. */
export interface PoolReply {
  id: number;
  progress?: number;
  hex?: string;
  size?: number;
  error?: { code?: string; message: string };
}

interface Pending {
  path: string;
  resolve: (outcome: HashOutcome) => void;
  reject: (error: Error) => void;
  onBytes?: (bytes: number) => void;
}

export class HashPool {
  private readonly idle: Worker[] = [];
  private readonly all: Worker[] = [];
  private readonly queue: PoolTask[] = [];
  private readonly pending = new Map<number, Pending>();
  private readonly busy = new Map<Worker, number>();
  private nextId = 0;

  constructor(readonly size: number = availableParallelism()) {
    for (let i = 0; i < Math.max(1, size); i += 1) {
      const worker = startWorker(import.meta.url, 'hash-pool-worker');
      worker.on('message', (reply: PoolReply) => this.onReply(worker, reply));
      worker.on('error', (error) => this.onCrash(worker, error));
      worker.unref();
      this.all.push(worker);
      this.idle.push(worker);
    }
  }

  /** Hashes one file; `onBytes` gets the bytes read since its last call. */
  hash(path: string, algorithm: HashAlgorithm, onBytes?: (bytes: number) => void): Promise<HashOutcome> {
    const id = this.nextId++;
    return new Promise<HashOutcome>((resolve, reject) => {
      this.pending.set(id, { path, resolve, reject, ...(onBytes && { onBytes }) });
      this.queue.push({ id, path, algorithm });
      this.dispatch();
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.all.map((worker) => worker.terminate()));
  }

  private dispatch(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const worker = this.idle.pop()!;
      const task = this.queue.shift()!;
      this.busy.set(worker, task.id);
      worker.ref();
      worker.postMessage(task);
    }
  }

  private onReply(worker: Worker, reply: PoolReply): void {
    const pending = this.pending.get(reply.id);
    if (!pending) return;
    if (reply.progress) pending.onBytes?.(reply.progress);
    if (reply.hex === undefined && reply.error === undefined) return;
    this.pending.delete(reply.id);
    this.busy.delete(worker);
    worker.unref();
    this.idle.push(worker);
    if (reply.error) {
      const code = reply.error.code === 'ENOENT' ? 'ERR_NOT_FOUND' : 'ERR_IO';
      pending.reject(new ModelfetchError(code, `Cannot read ${pending.path}: ${reply.error.message}`));
    } else {
      pending.resolve({ hex: reply.hex!, size: reply.size ?? 0 });
    }
    this.dispatch();
  }

  private onCrash(worker: Worker, error: Error): void {
    const id = this.busy.get(worker);
    const pending = id === undefined ? undefined : this.pending.get(id);
    if (id !== undefined) this.pending.delete(id);
    pending?.reject(new ModelfetchError('ERR_IO', `Hash worker failed on ${pending.path}: ${error.message}`, { cause: error }));
    for (const [queuedId, waiting] of this.pending) {
      this.pending.delete(queuedId);
      waiting.reject(new ModelfetchError('ERR_IO', `Hash worker failed: ${error.message}`, { cause: error }));
    }
  }
}
