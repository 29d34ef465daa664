import { open } from 'node:fs/promises';
import { MiB } from './bench-case.js';

/**
 * Large safetensors files for the inspect and convert cases, built without holding them in memory:
 * one F32 tensor per file, the header written by hand (8-byte length, JSON padded to 8), the data
 * from a fast generator of model-like values (small normals, some zeros).
 */

export function safetensorsHeaderBytes(tensor: string, elements: number): Buffer {
  let json = JSON.stringify({ __metadata__: { format: 'pt' }, [tensor]: { dtype: 'F32', shape: [elements], data_offsets: [0, elements * 4] } });
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const out = Buffer.alloc(8 + Buffer.byteLength(json));
  out.writeBigUInt64LE(BigInt(Buffer.byteLength(json)), 0);
  out.write(json, 8);
  return out;
}

/** A whole F32 safetensors file in memory (for the fixture Hub); the data is zeros, which is all inspect needs. */
export function zeroSafetensors(tensor: string, bytes: number): Buffer {
  const header = safetensorsHeaderBytes(tensor, Math.floor(bytes / 4));
  return Buffer.concat([header, Buffer.alloc(Math.floor(bytes / 4) * 4)]);
}

/**
 * A shard as large models have them: `tensors` F32 tensors named like a mixture-of-experts layer's
 * (`model.layers.L.mlp.experts.E.gate_proj.weight`), zeros, `bytes` of data in all. Its header is
 * about 115 bytes per tensor (800 tensors: ~90 KB, past a 64 KiB first read).
 */
export function shardSafetensors(shard: number, tensors: number, bytes: number): { content: Buffer; names: string[] } {
  const elements = Math.floor(bytes / 4 / tensors);
  const projections = ['gate_proj', 'up_proj', 'down_proj'];
  const names = Array.from({ length: tensors }, (_, i) => `model.layers.${shard * 100 + Math.floor(i / 96)}.mlp.experts.${Math.floor(i / 3) % 32}.${projections[i % 3]}.weight`);
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  names.forEach((name, i) => (header[name] = { dtype: 'F32', shape: [elements], data_offsets: [i * elements * 4, (i + 1) * elements * 4] }));
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(Buffer.byteLength(json)), 0);
  return { content: Buffer.concat([prefix, Buffer.from(json), Buffer.alloc(tensors * elements * 4)]), names };
}

/** Writes an F32 safetensors file of `bytes` bytes of weights at `path`, 8 MiB at a time. */
export async function writeF32Safetensors(path: string, tensor: string, bytes: number, seed: number): Promise<number> {
  const elements = Math.floor(bytes / 4);
  const file = await open(path, 'wx');
  try {
    const header = safetensorsHeaderBytes(tensor, elements);
    await file.write(header, 0, header.length, 0);
    const chunk = new Float32Array(2 * MiB);
    let state = seed >>> 0 || 1;
    let position = header.length;
    for (let done = 0; done < elements; done += chunk.length) {
      const n = Math.min(chunk.length, elements - done);
      for (let i = 0; i < n; i++) {
        state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
        // Roughly what trained weights look like: mostly |w| < 0.1, a few zeros and larger values.
        chunk[i] = state % 97 === 0 ? 0 : ((state / 4294967296 - 0.5) * 0.2) / (1 + (state & 7));
      }
      const bytesOut = Buffer.from(chunk.buffer, 0, n * 4);
      await file.write(bytesOut, 0, bytesOut.length, position);
      position += bytesOut.length;
    }
    await file.sync();
    return position;
  } finally {
    await file.close();
  }
}
