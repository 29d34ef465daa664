import { closeSync, constants, openSync, readSync } from 'node:fs';
import type { Hash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { createDigestHash, HASH_READ_BYTES } from './file-digest.js';
import type { CursorMessage, CursorReply } from './hash-cursor.js';

/**
 * The hash cursors' thread: reads each temp file's written prefix back (from the page cache) and hashes
 * it. Reads are synchronous, so each cursor's messages are handled strictly in the order they came.
 */

interface OpenCursor {
  fd: number;
  hash: Hash;
  hashed: number;
  failed: boolean;
}

const cursors = new Map<number, OpenCursor>();
const buffer = Buffer.allocUnsafe(HASH_READ_BYTES);
const port = parentPort!;

function reply(message: CursorReply): void {
  port.postMessage(message);
}

function hashUpTo(cursor: OpenCursor, to: number): void {
  while (cursor.hashed < to) {
    const n = readSync(cursor.fd, buffer, 0, Math.min(buffer.length, to - cursor.hashed), cursor.hashed);
    if (n <= 0) throw new Error(`temp file ended at ${cursor.hashed} before ${to}`);
    cursor.hash.update(buffer.subarray(0, n));
    cursor.hashed += n;
  }
}

function handle(message: CursorMessage): void {
  if (message.op === 'open') {
    const fd = openSync(message.path, constants.O_RDONLY | constants.O_NOFOLLOW);
    cursors.set(message.id, { fd, hash: createDigestHash(message.algorithm, message.size), hashed: 0, failed: false });
    return;
  }
  const cursor = cursors.get(message.id);
  if (!cursor) return;
  if (message.op === 'close') {
    closeSync(cursor.fd);
    cursors.delete(message.id);
    return;
  }
  if (cursor.failed) return;
  hashUpTo(cursor, message.to);
  if (message.op === 'finish') {
    const hex = cursor.hash.digest('hex');
    closeSync(cursor.fd);
    cursors.delete(message.id);
    reply({ id: message.id, hashed: cursor.hashed, hex });
  }
}

port.on('message', (message: CursorMessage) => {
  try {
    handle(message);
  } catch (error) {
    const cursor = cursors.get(message.id);
    if (cursor) cursor.failed = true;
    reply({ id: message.id, error: error instanceof Error ? error.message : String(error) });
  }
});
