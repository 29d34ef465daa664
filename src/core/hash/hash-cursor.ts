import type { Worker } from 'node:worker_threads';
import { ModelfetchError } from '../errors.js';
import type { HashAlgorithm } from './file-digest.js';
import { startWorker } from './start-worker.js';

/**
 * Hashes a temp file's contiguous finished prefix as it grows, on a worker thread
 * (hash-cursor-worker.ts) that reads the written bytes back (from the page cache), so network and
 * writes keep one core and hashing gets the other. The digest is ready moment the last byte lands.
 * Resumed bytes are read back and hashed like any other, so a resumed file is verified end to end.
 *
 * One worker serves every cursor in the process; it is started on first use (or by warmHashWorker)
 * and unref'ed while idle.
 */

export type { HashAlgorithm };

/** What a cursor sends the worker. `size` is the whole file's, which a git blob SHA-1 hashes first. */
export type CursorMessage =
  | { op: 'open'; id: number; path: string; algorithm: HashAlgorithm; size: number }
  | { op: 'to' | 'finish'; id: number; to: number }
  | { op: 'close'; id: number };

/** What the worker sends back: the digest once a cursor finishes, or the error that stopped it. */
export interface CursorReply {
  id: number;
  hashed?: number;
  hex?: string;
  error?: string;
}

interface Pending {
  resolve: (hex: string) => void;
  reject: (error: Error) => void;
}

const ADVANCE_STEP_BYTES = 4 * 1024 * 1024;

let worker: Worker | undefined;
let nextId = 1;
let open = 0;
const waiting = new Map<number, Pending>();
const failures = new Map<number, string>();

/** Starts the hashing worker ahead of need, so its start-up overlaps the first requests. */
export function warmHashWorker(): void {
  hashWorker();
}

function hashWorker(): Worker {
  if (worker) return worker;
  const created = startWorker(import.meta.url, 'hash-cursor-worker');
  created.on('message', (reply: CursorReply) => {
    const pending = waiting.get(reply.id);
    if (reply.error !== undefined) {
      if (pending) {
        waiting.delete(reply.id);
        pending.reject(new Error(reply.error));
      } else {
        failures.set(reply.id, reply.error);
      }
      return;
    }
    if (pending && reply.hex !== undefined) {
      waiting.delete(reply.id);
      pending.resolve(reply.hex);
    }
  });
  created.on('error', (error) => {
    for (const pending of waiting.values()) pending.reject(error);
    waiting.clear();
    worker = undefined;
  });
  created.on('exit', () => {
    if (worker === created) worker = undefined;
  });
  created.unref();
  worker = created;
  return created;
}

function send(message: CursorMessage): void {
  hashWorker().postMessage(message);
}

function retain(): void {
  open += 1;
  if (open === 1) worker?.ref();
}

function releaseOne(): void {
  open -= 1;
  if (open === 0) worker?.unref();
}

/** The hashing side of one file download. */
export class HashCursor {
  private readonly id = nextId++;
  private sent = 0;
  private closed = false;

  private constructor(readonly algorithm: HashAlgorithm) {}

  /** Starts hashing `path` (not yet fully written) from offset 0. `size` is needed by git blob SHA-1. */
  static open(path: string, algorithm: HashAlgorithm, size: number | undefined): HashCursor {
    if (algorithm === 'git-sha1' && size === undefined) {
      throw new ModelfetchError('ERR_BAD_RESPONSE', 'A git blob SHA-1 needs the file size up front, and the server did not send it');
    }
    const cursor = new HashCursor(algorithm);
    hashWorker();
    retain();
    send({ op: 'open', id: cursor.id, path, algorithm, size: size ?? 0 });
    return cursor;
  }

  /**
   * Bytes [0, contiguous) are written; hash them. Never goes backwards. The worker is told in steps of
   * at least ADVANCE_STEP_BYTES (finish covers the rest): each message wakes its thread, and a wake per
   * 64 KiB Xet chunk or per 1 MiB write costs the main thread more than the step delays the digest.
   */
  advance(contiguous: number): void {
    if (this.closed || contiguous - this.sent < ADVANCE_STEP_BYTES) return;
    this.sent = contiguous;
    send({ op: 'to', id: this.id, to: contiguous });
  }

  /** Hashes up to `size` and returns the hex digest. */
  finish(size: number): Promise<string> {
    if (this.closed) return Promise.reject(new Error('hash cursor already closed'));
    this.closed = true;
    const failure = failures.get(this.id);
    if (failure !== undefined) {
      failures.delete(this.id);
      releaseOne();
      send({ op: 'close', id: this.id });
      return Promise.reject(new ModelfetchError('ERR_IO', `Hashing the download failed: ${failure}`));
    }
    return new Promise<string>((resolve, reject) => {
      waiting.set(this.id, { resolve, reject });
      send({ op: 'finish', id: this.id, to: size });
    })
      .catch((error: unknown) => {
        failures.delete(this.id);
        send({ op: 'close', id: this.id });
        throw new ModelfetchError('ERR_IO', `Hashing the download failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
      })
      .finally(releaseOne);
  }

  /** Stops hashing without a result (failed or restarted download). */
  dispose(): void {
    if (this.closed) return;
    this.closed = true;
    failures.delete(this.id);
    send({ op: 'close', id: this.id });
    releaseOne();
  }
}
