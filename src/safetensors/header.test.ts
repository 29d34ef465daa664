import { describe, expect, it } from 'vitest';
import { buildSafetensors, f32Tensor, seededRandom, type FixtureTensor } from '../../test/support/safetensors.js';
import { isModelfetchError } from '../core/errors.js';
import { MAX_HEADER_BYTES, readHeader, serializeHeader, type SafetensorsHeader } from './header.js';

/** Parses a whole file held in memory, the first read being `firstBytes` long as over HTTP. */
function parse(file: Buffer, firstBytes = 64 * 1024): Promise<SafetensorsHeader> {
  return readHeader(file.subarray(0, firstBytes), file.length, async (start, end) => file.subarray(start, end), 'test.safetensors');
}

async function parseError(file: Buffer, firstBytes?: number): Promise<string> {
  try {
    await parse(file, firstBytes);
  } catch (error) {
    expect(isModelfetchError(error, 'ERR_BAD_SAFETENSORS')).toBe(true);
    return (error as Error).message;
  }
  throw new Error('parsed a file that should have been refused');
}

const tensors: FixtureTensor[] = [
  f32Tensor('model.embed.weight', [1, 2, 3, 4, 5, 6], [2, 3]),
  { name: 'model.norm.bias', dtype: 'BF16', shape: [2], data: Buffer.from([0x80, 0x3f, 0x00, 0x40]) },
  { name: 'position_ids', dtype: 'I64', shape: [1, 2], data: Buffer.alloc(16) },
  { name: 'empty', dtype: 'F16', shape: [0, 4], data: Buffer.alloc(0) },
];

