import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hasTool } from '../../../test/support/tools.js';
import { RepoPaths } from '../../cache/layout.js';
import type { FileDigest } from '../../core/types.js';
import { ensureTorrentInfo, hashFileForTorrent, parseTorrentFile, PIECE_SIZE, torrentFile } from './torrent.js';

let dir: string;
let repo: RepoPaths;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mf-torrent-'));
  repo = new RepoPaths(dir, 'model', 'org/name');
});
afterEach(() => rm(dir, { recursive: true, force: true }));

/** A blob of 2.5 pieces, put in the cache under its SHA-256. */
async function putBlob(content: Buffer): Promise<FileDigest> {
  const digest: FileDigest = { algorithm: 'sha256', hex: createHash('sha256').update(content).digest('hex') };
  await mkdir(repo.blobsDir, { recursive: true });
  await writeFile(repo.blob(digest), content);
  return digest;
}

const content = randomBytes(PIECE_SIZE * 2 + PIECE_SIZE / 2);

describe('torrent metadata of a blob', () => {
  it('hashes each 4 MiB piece with SHA-1, names the torrent by the digest, and reads the file once for both hashes', async () => {
    const digest = await putBlob(content);
    const { info, sha256 } = await hashFileForTorrent(repo.blob(digest), digest.hex);
    expect(sha256).toBe(digest.hex);
    expect(info.pieces.length).toBe(3 * 20);
    for (let piece = 0; piece < 3; piece++) {
      const expected = createHash('sha1').update(content.subarray(piece * PIECE_SIZE, (piece + 1) * PIECE_SIZE)).digest();
      expect(info.pieces.subarray(piece * 20, piece * 20 + 20)).toEqual(expected);
    }
    expect(info).toMatchObject({ name: digest.hex, length: content.length, pieceLength: PIECE_SIZE });
  });

  it('gives the same infohash in another cache', async () => {
    const digest = await putBlob(content);
    const first = await ensureTorrentInfo(repo, digest, content.length);
    const other = new RepoPaths(join(dir, 'other'), 'dataset', 'someone/else');
    await mkdir(other.blobsDir, { recursive: true });
    await writeFile(other.blob(digest), content);
    const second = await ensureTorrentInfo(other, digest, content.length);
    expect(second.infoHash).toBe(first.infoHash);
    expect(second.encoded).toEqual(first.encoded);
  });

  it.skipIf(!hasTool('python3'))('matches an infohash computed independently in Python', async () => {
    const digest = await putBlob(content);
    const first = await ensureTorrentInfo(repo, digest, content.length);
    // The info dictionary written by hand, keys in byte order, with no modelfetch code involved.
    const script = `
import hashlib, sys
data = open(sys.argv[1], 'rb').read()
size = 4 * 1024 * 1024
pieces = b''.join(hashlib.sha1(data[i:i + size]).digest() for i in range(0, len(data), size))
name = sys.argv[2].encode()
info = b'd6:lengthi%de4:name%d:%s12:piece lengthi%de6:pieces%d:%se' % (len(data), len(name), name, size, len(pieces), pieces)
print(hashlib.sha1(info).hexdigest())
`;
    const python = execFileSync('python3', ['-c', script, repo.blob(digest), digest.hex], { encoding: 'utf8' }).trim();
    expect(first.infoHash).toBe(python);
  });

  it('is stamped beside the verification stamp and read back from there without re-reading the blob', async () => {
    const digest = await putBlob(content);
    const computed = await ensureTorrentInfo(repo, digest, content.length);
    expect(repo.torrentInfo(digest).startsWith(repo.stateDir)).toBe(true);
    expect(await readFile(repo.torrentInfo(digest))).toEqual(computed.encoded);
    await rm(repo.blob(digest));
    expect((await ensureTorrentInfo(repo, digest, content.length)).infoHash).toBe(computed.infoHash);
  });

  it('refuses to make metadata for a blob whose bytes no longer match its digest', async () => {
    const digest = await putBlob(content);
    const changed = Buffer.from(content);
    changed[5] = changed[5]! ^ 1;
    await writeFile(repo.blob(digest), changed);
    await expect(ensureTorrentInfo(repo, digest, content.length)).rejects.toMatchObject({ code: 'ERR_INTEGRITY' });
    await expect(readFile(repo.torrentInfo(digest))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('recomputes a damaged stamp', async () => {
    const digest = await putBlob(content);
    const computed = await ensureTorrentInfo(repo, digest, content.length);
    await writeFile(repo.torrentInfo(digest), 'd6:lengthi1ee');
    expect((await ensureTorrentInfo(repo, digest, content.length)).infoHash).toBe(computed.infoHash);
    expect(await readFile(repo.torrentInfo(digest))).toEqual(computed.encoded);
  });

  it('writes a .torrent with tracker and web seed outside the info, so the infohash does not depend on the mirror', async () => {
    const digest = await putBlob(content);
    const info = await ensureTorrentInfo(repo, digest, content.length);
    const a = parseTorrentFile(torrentFile(info, { announce: 'http://a:1/api/swarm/announce', webSeeds: ['http://a:1/x'] }));
    const b = parseTorrentFile(torrentFile(info, {}));
    expect(a.info.infoHash).toBe(info.infoHash);
    expect(b.info.infoHash).toBe(info.infoHash);
    expect(a.announce).toBe('http://a:1/api/swarm/announce');
    expect(a.webSeeds).toEqual(['http://a:1/x']);
  });

  it.skipIf(!hasTool('aria2c'))('is read by aria2c as a single-file torrent with our infohash, name, size and piece size', async () => {
    const digest = await putBlob(content);
    const info = await ensureTorrentInfo(repo, digest, content.length);
    const path = join(dir, 'x.torrent');
    await writeFile(path, torrentFile(info, { announce: 'http://127.0.0.1:9/announce', webSeeds: ['http://127.0.0.1:9/blob'] }));
    const shown = execFileSync('aria2c', ['-S', path], { encoding: 'utf8' });
    expect(shown).toMatch(new RegExp(`Info Hash: ${info.infoHash}`));
    expect(shown).toMatch(/Piece Length: 4\.0MiB/);
    expect(shown).toMatch(/The Number of Pieces: 3/);
    expect(shown).toMatch(/Mode: single/);
    expect(shown).toContain(`Name: ${digest.hex}`);
  });
});
