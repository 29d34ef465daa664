import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { testTempDir } from '../../../test/support/temp.js';
import { createDigestHash, digestOfBytes, fileMatchesDigest, hashFile, matchesDigest } from './file-digest.js';

/** git's own object id for the file: the reference for git blob SHA-1. */
function gitHashObject(path: string): string {
  return execFileSync('git', ['hash-object', '--no-filters', path], { encoding: 'utf8' }).trim();
}

describe('hashing by digest type', () => {
  it('SHA-256 and git blob SHA-1 of bytes match the published vectors', () => {
    expect(digestOfBytes('sha256', 'abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    // git's id of the empty blob.
    expect(digestOfBytes('git-sha1', Buffer.alloc(0))).toBe('e69de29bb2d1d6434b8b29ae775ad8c2e48c5391');
    // The header counts bytes, not characters.
    expect(digestOfBytes('git-sha1', 'é')).toBe(digestOfBytes('git-sha1', Buffer.from('é')));
    expect(createDigestHash('git-sha1', 3).update('abc').digest('hex')).toBe(digestOfBytes('git-sha1', 'abc'));
  });

  it('hashes a file through a buffer smaller than the file, as git and the in-memory digest do', async () => {
    const dir = await testTempDir('mf-digest-');
    const path = join(dir, 'f.bin');
    const bytes = Buffer.from(Array.from({ length: 10_007 }, (_, i) => (i * 31) % 251));
    await writeFile(path, bytes);
    const reports: number[] = [];
    const sha1 = await hashFile(path, 'git-sha1', { buffer: Buffer.alloc(1000), reportEvery: 4000, onBytes: (n) => reports.push(n) });
    expect(sha1).toEqual({ hex: gitHashObject(path), size: bytes.length });
    // Progress comes every `reportEvery` bytes or more, and adds up to the file.
    expect(reports.slice(0, -1).every((n) => n >= 4000)).toBe(true);
    expect(reports.reduce((a, b) => a + b, 0)).toBe(bytes.length);
    expect(await hashFile(path, 'sha256', { buffer: Buffer.alloc(999) })).toEqual({ hex: digestOfBytes('sha256', bytes), size: bytes.length });
  });

  it('compares a file to a digest by hex and, when given, by size', async () => {
    const dir = await testTempDir('mf-digest-');
    const path = join(dir, 'f.txt');
    await writeFile(path, 'hello\n');
    const digest = { algorithm: 'git-sha1' as const, hex: gitHashObject(path) };
    expect(await fileMatchesDigest(path, digest)).toBe(true);
    expect(await fileMatchesDigest(path, digest, 6)).toBe(true);
    expect(await fileMatchesDigest(path, digest, 7)).toBe(false);
    expect(await fileMatchesDigest(path, { algorithm: 'sha256', hex: digestOfBytes('sha256', 'hello') })).toBe(false);
    expect(matchesDigest({ hex: digest.hex, size: 6 }, { ...digest, hex: '0'.repeat(40) })).toBe(false);
  });

  it('a missing file fails with its system error code', async () => {
    const dir = await testTempDir('mf-digest-');
    await expect(hashFile(join(dir, 'absent'), 'sha256')).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
