import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { commitBlob } from '../../src/cache/blob-store.js';
import { RepoPaths } from '../../src/cache/layout.js';
import { swarmFetchBlob } from '../../src/transfer/swarm/swarm-fetch.js';
import { PIECE_SIZE, torrentFile } from '../../src/transfer/swarm/torrent.js';
import { swarmBlob, swarmEngine } from '../support/swarm.js';

/**
 * A finished swarm download stays in the swarm as the blob's seed: it serves its pieces from the
 * file it wrote after that file was hashed, committed into blobs/ and its partial folder removed, so
 * a node done first never leaves the others to fetch its pieces from the mirror again.
 */

describe('keeping a finished swarm download as the seed', () => {
  it('serves every piece to a later node from the committed blob, with the web seed gone', async () => {
    const data = randomBytes(PIECE_SIZE * 3 + 999);
    const { dir, file, info, webSeed, webSeedUrl } = await swarmBlob(data, 'mf-swarm-keep-');
    const first = await swarmEngine();
    const firstRepo = new RepoPaths(join(dir, 'first'), 'model', 'org/name');
    const kept = await swarmFetchBlob(first, firstRepo, file, torrentFile(info, { webSeeds: [webSeedUrl] }), { keepSeeding: true });
    expect(kept.outcome).toBe('committed');
    expect(kept.seeding?.infoHash).toBe(info.infoHash);
    onTestFinished(() => kept.seeding?.stop());
    // The partial folder is gone: the seed reads the blob it committed, through the handle it wrote with.
    expect(await readdir(firstRepo.swarmPartialDir(file.digest)).catch(() => 'gone')).toBe('gone');
    await webSeed.close();

    const secondRepo = new RepoPaths(join(dir, 'second'), 'model', 'org/name');
    const second = await swarmFetchBlob(await swarmEngine(), secondRepo, file, torrentFile(info, {}), { peers: [`127.0.0.1:${first.port}`], stallMs: 20_000 });
    expect(second.outcome).toBe('committed');
    expect(second.progress.fromPeers).toBeGreaterThanOrEqual(data.length);
    expect((await readFile(secondRepo.blob(file.digest))).equals(data)).toBe(true);
    expect(kept.seeding?.uploaded()).toBeGreaterThanOrEqual(data.length);
  });

  it('does not stay as the seed when another process committed the blob first (its own file is unlinked)', async () => {
    const data = randomBytes(PIECE_SIZE + 33);
    const { dir, file, info, source, webSeedUrl } = await swarmBlob(data, 'mf-swarm-keep-');
    const repo = new RepoPaths(join(dir, 'first'), 'model', 'org/name');
    await mkdir(join(dir, 'other'));
    await copyFile(source, join(dir, 'other', 'blob'));
    // Another process commits the blob while this one is in the swarm (the swarm fetch does not look first).
    await commitBlob(repo, file.digest, join(dir, 'other', 'blob'));
    const result = await swarmFetchBlob(await swarmEngine(), repo, file, torrentFile(info, { webSeeds: [webSeedUrl] }), { keepSeeding: true });
    expect(result.outcome).toBe('exists');
    expect(result.seeding).toBeUndefined();
    expect((await readFile(repo.blob(file.digest))).equals(data)).toBe(true);
  });

  it('leaves the swarm once the blob is committed when not asked to stay', async () => {
    const { dir, file, info, source, webSeedUrl } = await swarmBlob(randomBytes(PIECE_SIZE + 17), 'mf-swarm-keep-');
    const first = await swarmEngine();
    const result = await swarmFetchBlob(first, new RepoPaths(join(dir, 'first'), 'model', 'org/name'), file, torrentFile(info, { webSeeds: [webSeedUrl] }));
    expect(result.outcome).toBe('committed');
    expect(result.seeding).toBeUndefined();
    // Nothing of it is left in the engine: the same torrent can be added again (webtorrent refuses a duplicate).
    const again = await first.seed({ torrent: torrentFile(info, {}), path: source });
    expect(again.infoHash).toBe(info.infoHash);
    await again.stop();
  });
});
