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
