import { posix } from 'node:path';
import { assertSafeRelativePath } from '../core/validate.js';
import { ModelfetchError } from '../core/errors.js';
import type { SafetensorsHeader } from './header.js';

/**
 * `*.safetensors.index.json` of a sharded model: `{ metadata: { total_size }, weight_map: { tensor: shard } }`,
 * shard names relative to the index's folder. Checked against the shards' own headers, and rewritten
 * after a conversion with the new total size.
 */

export const MAX_INDEX_BYTES = 64 * 1024 * 1024;

export interface SafetensorsIndex {
  /** Repo path of the index. */
  path: string;
  /** The whole JSON object, kept to write back everything we do not change. */
  raw: Record<string, unknown>;
  /** tensor -> repo path of its shard. */
  weightMap: Map<string, string>;
  /** Repo paths of the shards, in order of first mention. */
  shards: string[];
}

function bad(path: string, message: string): ModelfetchError {
  return new ModelfetchError('ERR_BAD_SAFETENSORS', `${path} is not a valid safetensors index: ${message}`, { hint: 'The index is damaged or not from a safetensors model; nothing was written.' });
}

export function parseIndex(path: string, bytes: Uint8Array): SafetensorsIndex {
  if (bytes.byteLength > MAX_INDEX_BYTES) throw bad(path, `it is larger than ${MAX_INDEX_BYTES} bytes`);
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch {
    throw bad(path, 'it is not JSON');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad(path, 'it is not a JSON object');
  const record = raw as Record<string, unknown>;
  const map = record.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) throw bad(path, 'it has no weight_map object');
  const dir = posix.dirname(path);
  const weightMap = new Map<string, string>();
  const shards: string[] = [];
  for (const [tensor, shard] of Object.entries(map)) {
    if (typeof shard !== 'string') throw bad(path, `weight_map names no file for ${JSON.stringify(tensor.slice(0, 200))}`);
    const shardPath = assertSafeRelativePath(dir === '.' ? shard : `${dir}/${shard}`, path);
    if (!shardPath.endsWith('.safetensors')) throw bad(path, `weight_map points at ${JSON.stringify(shard.slice(0, 200))}, which is not a .safetensors file`);
    if (!weightMap.has(tensor)) weightMap.set(tensor, shardPath);
    if (!shards.includes(shardPath)) shards.push(shardPath);
  }
  return { path, raw: record, weightMap, shards };
}

/** Every shard the index names is there, and holds the tensors the index says it holds. */
export function checkIndex(index: SafetensorsIndex, headers: ReadonlyMap<string, SafetensorsHeader>): void {
  const names = new Map<string, Set<string>>();
  for (const shard of index.shards) {
    const header = headers.get(shard);
    if (!header) throw new ModelfetchError('ERR_INCOMPLETE', `${index.path} names ${shard}, which is not there`, { hint: 'Fetch every shard of the model (pull without --include), then run the command again.' });
    names.set(shard, new Set(header.tensors.map((t) => t.name)));
  }
  for (const [tensor, shard] of index.weightMap) {
    if (!names.get(shard)?.has(tensor)) throw bad(index.path, `it places ${JSON.stringify(tensor.slice(0, 200))} in ${shard}, which has no such tensor`);
  }
}

/** The index after a conversion: same weight map, `metadata.total_size` = the new bytes of tensor data. */
export function rewriteIndex(index: SafetensorsIndex, tensorBytes: number): string {
  const metadata = typeof index.raw.metadata === 'object' && index.raw.metadata !== null && !Array.isArray(index.raw.metadata) ? (index.raw.metadata as Record<string, unknown>) : {};
  return `${JSON.stringify({ ...index.raw, metadata: { ...metadata, total_size: tensorBytes } }, null, 2)}\n`;
}