describe('safetensors header', () => {
  it('reads names, dtypes, shapes, offsets and metadata of a valid file, with a short first read too', async () => {
    const file = buildSafetensors(tensors, { format: 'pt' });
    for (const first of [64 * 1024, 8, 13]) {
      const header = await parse(file, first);
      expect(header.metadata).toEqual({ format: 'pt' });
      expect(header.tensors.map((t) => [t.name, t.dtype, t.shape, t.end - t.begin])).toEqual([
        ['model.embed.weight', 'F32', [2, 3], 24],
        ['model.norm.bias', 'BF16', [2], 4],
        ['position_ids', 'I64', [1, 2], 16],
        ['empty', 'F16', [0, 4], 0],
      ]);
      expect(header.dataStart + 44).toBe(file.length);
    }
  });

  it('refuses a header length beyond the file', async () => {
    const file = buildSafetensors(tensors);
    file.writeBigUInt64LE(BigInt(file.length), 0);
    expect(await parseError(file)).toMatch(/header claims \d+ bytes but the file has only/);
  });

  it('refuses a header over the cap without reading it', async () => {
    const file = Buffer.alloc(16);
    file.writeBigUInt64LE(BigInt(MAX_HEADER_BYTES + 1), 0);
    expect(await parseError(file)).toMatch(/more than the 100000000-byte cap/);
    file.writeBigUInt64LE(2n ** 64n - 1n, 0);
    expect(await parseError(file)).toMatch(/cap/);
  });

  it('refuses overlapping, out-of-order, gapped and overrunning offsets', async () => {
    const a = f32Tensor('a', [1, 2]);
    const b = f32Tensor('b', [3, 4]);
    const entry = (name: string, begin: number, end: number, shape = [2]): string => `${JSON.stringify(name)}:{"dtype":"F32","shape":${JSON.stringify(shape)},"data_offsets":[${begin},${end}]}`;
    const data = [a, b];
    expect(await parseError(buildSafetensors(data, undefined, `{${entry('a', 0, 8)},${entry('b', 4, 12)}}`))).toMatch(/overlaps/);
    expect(await parseError(buildSafetensors(data, undefined, `{${entry('a', 8, 0)},${entry('b', 8, 16)}}`))).toMatch(/ends \(0\) before it begins \(8\)/);
    expect(await parseError(buildSafetensors([a, b, f32Tensor('c', [0])], undefined, `{${entry('a', 0, 8)},${entry('b', 12, 20)}}`))).toMatch(/gap of 4 bytes/);
    expect(await parseError(buildSafetensors(data, undefined, `{${entry('a', 0, 8)},${entry('b', 8, 16)},${entry('c', 16, 24)}}`))).toMatch(/past the end/);
    expect(await parseError(buildSafetensors([...data, f32Tensor('x', [9])], undefined, `{${entry('a', 0, 8)},${entry('b', 8, 16)}}`))).toMatch(/4 bytes follow the last tensor/);
  });

  it('refuses a dtype or shape that does not match the byte length, and unknown dtypes', async () => {
    const bad = (dtype: string, shape: number[]): Buffer => buildSafetensors([f32Tensor('w', [1, 2])], undefined, `{"w":{"dtype":"${dtype}","shape":${JSON.stringify(shape)},"data_offsets":[0,8]}}`);
    expect(await parseError(bad('F16', [2]))).toMatch(/F16\[2\], 4 bytes, but its data_offsets span 8/);
    expect(await parseError(bad('F32', [3]))).toMatch(/F32\[3\], 12 bytes/);
    expect(await parseError(bad('F32', [2 ** 32, 2 ** 32, 2 ** 32]))).toMatch(/data_offsets span 8/);
    expect(await parseError(bad('F32', [-2]))).toMatch(/invalid shape/);
    expect(await parseError(bad('F33', [2]))).toMatch(/unknown dtype "F33"/);
  });

  it('refuses JSON that is not an object, and malformed entries', async () => {
    for (const [json, message] of [
      ['[1,2,3]', /not a JSON object/],
      ['"text"', /not a JSON object/],
      ['null', /not a JSON object/],
      ['{"a":', /not UTF-8 JSON/],
      ['{"__metadata__":{"a":1}}', /__metadata__ is not an object of strings/],
      ['{"w":[1]}', /is not an object/],
      ['{"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}}', /invalid data_offsets/],
    ] as const) {
      expect(await parseError(buildSafetensors([], undefined, json))).toMatch(message);
    }
    expect(await parseError(Buffer.from([1, 0, 0]))).toMatch(/fewer than the 8-byte header length/);
  });

  it('writes headers that read back identically, padded so the data starts 8-aligned', async () => {
    const header = await parse(buildSafetensors(tensors, { format: 'pt', note: 'ü' }));
    const written = serializeHeader(header.tensors, header.metadata);
    expect(written.length % 8).toBe(0);
    const data = Buffer.alloc(44);
    const again = await parse(Buffer.concat([written, data]));
    expect(again.tensors).toEqual(header.tensors);
    expect(again.metadata).toEqual(header.metadata);
    const proto = await parse(Buffer.concat([serializeHeader([{ name: '__proto__', dtype: 'U8', shape: [1], begin: 0, end: 1 }], undefined), Buffer.alloc(1)]));
    expect(proto.tensors.map((t) => t.name)).toEqual(['__proto__']);
  });

  it('fuzz: random truncations and byte mutations of valid files give a header or a clear error, never a crash or a hang', async () => {
    const random = seededRandom(17);
    const files = [buildSafetensors(tensors, { format: 'pt' }), buildSafetensors([f32Tensor('x', [1]), f32Tensor('y', [2, 3])]), buildSafetensors([])];
    let refused = 0;
    let accepted = 0;
    for (let round = 0; round < 3000; round++) {
      const original = files[round % files.length]!;
      const file = Buffer.from(original);
      let mutated: Buffer = file;
      if (round % 3 === 0) mutated = file.subarray(0, Math.floor(random() * file.length));
      else {
        const flips = 1 + Math.floor(random() * 4);
        for (let i = 0; i < flips; i++) {
          // Mostly in the length prefix and the JSON, where a parser can go wrong.
          const at = Math.floor(random() * Math.min(file.length, 8 + Number(original.readBigUInt64LE(0) & 0xffffn) + 4));
          file[at] = round % 2 ? Math.floor(random() * 256) : file[at]! ^ (1 << Math.floor(random() * 8));
        }
      }
      try {
        const header = await parse(mutated, 1 + Math.floor(random() * 200));
        accepted += 1;
        // Whatever was accepted is self-consistent: tensors tile the data area up to the end of the file.
        let at = 0;
        for (const t of header.tensors) {
          expect(t.begin).toBe(at);
          at = t.end;
        }
        expect(header.dataStart + at).toBe(mutated.length);
      } catch (error) {
        if (!isModelfetchError(error, 'ERR_BAD_SAFETENSORS')) throw error;
        expect(error.message).toMatch(/is not a valid safetensors file: /);
        refused += 1;
      }
    }
    expect(refused).toBeGreaterThan(1500);
    expect(refused + accepted).toBe(3000);
  });
});
