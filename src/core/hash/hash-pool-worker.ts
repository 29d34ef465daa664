import { parentPort } from 'node:worker_threads';
import { HASH_READ_BYTES, hashFile } from './file-digest.js';
import type { PoolReply, PoolTask } from './hash-pool.js';

/** One thread of the hash pool: hashes the files it is sent, one at a time, through one reused buffer. */

const REPORT_EVERY = 64 << 20;
const buffer = Buffer.allocUnsafe(HASH_READ_BYTES);
const port = parentPort!;

function reply(message: PoolReply): void {
  port.postMessage(message);
}

port.on('message', ({ id, path, algorithm }: PoolTask) => {
  hashFile(path, algorithm, { buffer, reportEvery: REPORT_EVERY, onBytes: (progress) => reply({ id, progress }) }).then(
    ({ hex, size }) => reply({ id, hex, size }),
    (error: NodeJS.ErrnoException) => reply({ id, error: { ...(error.code !== undefined && { code: error.code }), message: error.message } }),
  );
});
