import { join } from 'node:path';
import { commitBlob } from '../../cache/blob-store.js';
import type { CommitOutcome } from '../../cache/atomic.js';
import type { RepoPaths } from '../../cache/layout.js';
import { makeRealFolders, removeUnder } from '../../cache/safe-path.js';
import { isModelfetchError, ModelfetchError } from '../../core/errors.js';
import { hashFile, matchesDigest } from '../../core/hash/file-digest.js';
import type { FileDigest } from '../../core/types.js';
import type { SwarmDownloadJob, SwarmEngine, SwarmProgress, SwarmSeeding, SwarmTransfer } from './engine.js';
import type { RangeReader } from '../range-read.js';
import { finishOverHttp } from './finish-over-http.js';
import { parseTorrentFile, pieceRange } from './torrent.js';

export interface SwarmFetchOptions extends Pick<SwarmDownloadJob, 'webSeeds' | 'peers' | 'onPieceRejected' | 'onPeerDropped' | 'onReceived'> {
  /** Give up (ERR_STALL) when no piece was verified for this long. Default: never. */
  stallMs?: number;
  /**
   * The end game: give up (ERR_STALL) sooner, after this long, when only the last ENDGAME_PIECES are
   * missing and none of them verifies (a slow or starved peer holding them; webtorrent 1.9 has no end
   * game of its own). With `finish` they then come over HTTP. Default: no end game.
   */
  endgameMs?: number;
  signal?: AbortSignal;
  /** Told the transfer once it starts (for live peer counts). */
  onTransfer?: (transfer: SwarmTransfer) => void;
  /** The transfer's progress a few times a second while it runs, and once when every piece is in. */
  onProgress?: (progress: SwarmProgress) => void;
  /** Once the blob is committed, keep the transfer in the swarm as its seed (returned) instead of leaving. */
  keepSeeding?: boolean;
  /**
   * When the swarm stalls (`stallMs`), fetch the pieces still missing from the web seeds over HTTP
   * with `read` (their bytes count as from web seeds), keeping the verified ones; `onStart` is told
   * why and how much. Without it a stall rejects (ERR_STALL) and the partial file is removed.
   */
  finish?: { read: RangeReader; onStart?: (why: ModelfetchError, pieces: number, bytes: number) => void };
}

/** Pieces left at which a download whose pieces stop verifying for `endgameMs` is in its end game. */
const ENDGAME_PIECES = 2;

/** How often a running transfer's progress is told (a progress line redraws at most ten times a second). */
const PROGRESS_EVERY_MS = 200;

