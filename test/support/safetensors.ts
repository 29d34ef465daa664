/**
 * Builds safetensors files for tests, independently of src/safetensors (so a bug there cannot make
 * its own fixtures agree with it): tensors laid out in the order given, header padded to 8 bytes.
 */

export interface FixtureTensor {
  name: string;
  dtype: string;
  shape: number[];
  data: Buffer;
}

export function safetensorsHeaderJson(tensors: FixtureTensor[], metadata?: Record<string, string>): string {
  const entries: string[] = [];
  if (metadata) entries.push(`"__metadata__":${JSON.stringify(metadata)}`);
  let at = 0;
  for (const t of tensors) {
    entries.push(`${JSON.stringify(t.name)}:{"dtype":${JSON.stringify(t.dtype)},"shape":${JSON.stringify(t.shape)},"data_offsets":[${at},${at + t.data.length}]}`);
    at += t.data.length;
  }
  return `{${entries.join(',')}}`;
}

/** A complete file: 8-byte length, the JSON padded with spaces, the data. */
export function buildSafetensors(tensors: FixtureTensor[], metadata?: Record<string, string>, headerJson?: string): Buffer {
  let json = Buffer.from(headerJson ?? safetensorsHeaderJson(tensors, metadata));
  const pad = (8 - (json.length % 8)) % 8;
  json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([prefix, json, ...tensors.map((t) => t.data)]);
}

/** A float32 tensor of the given values. */
export function f32Tensor(name: string, values: number[], shape: number[] = [values.length]): FixtureTensor {
  const data = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => data.writeFloatLE(v, i * 4));
  return { name, dtype: 'F32', shape, data };
}

/** A deterministic pseudo-random generator (mulberry32), so a failing fuzz case can be replayed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface ModelFile {
  path: string;
  content: Buffer;
}

export interface ShardedModel {
  files: ModelFile[];
  /** The tensors of each shard, by shard path. */
  shards: Map<string, FixtureTensor[]>;
  parameters: number;
}

/**
 * A sharded model as transformers writes one: `model-0000i-of-0000n.safetensors` shards of F32
 * matrices (values from `seed`, with NaN, ±Inf, overflow and subnormals sprinkled in), a BF16 norm,
 * an I64 buffer, the index and a config.json. `longHeaderShard` gets metadata long enough that its
 * header does not fit in a 64 KiB first read.
 */
export function shardedModel(options: { shards: number; rows?: number; cols?: number; seed?: number; longHeaderShard?: number }): ShardedModel {
  const random = seededRandom(options.seed ?? 1);
  const rows = options.rows ?? 16;
  const cols = options.cols ?? 32;
  // Ties (even and odd last kept bit) for f16 and bf16, overflow, subnormals, signed zero, NaN and Inf.
  const special = [NaN, Infinity, -Infinity, 70000, -65520, 65519, 1e-8, 3e-5, -0, 2 ** -25, 1 + 2 ** -11, 1 + 3 * 2 ** -11, -(1 + 3 * 2 ** -11), 1 + 2 ** -8, 1 + 3 * 2 ** -8, 3 * 2 ** -25, 6e-8];
  const shards = new Map<string, FixtureTensor[]>();
  const weightMap: Record<string, string> = {};
  const files: ModelFile[] = [];
  let parameters = 0;
  for (let s = 1; s <= options.shards; s++) {
    const name = `model-${String(s).padStart(5, '0')}-of-${String(options.shards).padStart(5, '0')}.safetensors`;
    const values = Array.from({ length: rows * cols }, (_, i) => (i < special.length && s === 1 ? special[i]! : (random() - 0.5) * 2 ** Math.floor(random() * 40 - 20)));
    const tensors: FixtureTensor[] = [f32Tensor(`model.layers.${s}.mlp.weight`, values, [rows, cols]), f32Tensor(`model.layers.${s}.mlp.bias`, values.slice(0, cols))];
    const norm = Buffer.alloc(cols * 2);
    for (let i = 0; i < cols; i++) norm.writeUInt16LE(0x3f80 + i, i * 2);
    tensors.push({ name: `model.layers.${s}.norm.weight`, dtype: 'BF16', shape: [cols], data: norm });
    if (s === 1) tensors.push({ name: 'model.position_ids', dtype: 'I64', shape: [1, 4], data: Buffer.from(new BigInt64Array([0n, 1n, 2n, 3n]).buffer) });
    for (const t of tensors) {
      weightMap[t.name] = name;
      parameters += t.shape.reduce((n, d) => n * d, 1);
    }
    const metadata = { format: 'pt', ...(s === options.longHeaderShard && { notes: 'x'.repeat(70_000) }) };
    shards.set(name, tensors);
    files.push({ path: name, content: buildSafetensors(tensors, metadata) });
  }
  const totalSize = [...shards.values()].flat().reduce((n, t) => n + t.data.length, 0);
  files.push({ path: 'model.safetensors.index.json', content: Buffer.from(JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2)) });
  files.push({ path: 'config.json', content: Buffer.from(JSON.stringify({ architectures: ['TinyTts'], torch_dtype: 'float32', text_config: { torch_dtype: 'float32', hidden: cols } }, null, 2)) });
  files.push({ path: 'README.md', content: Buffer.from('# tiny\n') });
  return { files, shards, parameters };
}
