import { Worker } from 'node:worker_threads';
import { ModelfetchError } from '../core/errors.js';
import type { FileDigest } from '../core/types.js';

/**
 * Hashes a temp file's contiguous finished prefix as it grows, on a worker thread that reads the
 * written bytes back (from the page cache), so network and writes keep one core and hashing gets
 * the other. The digest is ready moment the last byte lands. Resumed bytes are read back and hashed
 * like any other, so a resumed file is verified end to end.
 *
 * One worker serves every cursor in the process; it is unref'ed while idle.
 */

export type HashAlgorithm = FileDigest['algorithm'];

// Plain CommonJS so it runs the same from source (tsx, vitest) and from the build.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const crypto = require('node:crypto');
const cursors = new Map();
const buf = Buffer.allocUnsafe(4 * 1024 * 1024);
parentPort.on('message', (msg) => {
  const c = cursors.get(msg.id);
  try {
    if (msg.op === 'open') {
      const fd = fs.openSync(msg.path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
      const hash = crypto.createHash(msg.algorithm === 'git-sha1' ? 'sha1' : 'sha256');
      if (msg.algorithm === 'git-sha1') hash.update('blob ' + msg.size + '\\0');
      cursors.set(msg.id, { fd, hash, hashed: 0, failed: false });
      return;
    }
    if (!c) return;
    if (msg.op === 'close') {
      fs.closeSync(c.fd);
      cursors.delete(msg.id);
      return;
    }
    if (c.failed) return;
    if (msg.op === 'to' || msg.op === 'finish') {
      while (c.hashed < msg.to) {
        const n = fs.readSync(c.fd, buf, 0, Math.min(buf.length, msg.to - c.hashed), c.hashed);
        if (n <= 0) throw new Error('temp file ended at ' + c.hashed + ' before ' + msg.to);
        c.hash.update(buf.subarray(0, n));
        c.hashed += n;
      }
    }
    if (msg.op === 'finish') {
      const hex = c.hash.digest('hex');
      fs.closeSync(c.fd);
      cursors.delete(msg.id);
      parentPort.postMessage({ id: msg.id, hashed: c.hashed, hex });
    }
  } catch (error) {
    if (c) c.failed = true;
    parentPort.postMessage({ id: msg.id, error: String(error && error.message || error) });
  }
});
`;

interface Reply {
  id: number;
  hashed?: number;
  hex?: string;
  error?: string;
}

interface Pending {
  resolve: (hex: string) => void;
  reject: (error: Error) => void;
}

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
  const created = new Worker(WORKER_SOURCE, { eval: true });
  created.on('message', (reply: Reply) => {
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
    const target = hashWorker();
    retain();
    target.postMessage({ op: 'open', id: cursor.id, path, algorithm, size: size ?? 0 });
    return cursor;
  }

  /** Bytes [0, contiguous) are written; hash them. Never goes backwards. */
  advance(contiguous: number): void {
    if (this.closed || contiguous <= this.sent) return;
    this.sent = contiguous;
    hashWorker().postMessage({ op: 'to', id: this.id, to: contiguous });
  }

  /** Hashes up to `size` and returns the hex digest. */
  finish(size: number): Promise<string> {
    if (this.closed) return Promise.reject(new Error('hash cursor already closed'));
    this.closed = true;
    const failure = failures.get(this.id);
    if (failure !== undefined) {
      failures.delete(this.id);
      releaseOne();
      hashWorker().postMessage({ op: 'close', id: this.id });
      return Promise.reject(new ModelfetchError('ERR_IO', `Hashing the download failed: ${failure}`));
    }
    return new Promise<string>((resolve, reject) => {
      waiting.set(this.id, { resolve, reject });
      hashWorker().postMessage({ op: 'finish', id: this.id, to: size });
    })
      .catch((error: unknown) => {
        failures.delete(this.id);
        hashWorker().postMessage({ op: 'close', id: this.id });
        throw new ModelfetchError('ERR_IO', `Hashing the download failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
      })
      .finally(releaseOne);
  }

  /** Stops hashing without a result (failed or restarted download). */
  dispose(): void {
    if (this.closed) return;
    this.closed = true;
    failures.delete(this.id);
    hashWorker().postMessage({ op: 'close', id: this.id });
    releaseOne();
  }
}
