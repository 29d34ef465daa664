import { createRequire } from 'node:module';
import { blake3 } from '@noble/hashes/blake3';
import type { IHasher } from 'hash-wasm';
import { ModelfetchError } from '../errors.js';

/**
 * Xet's hashes: BLAKE3 keyed with protocol constants. A chunk hash is keyed BLAKE3 of the chunk's
 * bytes; a xorb hash is the root of a content-defined merkle tree over (chunk hash, size) pairs; a
 * file hash is that root over the file's chunks, keyed once more (with 32 zero bytes).
 *
 * A hash is 32 bytes. Its hex form is not plain hex of those bytes: xet-core reads them as four
 * little-endian u64 words and prints each word as 16 hex digits, so each 8-byte group appears reversed.
 */

export const XET_HASH_BYTES = 32;

const DATA_KEY = Uint8Array.from([
  102, 151, 245, 119, 91, 149, 80, 222, 49, 53, 203, 172, 165, 151, 24, 28, 157, 228, 33, 16, 155, 235, 43, 88, 180, 208, 176, 75, 147, 173, 242, 41,
]);
const INTERNAL_NODE_KEY = Uint8Array.from([
  1, 126, 197, 199, 165, 71, 41, 150, 253, 148, 102, 102, 180, 138, 2, 230, 93, 221, 83, 111, 55, 199, 109, 210, 248, 99, 82, 230, 74, 83, 113, 63,
]);
const ZERO_KEY = new Uint8Array(XET_HASH_BYTES);

/** Mean fan-out of the merkle tree; a node has 2 to 2 * 4 + 1 children. */
const BRANCHING = 4;
const MAX_GROUP = 2 * BRANCHING + 1;

export interface HashedChunk {
  hash: Uint8Array;
  size: number;
}

const HEX_64 = /^[0-9a-f]{64}$/;

/** Whether `value` is a Xet hash in its canonical form (64 lowercase hex digits). */
export function isXetHashHex(value: unknown): value is string {
  return typeof value === 'string' && HEX_64.test(value);
}

export function xetHashToHex(hash: Uint8Array): string {
  let hex = '';
  for (let word = 0; word < 4; word++) {
    for (let byte = 7; byte >= 0; byte--) hex += (hash[word * 8 + byte] as number).toString(16).padStart(2, '0');
  }
  return hex;
}

export function xetHashFromHex(hex: string): Uint8Array {
  if (!isXetHashHex(hex)) throw new ModelfetchError('ERR_INVALID_DIGEST', `"${String(hex).slice(0, 80)}" is not a Xet hash (64 lowercase hex digits).`);
  const hash = new Uint8Array(XET_HASH_BYTES);
  for (let word = 0; word < 4; word++) {
    for (let byte = 0; byte < 8; byte++) hash[word * 8 + 7 - byte] = Number.parseInt(hex.slice(word * 16 + byte * 2, word * 16 + byte * 2 + 2), 16);
  }
  return hash;
}

/** One way to compute a chunk hash; `prepareChunkHashing` picks the fastest that loads. */
export interface ChunkHasher {
  kind: ChunkHasherKind;
  hash: (data: Uint8Array) => Uint8Array;
}

/** native: the BLAKE3 of a prebuilt Node addon (SIMD, ~6x the WebAssembly one; Linux x64); wasm: hash-wasm; js: @noble/hashes. */
export type ChunkHasherKind = 'native' | 'wasm' | 'js';

const javascriptChunkHasher: ChunkHasher = { kind: 'js', hash: (data) => blake3(data, { key: DATA_KEY }) };

let chunkHasher: ChunkHasher = javascriptChunkHasher;
let loadingChunkHasher: Promise<ChunkHasherKind> | undefined;

/** The part of the blake-hash addon used here (@napi-rs/blake-hash's BLAKE3, Rust's blake3 crate with SIMD). */
interface NativeBlake3 {
  Blake3Hasher: {
    newKeyed(key: Buffer): { reset(): void; update(input: Uint8Array): unknown; digestBuffer(): Buffer };
  };
}

/**
 * The addon's prebuilt binaries for the platforms whose packages the lock file can name (optional
 * dependencies: npm installs the one matching this machine, and none elsewhere, where WebAssembly serves).
 */
const NATIVE_BLAKE3_PACKAGES = ['@napi-rs/blake-hash-linux-x64-gnu', '@napi-rs/blake-hash-linux-x64-musl'];

