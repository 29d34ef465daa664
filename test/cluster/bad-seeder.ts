import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseTorrentFile } from '../../src/transfer/swarm/torrent.js';
import { createWebTorrentEngine } from '../../src/transfer/swarm/webtorrent-engine.js';

/**
 * A peer that lies: it takes the mirror's true torrent of a file, but seeds a copy of the file with
 * one byte flipped in every piece, announcing itself to the mirror's tracker like any node. Every
 * piece it sends fails its SHA-1 check. argv: torrent URL, the true file, a work folder.
 * Prints `seeding {infoHash}` when announced, then `uploaded {bytes}` every half second.
 */

const [torrentUrl, truePath, workDir] = process.argv.slice(2);
if (!torrentUrl || !truePath || !workDir) throw new Error('usage: bad-seeder.ts TORRENT_URL TRUE_FILE WORK_DIR');

const response = await fetch(torrentUrl);
if (!response.ok) throw new Error(`GET ${torrentUrl}: ${response.status}`);
const torrent = Buffer.from(await response.arrayBuffer());
const { info } = parseTorrentFile(torrent);
const data = await readFile(truePath);
for (let offset = 0; offset < data.length; offset += info.pieceLength) data[offset + 1] = data[offset + 1]! ^ 0xff;
await mkdir(workDir, { recursive: true });
const path = join(workDir, info.name);
await writeFile(path, data);

const engine = await createWebTorrentEngine({ useTrackers: true });
const seeding = await engine.seed({ torrent, path });
process.stdout.write(`seeding ${seeding.infoHash} on port ${engine.port}\n`);
const timer = setInterval(() => process.stdout.write(`uploaded ${seeding.uploaded()}\n`), 500);
const stop = (): void => {
  clearInterval(timer);
  void engine
    .close()
    .then(() => rm(workDir, { recursive: true, force: true }))
    .then(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
