import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { ModelfetchError } from '../core/errors.js';

/**
 * Hashes whole files on worker threads, one file per worker at a time, so that a cache of several
 * large files uses every core. Each worker reads with one large reused buffer (never the whole file)
 * and skips the atime update where the kernel allows, so verifying does not look like a use to gc.
 *
 * The worker is plain CommonJS evaluated from a string: it then runs the same way from source (tsx),
 * from the build and under the test runner, without a loader.
 */

export type HashAlgorithm = 'sha256' | 'git-sha1';

export interface HashOutcome {
  hex: string;
  /** Bytes read. */
  size: number;
}

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { openSync, readSync, closeSync, fstatSync, constants } = require('node:fs');
const { createHash } = require('node:crypto');
const buffer = Buffer.allocUnsafe(${4 << 20});
const REPORT_EVERY = ${64 << 20};
function openQuietly(path) {
  if (constants.O_NOATIME) {
    try { return openSync(path, constants.O_RDONLY | constants.O_NOATIME); } catch (error) { if (error.code !== 'EPERM') throw error; }
  }
  return openSync(path, constants.O_RDONLY);
}
parentPort.on('message', ({ id, path, algorithm }) => {
  let fd;
  try {
    fd = openQuietly(path);
    const hash = createHash(algorithm === 'sha256' ? 'sha256' : 'sha1');
    if (algorithm === 'git-sha1') hash.update('blob ' + fstatSync(fd).size + '\\0');
    let size = 0;
    let unreported = 0;
    for (;;) {
      const n = readSync(fd, buffer, 0, buffer.length, null);
      if (n === 0) break;
      hash.update(buffer.subarray(0, n));
      size += n;
      unreported += n;
      if (unreported >= REPORT_EVERY) { parentPort.postMessage({ id, progress: unreported }); unreported = 0; }
    }
    parentPort.postMessage({ id, progress: unreported, hex: hash.digest('hex'), size });
  } catch (error) {
    parentPort.postMessage({ id, error: { code: error.code, message: error.message } });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
});
`;

interface WorkerReply {
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
  private readonly queue: Array<{ id: number; path: string; algorithm: HashAlgorithm }> = [];
  private readonly pending = new Map<number, Pending>();
  private readonly busy = new Map<Worker, number>();
  private nextId = 0;

  constructor(readonly size: number = availableParallelism()) {
    for (let i = 0; i < Math.max(1, size); i += 1) {
      const worker = new Worker(WORKER_SOURCE, { eval: true });
      worker.on('message', (reply: WorkerReply) => this.onReply(worker, reply));
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

  private onReply(worker: Worker, reply: WorkerReply): void {
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