/** Resolves when the transfer is done; rejects when it stalls for `stallMs` (or `endgameMs` near the end) or `signal` aborts. */
function watch(transfer: SwarmTransfer, name: string, pieceLength: number, options: SwarmFetchOptions): Promise<void> {
  const { stallMs, endgameMs, signal } = options;
  if (stallMs === undefined && endgameMs === undefined && !signal) return transfer.done;
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const stopped = new Promise<never>((_, reject) => {
    if (signal) {
      onAbort = () => reject(signal.reason instanceof Error ? signal.reason : new ModelfetchError('ERR_ABORTED', `The swarm download of ${name} was cancelled`));
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    }
    const limits = [stallMs, endgameMs].filter((ms): ms is number => ms !== undefined);
    if (limits.length === 0) return;
    let verified = -1;
    let since = Date.now();
    timer = setInterval(() => {
      const { verified: now, length } = transfer.progress();
      const quiet = Date.now() - since;
      const left = Math.ceil((length - now) / pieceLength);
      if (now !== verified) {
        verified = now;
        since = Date.now();
      } else if (stallMs !== undefined && quiet >= stallMs) {
        reject(new ModelfetchError('ERR_STALL', `The swarm download of ${name} made no progress for ${Math.round(stallMs / 1000)} s`));
      } else if (endgameMs !== undefined && left <= ENDGAME_PIECES && quiet >= endgameMs) {
        reject(new ModelfetchError('ERR_STALL', `The last ${left} piece${left === 1 ? '' : 's'} of the swarm download of ${name} made no progress for ${Math.round(endgameMs / 1000)} s`));
      }
    }, Math.max(10, Math.min(1000, Math.min(...limits) / 4)));
  });
  return Promise.race([transfer.done, stopped]).finally(() => {
    clearInterval(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  });
}

/**
 * One blob through a swarm into the cache. The engine checks each piece's SHA-1 (a bad piece is
 * discarded and counted); the finished file is then hashed as its digest names it, and only a match
 * is committed into blobs/. The SHA-256 check stays the final gate whatever the peers and web seeds
 * sent, or whatever the torrent said.
 */
export async function swarmFetchBlob(
  engine: SwarmEngine,
  repo: RepoPaths,
  file: { digest: FileDigest; size: number },
  torrent: Buffer,
  options: SwarmFetchOptions = {},
): Promise<{ outcome: CommitOutcome; progress: SwarmProgress; seeding?: SwarmSeeding }> {
  const { info, webSeeds: torrentWebSeeds } = parseTorrentFile(torrent);
  if (info.name !== file.digest.hex || info.length !== file.size) {
    throw new ModelfetchError('ERR_BAD_RESPONSE', `The torrent offered for blob ${file.digest.hex} (${file.size} bytes) describes ${info.name.slice(0, 80)} (${info.length} bytes)`, {
      hint: 'The mirror served a torrent for another file; download the file over HTTP instead.',
    });
  }
  const folder = repo.swarmPartialDir(file.digest);
  const target = join(folder, file.digest.hex);
  await makeRealFolders(repo.root, folder);
  let kept = false;
  try {
    const { webSeeds, peers, onPieceRejected, onPeerDropped, onReceived } = options;
    const transfer = engine.download({ torrent, targetPath: target, webSeeds, peers, onPieceRejected, onPeerDropped, onReceived });
    options.onTransfer?.(transfer);
    const { onProgress } = options;
    const ticker = onProgress && setInterval(() => onProgress(transfer.progress()), PROGRESS_EVERY_MS);
    ticker?.unref();
    let stopped = false;
    try {
      let overHttp = 0;
      try {
        await watch(transfer, file.digest.hex, info.pieceLength, options);
      } catch (error) {
        const { finish } = options;
        if (!finish || !isModelfetchError(error) || error.code !== 'ERR_STALL') throw error;
        // The verified pieces stay; the rest comes from the web seeds over HTTP (finish-over-http.ts).
        const missing = transfer.missingPieces();
        await transfer.stop();
        stopped = true;
        const seeds = [...new Set([...(webSeeds ?? []), ...(torrentWebSeeds ?? [])])];
        const bytes = missing.reduce((sum, index) => {
          const { start, end } = pieceRange(info, index);
          return sum + end - start;
        }, 0);
        finish.onStart?.(error, missing.length, bytes);
        overHttp = await finishOverHttp(target, info, missing, seeds, finish.read, (bytes) => onReceived?.('webSeed', bytes));
      } finally {
        clearInterval(ticker);
      }
      const progress = stopped ? { ...transfer.progress(), verified: info.length } : transfer.progress();
      progress.fromWebSeeds += overHttp;
      onProgress?.(progress);
      // Peers go on taking pieces from the finished transfer while the file is hashed and committed.
      const actual = await hashFile(target, file.digest.algorithm);
      if (!matchesDigest(actual, file.digest, file.size)) {
        throw new ModelfetchError('ERR_INTEGRITY', `The file assembled from the swarm for blob ${file.digest.hex} has digest ${actual.hex}; it was discarded`, {
          hint: 'A peer or web seed sent consistent but wrong data; download the file over HTTP instead.',
        });
      }
      const outcome = await commitBlob(repo, file.digest, target);
      // Kept only when its file became the blob: one committed meanwhile by another process leaves ours
      // unlinked, and seeding from it would hold its disk space for as long as the seed runs.
      if (!options.keepSeeding || stopped || outcome !== 'committed') return { outcome, progress };
      kept = true;
      return { outcome, progress, seeding: transfer.keepSeeding() };
    } finally {
      if (!kept && !stopped) await transfer.stop();
    }
  } finally {
    await removeUnder(repo.root, folder, { folder: true });
  }
}
