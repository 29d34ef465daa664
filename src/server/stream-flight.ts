import { open, type FileHandle } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import type { Flight } from './flights.js';
import { giveBuffer, takeBuffer, untilTaken, type SendTimeout } from './send-file.js';

/**
 * Streams a blob that is still downloading to a client: the contiguous written prefix as it grows,
 * but never the last byte before the whole blob is verified. A client therefore never holds a
 * complete file that is wrong: if verification fails, or the download restarts below what was
 * sent, the response is destroyed and ends short.
 *
 * The temp file is read through one open handle, so the bytes stay readable after the verified
 * file is moved into blobs/ (same inode) or a failed one is deleted.
 *
 * Response headers must be set (not sent) by the caller. Resolves 'use-blob' when nothing was sent
 * because the temp file had already become the blob: the caller then serves the blob. Rejects with
 * the download's error when it failed before any byte was sent, so the caller can answer 502/504.
 */
export async function streamFlight(res: ServerResponse, flight: Flight, onBytes: (n: number) => void, sendTimeout?: SendTimeout): Promise<StreamOutcome> {
  const total = flight.total;
  let sent = 0;
  let handle: FileHandle | undefined;
  flight.waiting++;
  const closed = new Promise<void>((resolve) => res.once('close', () => resolve()));
  let clientGone = false;
  void closed.then(() => {
    clientGone = true;
  });
  // From the bounded pool: a client that reads nothing must not pin a large buffer each.
  const buffer = takeBuffer();
  try {
    while (sent < total) {
      if (clientGone) return 'streamed';
      if (flight.state === 'failed' && sent === 0 && !res.headersSent) {
        // Nothing went out yet: the client gets a proper error answer (502/504 from the cause), not a cut connection.
        for (const name of res.getHeaderNames()) res.removeHeader(name);
        throw flight.error;
      }
      if (flight.state === 'failed' || flight.contiguous < sent) {
        res.destroy();
        return 'streamed';
      }
      // Verified before anything was streamed (e.g. another process held the download): serve the blob.
      if (flight.state === 'verified' && !handle) return 'use-blob';
      // Everything but the last byte may go out before verification; the last once the digest matched,
      // without waiting for the mirror's own fsync and commit.
      const limit = flight.state === 'verified' || flight.bytesVerified ? total : Math.min(flight.contiguous, total - 1);
      if (limit <= sent || flight.tempPath === undefined) {
        await Promise.race([flight.changed(), closed]);
        continue;
      }
      if (!handle) {
        try {
          handle = await open(flight.tempPath, 'r');
        } catch {
          // The temp file already became the blob (or vanished): wait for the verdict; the caller serves the blob.
          if (flight.state === 'running') await Promise.race([flight.done.catch(() => {}), closed]);
          if (flight.state === 'verified') return 'use-blob';
          res.destroy();
          return 'streamed';
        }
      }
      const want = Math.min(buffer.length, limit - sent);
      const { bytesRead } = await handle.read(buffer, 0, want, sent);
      if (bytesRead === 0) {
        await Promise.race([flight.changed(), closed]);
        continue;
      }
      // A copy, because the buffer is reused while the socket may still hold the chunk.
      const chunk = Buffer.from(buffer.subarray(0, bytesRead));
      sent += bytesRead;
      onBytes(bytesRead);
      if (!res.write(chunk)) await untilTaken(new Promise<void>((resolve) => res.once('drain', () => resolve())), closed, res, sendTimeout);
    }
    res.end();
    return 'streamed';
  } finally {
    // Only read into, never handed to the socket (chunks are copies): safe to reuse.
    giveBuffer(buffer);
    flight.waiting--;
    await handle?.close().catch(() => {});
  }
}

export type StreamOutcome = 'streamed' | 'use-blob';
