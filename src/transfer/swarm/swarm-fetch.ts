import { join } from 'node:path';
import { commitBlob } from '../../cache/blob-store.js';
import type { CommitOutcome } from '../../cache/atomic.js';
import type { RepoPaths } from '../../cache/layout.js';
import { makeRealFolders, removeUnder } from '../../cache/safe-path.js';
import { ModelfetchError } from '../../core/errors.js';
import { hashFile, matchesDigest } from '../../core/hash/file-digest.js';
import type { FileDigest } from '../../core/types.js';
import type { SwarmEngine, SwarmProgress } from './engine.js';
import { parseTorrentFile } from './torrent.js';

export interface SwarmFetchOptions {
  webSeeds?: string[];
  peers?: string[];
  onPieceRejected?: (pieceIndex: number) => void;
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
): Promise<{ outcome: CommitOutcome; progress: SwarmProgress }> {
  const { info } = parseTorrentFile(torrent);
  if (info.name !== file.digest.hex || info.length !== file.size) {
    throw new ModelfetchError('ERR_BAD_RESPONSE', `The torrent offered for blob ${file.digest.hex} (${file.size} bytes) describes ${info.name.slice(0, 80)} (${info.length} bytes)`, {
      hint: 'The mirror served a torrent for another file; download the file over HTTP instead.',
    });
  }
  const folder = repo.swarmPartialDir(file.digest);
  const target = join(folder, file.digest.hex);
  await makeRealFolders(repo.root, folder);
  try {
    const transfer = engine.download({ torrent, targetPath: target, webSeeds: options.webSeeds, peers: options.peers, onPieceRejected: options.onPieceRejected });
    try {
      await transfer.done;
    } finally {
      await transfer.stop();
    }
    const progress = transfer.progress();
    const actual = await hashFile(target, file.digest.algorithm);
    if (!matchesDigest(actual, file.digest, file.size)) {
      throw new ModelfetchError('ERR_INTEGRITY', `The file assembled from the swarm for blob ${file.digest.hex} has digest ${actual.hex}; it was discarded`, {
        hint: 'A peer or web seed sent consistent but wrong data; download the file over HTTP instead.',
      });
    }
    return { outcome: await commitBlob(repo, file.digest, target), progress };
  } finally {
    await removeUnder(repo.root, folder, { folder: true });
  }
}
