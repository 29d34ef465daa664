import { open, rm } from 'node:fs/promises';
import { fromSystemError, ModelfetchError } from '../core/errors.js';
import { createDigestHash } from '../core/hash/file-digest.js';
import { convertElements, type FloatDtype, type TargetDtype } from './float.js';
import { DTYPE_BYTES, type SafetensorsHeader } from './header.js';
import { readAt, readHeaderOfHandle } from './local-file.js';
import type { ConversionPlan } from './plan.js';

/**
 * Writes one converted safetensors file, streaming tensor by tensor in fixed chunks: memory stays
 * at four chunk buffers whatever the model's size. The read of the next chunk and the conversion
 * overlap the write of the previous one. The output is hashed as it is written, fsynced, then
 * opened again: its header must parse, match the plan, and its size must be exact.
 */

/** Input bytes per chunk (a multiple of every element size). */
export const CHUNK_BYTES = 8 * 1024 * 1024;

export interface ConvertedFile {
  size: number;
  sha256: string;
}

/** Converts `inputPath` (whose header is `header`) into a new file at `outputPath` (created exclusively). */
export async function writeConvertedFile(inputPath: string, header: SafetensorsHeader, plan: ConversionPlan, target: TargetDtype, outputPath: string, signal?: AbortSignal): Promise<ConvertedFile> {
  const input = await open(inputPath, 'r').catch((error: unknown) => Promise.reject(fromSystemError(error, `opening ${inputPath}`)));
  let output;
  try {
    output = await open(outputPath, 'wx+');
  } catch (error) {
    await input.close();
    throw fromSystemError(error, `creating ${outputPath}`);
  }
  const hash = createDigestHash('sha256', 0);
  let written = false;
  try {
    await output.write(plan.header, 0, plan.header.length, 0);
    hash.update(plan.header);
    // Buffers from allocUnsafeSlow start at offset 0 of their own memory: typed-array views need 4-byte alignment.
    const buffers = [0, 1].map(() => ({ input: Buffer.allocUnsafeSlow(CHUNK_BYTES), output: Buffer.allocUnsafeSlow(CHUNK_BYTES) }));
    let turn = 0;
    let pending: Promise<unknown> = Promise.resolve();
    let position = plan.header.length;
    for (const tensor of plan.tensors) {
      const { source } = tensor;
      const inSize = DTYPE_BYTES[source.dtype]!;
      const outSize = DTYPE_BYTES[tensor.dtype]!;
      const total = source.end - source.begin;
      for (let offset = 0; offset < total; offset += CHUNK_BYTES) {
        if (signal?.aborted) throw new ModelfetchError('ERR_ABORTED', 'Conversion interrupted', { cause: signal.reason });
        const pair = buffers[turn++ % 2]!;
        const length = Math.min(CHUNK_BYTES, total - offset);
        const got = await readAt(input, pair.input, length, header.dataStart + source.begin + offset);
        if (got !== length) throw new ModelfetchError('ERR_BAD_SAFETENSORS', `${inputPath} ended at byte ${header.dataStart + source.begin + offset + got} while reading tensor ${JSON.stringify(source.name)}`, { hint: 'The file changed or is truncated; fetch it again.' });
        let chunk: Buffer;
        if (tensor.convert) {
          const count = length / inSize;
          // The buffer written two chunks ago is free: its write was awaited before the last one started.
          convertElements(pair.input, source.dtype as FloatDtype, target, count, pair.output);
          chunk = pair.output.subarray(0, count * outSize);
        } else {
          chunk = pair.output.subarray(0, length);
          pair.input.copy(chunk, 0, 0, length);
        }
        hash.update(chunk);
        await pending;
        pending = output.write(chunk, 0, chunk.length, position);
        position += chunk.length;
      }
    }
    await pending;
    await output.sync();
    if (position !== plan.size) throw new Error(`wrote ${position} bytes, planned ${plan.size}`);
    await checkWritten(output, plan, outputPath);
    written = true;
    return { size: plan.size, sha256: hash.digest('hex') };
  } catch (error) {
    throw error instanceof ModelfetchError ? error : fromSystemError(error, `writing ${outputPath}`);
  } finally {
    await input.close();
    await output.close();
    if (!written) await rm(outputPath, { force: true });
  }
}

/** The written file read back: its header parses, names the planned tensors at the planned offsets, and its size is exact. */
async function checkWritten(output: Awaited<ReturnType<typeof open>>, plan: ConversionPlan, outputPath: string): Promise<void> {
  const { size } = await output.stat();
  if (size !== plan.size) throw new ModelfetchError('ERR_SIZE', `${outputPath} has ${size} bytes after conversion, expected ${plan.size}`, { expected: plan.size, found: size });
  const reread = await readHeaderOfHandle(output, size, outputPath);
  const key = (t: { name: string; dtype: string; shape: number[]; begin: number; end: number }): string => JSON.stringify([t.name, t.dtype, t.shape, t.begin, t.end]);
  const expected = plan.tensors.map(key).join('\n');
  if (reread.tensors.map(key).join('\n') !== expected || reread.dataStart !== plan.header.length) {
    throw new ModelfetchError('ERR_INTEGRITY', `${outputPath} does not read back as the planned tensors`, { hint: 'Nothing was committed; run the conversion again.' });
  }
}
