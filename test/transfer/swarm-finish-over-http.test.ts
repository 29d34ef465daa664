import { randomBytes } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RepoPaths } from '../../src/cache/layout.js';
import type { ModelfetchError } from '../../src/core/errors.js';
import { createRangeReader } from '../../src/transfer/range-read.js';
import { swarmFetchBlob } from '../../src/transfer/swarm/swarm-fetch.js';
import { PIECE_SIZE, torrentFile } from '../../src/transfer/swarm/torrent.js';
import type { FixtureServer } from '../support/fixture-server.js';
import { swarmBlob, swarmEngine } from '../support/swarm.js';

/**
 * A swarm download that stalls keeps the pieces it verified and fetches only the missing ones from
 * the web seed over HTTP, each checked against its SHA-1. The web seed here answers webtorrent's
 * first two piece requests and then holds every later one without a byte (a mirror link that died
 * for the swarm), while plain range reads still get answers.
 */

const PIECES = 6;
const isWebTorrent = (ua: string | string[] | undefined): boolean => String(ua).startsWith('WebTorrent/');

function stallWebTorrentAfter(webSeed: FixtureServer, pieces: number): void {
  let seen = 0;
  webSeed.addFault({ match: (req) => isWebTorrent(req.headers['user-agent']) && ++seen > pieces, fault: { stallAfterBytes: 0 } });
}

describe('a stalled swarm download finishes over HTTP', () => {
  it('fetches only the pieces it lacks from the web seed, keeps the verified ones, and commits the right blob', async () => {
    const content = randomBytes(PIECE_SIZE * (PIECES - 1) + 777);
    const { dir, file, info, webSeed, webSeedUrl } = await swarmBlob(content, 'mf-swarm-finish-');
    stallWebTorrentAfter(webSeed, 2);
    const repo = new RepoPaths(join(dir, 'cache'), 'model', 'org/name');
    const started: Array<{ why: string; pieces: number; bytes: number }> = [];
    const { outcome, progress } = await swarmFetchBlob(await swarmEngine(), repo, file, torrentFile(info, { webSeeds: [webSeedUrl] }), {
      stallMs: 1500,
      finish: { read: createRangeReader({ maxAttempts: 1 }), onStart: (why: ModelfetchError, pieces, bytes) => started.push({ why: why.code, pieces, bytes }) },
    });
    expect(outcome).toBe('committed');
    expect((await readFile(repo.blob(file.digest))).equals(content)).toBe(true);
    // Plain reads asked for exactly the missing pieces, not one of the two the swarm verified.
    const plain = webSeed.requests.filter((r) => !isWebTorrent(r.headers['user-agent']));
    const swarmed = webSeed.requests.filter((r) => isWebTorrent(r.headers['user-agent']) && r.bodyBytes > 0);
    expect(plain).toHaveLength(PIECES - 2);
    expect(swarmed).toHaveLength(2);
    const plainBytes = plain.reduce((sum, r) => sum + r.bodyBytes, 0);
    expect(plainBytes + swarmed.reduce((sum, r) => sum + r.bodyBytes, 0)).toBe(content.length);
    expect(new Set([...swarmed, ...plain].map((r) => String(r.headers.range))).size).toBe(PIECES);
    expect(started).toEqual([{ why: 'ERR_STALL', pieces: PIECES - 2, bytes: plainBytes }]);
    expect(progress.fromWebSeeds).toBeGreaterThanOrEqual(content.length);
    expect(progress.verified).toBe(content.length);
  });

  it('fetches the last two pieces over HTTP when they stop verifying for the end-game wait, long before the stall limit', async () => {
    const content = randomBytes(PIECE_SIZE * (PIECES - 1) + 777);
    const { dir, file, info, webSeed, webSeedUrl } = await swarmBlob(content, 'mf-swarm-finish-');
    stallWebTorrentAfter(webSeed, PIECES - 2);
    const repo = new RepoPaths(join(dir, 'cache'), 'model', 'org/name');
    const started: string[] = [];
    const { outcome } = await swarmFetchBlob(await swarmEngine(), repo, file, torrentFile(info, { webSeeds: [webSeedUrl] }), {
      // The stall limit is beyond the test's timeout: only the end game can finish it in time.
      stallMs: 120_000,
      endgameMs: 1500,
      finish: { read: createRangeReader({ maxAttempts: 1 }), onStart: (why, pieces) => started.push(`${pieces}: ${why.message}`) },
    });
    expect(outcome).toBe('committed');
    expect((await readFile(repo.blob(file.digest))).equals(content)).toBe(true);
    expect(started).toEqual([`2: The last 2 pieces of the swarm download of ${file.digest.hex} made no progress for 2 s`]);
    expect(webSeed.requests.filter((r) => !isWebTorrent(r.headers['user-agent']))).toHaveLength(2);
  });

  it('refuses a piece from the web seed that fails its SHA-1, and leaves nothing behind', async () => {
    const content = randomBytes(PIECE_SIZE * (PIECES - 1) + 777);
    const { dir, file, info, webSeed, webSeedUrl } = await swarmBlob(content, 'mf-swarm-finish-');
    stallWebTorrentAfter(webSeed, 1);
    // Plain reads get one byte flipped in every piece.
    const offsets = Array.from({ length: PIECES }, (_, index) => index * PIECE_SIZE + 5);
    webSeed.addFault({ match: (req) => !isWebTorrent(req.headers['user-agent']), fault: { corruptOffsets: offsets } });
    const repo = new RepoPaths(join(dir, 'cache'), 'model', 'org/name');
    await expect(
      swarmFetchBlob(await swarmEngine(), repo, file, torrentFile(info, { webSeeds: [webSeedUrl] }), { stallMs: 1500, finish: { read: createRangeReader({ maxAttempts: 1 }) } }),
    ).rejects.toMatchObject({ code: 'ERR_NETWORK', message: expect.stringMatching(/sent bytes that fail its SHA-1 check for piece \d$/) });
    await expect(stat(repo.blob(file.digest))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readdir(repo.swarmPartialDir(file.digest)).catch(() => 'gone')).toBe('gone');
  });
});
