import { fileHash as theirFileHash, getChunks, xorbHash as theirXorbHash } from '@huggingface/xetchunk-wasm';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isModelfetchError } from '../errors.js';
import { chunkBoundaries } from '../../transfer/xet/chunker.js';
import { splitmixData } from '../../transfer/xet/splitmix.test-support.js';
import { aggregatedHash, chunkHash, type ChunkHasher, fileHash, type HashedChunk, loadChunkHashers, prepareChunkHashing, xetHashFromHex, xetHashToHex, xorbHash } from './xet-hash.js';

const h = (hex: string, size: number): HashedChunk => ({ hash: xetHashFromHex(hex), size });
const A = 'cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6';
const B = 'c3e67584b5c4fc2a89837ec39e40f2c8a6bb0b2987ac94cd4b31e5fbdd210a72';
const C = '0d2beb91b9196929a5ddec9f6e306924ddf4a24268e3e59fd8464738d525af37';
const D = 'adf8773496a9b7319b2e50dc98093f344053b17d8ad37100b9c07d9805988784';
const ZERO = '0'.repeat(64);

describe('Xet hashes', () => {
  it('prints a hash as four little-endian words, as xet-core does (published test vector)', () => {
    const raw = Uint8Array.from([22, 175, 58, 132, 4, 75, 131, 214, 190, 153, 138, 66, 226, 3, 153, 242, 204, 86, 80, 234, 249, 153, 80, 99, 159, 80, 65, 138, 236, 231, 149, 78]);
    expect(xetHashToHex(raw)).toBe('d6834b04843aaf16f29903e2428a99be635099f9ea5056cc4e95e7ec8a41509f');
    expect(xetHashFromHex('d6834b04843aaf16f29903e2428a99be635099f9ea5056cc4e95e7ec8a41509f')).toEqual(raw);
  });

  it('rejects what is not a 64-digit lowercase hex hash', () => {
    for (const bad of ['', 'abc', 'g'.repeat(64), A.toUpperCase(), `${A}0`]) {
      expect(() => xetHashFromHex(bad)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_DIGEST' }));
    }
    try {
      xetHashFromHex('nope');
    } catch (error) {
      expect(isModelfetchError(error)).toBe(true);
    }
  });

  // xet-core's aggregated_hashes reference table: (node hashes, xorb hash, file hash with the zero salt).
  const reference: Array<[HashedChunk[], string, string]> = [
    [[], ZERO, ZERO],
    [[h(ZERO, 0)], ZERO, '638a6bc391964a85939d48f008e8bdbae6a7975e7ca2d87a3ce2492f4e4d8a4c'],
    [[h(A, 100)], A, '8e16257caa3fe079d484d872a8975264b2ff683b0d6db9028cc7c0f968a45661'],
    [[h(A, 100), h(B, 200), h(C, 300)], '71ec1275fca074724e2dd666921b3277c7cee603e4d025bcab2d4050015be2bc', '54e55dccc6653c612bdb5576c5d3cb34bb31bc4e100248abccf4c908b3ef7715'],
    [[h(A, 100), h(A, 100), h(A, 100), h(A, 100)], '89f2ada89ff8c96763c6b25010e6dd76a4c05b1466207633ea559acf2093211b', '2cdba690d0e09563596e0cda626d43eb4c96ef1e994fe72d9b2f5a83cfcd36dd'],
    [[h(A, 100), h(B, 200), h(A, 100), h(B, 200)], '90f8313ef12df385d237a067aded02562c35ded12116e32eba401dbc86c38031', '284ea045e5a579e99c21ec597c20de1fc0c09e7168162aac00db8f61b3d82dbb'],
    [[h(A, 100), h(B, 200), h(A, 100), h(B, 200), h(C, 300), h(D, 400)], '52c826f99507aa05d0b45e9837fa1709e0485425cfbcb1e80db3905cf98b3ee9', '91d21684db364c8883ab8209fa5eb2e781cf07f37e1fa43e731c30839afe422f'],
  ];

  it.each(reference.map((row, i) => [i, ...row] as const))('matches xet-core\'s merkle reference %i (published test vector)', (_i, nodes, xorb, file) => {
    expect(xetHashToHex(xorbHash(nodes))).toBe(xorb);
    // The reference gives the zero-salt file hash of a single zero node; an empty list has no file hash.
    if (nodes.length > 0) expect(xetHashToHex(fileHash(nodes))).toBe(file);
  });

  it('agrees with @huggingface/xetchunk-wasm on chunk, xorb and file hashes of xet-core\'s reference data', () => {
    const data = splitmixData(1_000_000, 0n);
    const theirs = getChunks(data);
    const ours = hashedChunks(data);
    expect(ours.map((c) => c.size)).toEqual(theirs.map((c) => c.length));
    expect(ours.map((c) => xetHashToHex(c.hash))).toEqual(theirs.map((c) => xetHashToHex(c.hash)));
    expect(xetHashToHex(xorbHash(ours))).toBe(xetHashToHex(theirXorbHash(theirs)));
    expect(xetHashToHex(fileHash(ours))).toBe(xetHashToHex(theirFileHash(theirs)));
  });

  it('hashes chunks the same with every hasher that loads (native, WebAssembly, JavaScript), each result its own copy', async () => {
    const hashers = await loadChunkHashers();
    // The prebuilt native addon exists for this platform, so the fast path is the one in use; WebAssembly is the fallback everywhere.
    const expected = process.platform === 'linux' && process.arch === 'x64' ? ['native', 'wasm', 'js'] : ['wasm', 'js'];
    expect(hashers.map((h) => h.kind)).toEqual(expect.arrayContaining(expected));
    expect(await prepareChunkHashing()).toBe(hashers[0]?.kind);
    const inputs = [new Uint8Array(0), randomBytes(1), randomBytes(1024), randomBytes(1025), randomBytes(70_000), splitmixData(131_072, 0n)];
    const data = splitmixData(1_000_000, 0n);
    const theirs = getChunks(data).map((c) => xetHashToHex(c.hash));
    const reference = inputs.map((input) => xetHashToHex(javascript(hashers).hash(input)));
    for (const hasher of hashers) {
      const results = inputs.map((input) => hasher.hash(input));
      expect(results.map((hash) => xetHashToHex(hash)), hasher.kind).toEqual(reference);
      // Each call's result survives the next call (the hasher is reused).
      expect(new Set(results.map((hash) => xetHashToHex(hash))).size).toBe(inputs.length);
      expect(hashedChunks(data, hasher.hash).map((c) => xetHashToHex(c.hash)), hasher.kind).toEqual(theirs);
    }
  });

  it('builds merkle trees several levels deep that @huggingface/xetchunk-wasm agrees with', () => {
    for (const count of [2, 9, 10, 47, 300, 2000]) {
      const nodes: HashedChunk[] = Array.from({ length: count }, (_, i) => ({ hash: chunkHash(randomBytes(64)), size: 1000 + i }));
      const theirs = nodes.map((n) => ({ hash: n.hash, length: n.size }));
      expect(xetHashToHex(aggregatedHash(nodes))).toBe(xetHashToHex(theirXorbHash(theirs)));
      expect(xetHashToHex(fileHash(nodes))).toBe(xetHashToHex(theirFileHash(theirs)));
    }
  });
});

function hashedChunks(data: Uint8Array, hash: (chunk: Uint8Array) => Uint8Array = chunkHash): HashedChunk[] {
  const ends = chunkBoundaries(data);
  return ends.map((end, i) => {
    const start = i === 0 ? 0 : (ends[i - 1] as number);
    return { hash: hash(data.subarray(start, end)), size: end - start };
  });
}

function javascript(hashers: ChunkHasher[]): ChunkHasher {
  const found = hashers.find((h) => h.kind === 'js');
  if (!found) throw new Error('the JavaScript chunk hasher is always there');
  return found;
}