async function loadNativeChunkHasher(): Promise<ChunkHasher> {
  const require = createRequire(import.meta.url);
  let binding: NativeBlake3 | undefined;
  for (const name of NATIVE_BLAKE3_PACKAGES) {
    try {
      binding = require(name) as NativeBlake3;
      break;
    } catch {
      // Not installed for this platform: try the next, then WebAssembly.
    }
  }
  if (!binding) throw new Error('no native BLAKE3 for this platform');
  // One keyed hasher serves every call: reset keeps the key, and reset, update and digest run back to back with no await between.
  const hasher = binding.Blake3Hasher.newKeyed(Buffer.from(DATA_KEY));
  return {
    kind: 'native',
    hash: (data) => {
      hasher.reset();
      hasher.update(data);
      return new Uint8Array(hasher.digestBuffer());
    },
  };
}

async function loadWasmChunkHasher(): Promise<ChunkHasher> {
  const { createBLAKE3 } = await import('hash-wasm');
  const hasher: IHasher = await createBLAKE3(256, DATA_KEY);
  return {
    kind: 'wasm',
    hash: (data) => {
      hasher.init();
      hasher.update(data);
      return hasher.digest('binary');
    },
  };
}

/** The loaders, fastest first; the JavaScript hasher needs none. */
const CHUNK_HASHER_LOADERS = [loadNativeChunkHasher, loadWasmChunkHasher];

/**
 * Every chunk hasher that loads on this machine, fastest first (the JavaScript one always does).
 * Exported so that tests can hold each one to the same reference values.
 */
export async function loadChunkHashers(): Promise<ChunkHasher[]> {
  const loaded = await Promise.all(CHUNK_HASHER_LOADERS.map((load) => load().catch(() => undefined)));
  return [...loaded.filter((hasher): hasher is ChunkHasher => hasher !== undefined), javascriptChunkHasher];
}

/** The fastest hasher that loads: each loader is tried only when the faster ones failed. */
async function loadFastestChunkHasher(): Promise<ChunkHasher> {
  for (const load of CHUNK_HASHER_LOADERS) {
    const hasher = await load().catch(() => undefined);
    if (hasher) return hasher;
  }
  return javascriptChunkHasher;
}

/**
 * Loads the fastest chunk hasher this machine has: the native addon where its prebuilt binary exists
 * for the platform, else WebAssembly; until then (or if neither loads) `chunkHash` computes the same
 * hash in JavaScript, many times slower. Loading is asynchronous, so the modules that hash many chunks
 * (download, chunk cache, fixtures) await this once, and nothing else pays for it. Resolves to the kind
 * in use.
 */
export async function prepareChunkHashing(): Promise<ChunkHasherKind> {
  loadingChunkHasher ??= loadFastestChunkHasher().then((fastest) => {
    chunkHasher = fastest;
    return chunkHasher.kind;
  });
  return loadingChunkHasher;
}

export function chunkHash(data: Uint8Array): Uint8Array {
  return chunkHasher.hash(data);
}

/** A node hash: keyed BLAKE3 over "{hex} : {size}\n" for each child, as xet-core formats it. */
function mergeGroup(group: readonly HashedChunk[]): HashedChunk {
  let text = '';
  let size = 0;
  for (const child of group) {
    text += `${xetHashToHex(child.hash)} : ${child.size}\n`;
    size += child.size;
  }
  return { hash: blake3(new TextEncoder().encode(text), { key: INTERNAL_NODE_KEY }), size };
}

/**
 * Where the group starting at `start` ends: after a node whose hash is 0 mod 4 (its last u64, read
 * little-endian, is what xet-core takes the remainder of), at least 2 and at most 9 nodes.
 */
function groupEnd(level: readonly HashedChunk[], start: number): number {
  const remaining = level.length - start;
  if (remaining <= 2) return level.length;
  const limit = Math.min(MAX_GROUP, remaining);
  for (let i = 2; i < limit; i++) {
    if (((level[start + i] as HashedChunk).hash[24] as number) % BRANCHING === 0) return start + i + 1;
  }
  return start + limit;
}

/** The merkle root over `chunks` (all zeros for none). */
export function aggregatedHash(chunks: readonly HashedChunk[]): Uint8Array {
  if (chunks.length === 0) return new Uint8Array(XET_HASH_BYTES);
  let level: readonly HashedChunk[] = chunks;
  while (level.length > 1) {
    const next: HashedChunk[] = [];
    for (let start = 0; start < level.length; ) {
      const end = groupEnd(level, start);
      next.push(mergeGroup(level.slice(start, end)));
      start = end;
    }
    level = next;
  }
  return (level[0] as HashedChunk).hash;
}

export function xorbHash(chunks: readonly HashedChunk[]): Uint8Array {
  return aggregatedHash(chunks);
}

/** The file hash the Hub lists as `xetHash`; `salt` is 32 zero bytes for Hub files. */
export function fileHash(chunks: readonly HashedChunk[], salt: Uint8Array = ZERO_KEY): Uint8Array {
  if (chunks.length === 0) return new Uint8Array(XET_HASH_BYTES);
  return blake3(aggregatedHash(chunks), { key: salt });
}
