import { ModelfetchError } from '../core/errors.js';
import type { FloatDtype, TargetDtype } from './float.js';
import { DTYPE_BYTES, serializeHeader, type SafetensorsHeader, type TensorInfo } from './header.js';

/**
 * What a conversion will write for one file, computed from its header alone: the new header, every
 * tensor's new dtype and offsets, the exact output size. `inspect` uses it to tell the size after a
 * conversion before any weight moves; `convert` writes exactly this and then checks the file against it.
 */

export const CONVERSION_NOTE_KEY = 'modelfetch.conversion';

export interface PlannedTensor extends TensorInfo {
  /** The tensor as it is in the source file (its offsets are in the source's data area). */
  source: TensorInfo;
  /** Whether its elements are converted (otherwise its bytes are copied). */
  convert: boolean;
}

export interface ConversionPlan {
  header: Buffer;
  /** Output tensors in data order. */
  tensors: PlannedTensor[];
  /** Bytes of the output file. */
  size: number;
  /** Tensors whose dtype changes; 0 means the file is left as it is. */
  converted: number;
}

/** `--dtype f16|bf16` (or the safetensors names) to the dtype written. */
export function parseTargetDtype(text: string): TargetDtype {
  const lower = text.trim().toLowerCase();
  if (lower === 'f16' || lower === 'fp16' || lower === 'float16' || lower === 'half') return 'F16';
  if (lower === 'bf16' || lower === 'bfloat16') return 'BF16';
  throw new ModelfetchError('ERR_USAGE', `Unknown --dtype ${JSON.stringify(text)}`, { hint: 'Use f16 or bf16.' });
}

/** The name transformers writes in config.json for a dtype. */
export function torchDtypeName(dtype: TargetDtype): string {
  return dtype === 'F16' ? 'float16' : 'bfloat16';
}

function isFloat(dtype: string): dtype is FloatDtype {
  return dtype === 'F32' || dtype === 'F16' || dtype === 'BF16';
}

/**
 * F32, F16 and BF16 tensors become `target` unless `keep(name)`; every other dtype (integers, bools,
 * F64, F8) is copied. Output tensors are ordered by element size, largest first, then by name, as
 * the safetensors library writes them, so every tensor starts at a multiple of its element size.
 * A file where something changes gets a note of the conversion in `__metadata__`, and `format: pt`
 * when it had no format (transformers refuses safetensors metadata without one).
 */
export function planConversion(header: SafetensorsHeader, target: TargetDtype, keep: (name: string) => boolean): ConversionPlan {
  const changes = (t: TensorInfo): boolean => isFloat(t.dtype) && t.dtype !== target && !keep(t.name);
  const converted = header.tensors.filter(changes);
  const fromDtypes = [...new Set(converted.map((t) => t.dtype))].sort();
  const metadata = converted.length === 0 ? header.metadata : { format: 'pt', ...header.metadata, [CONVERSION_NOTE_KEY]: `${fromDtypes.join(',')}->${target}, round to nearest even as torch .to(); other tensors unchanged` };
  const planned = header.tensors
    .map((source) => ({ source, dtype: changes(source) ? target : source.dtype }))
    .sort((a, b) => DTYPE_BYTES[b.dtype]! - DTYPE_BYTES[a.dtype]! || (a.source.name < b.source.name ? -1 : a.source.name > b.source.name ? 1 : 0));
  let at = 0;
  const tensors: PlannedTensor[] = planned.map(({ source, dtype }) => {
    const convert = dtype !== source.dtype;
    const length = convert ? ((source.end - source.begin) / DTYPE_BYTES[source.dtype]!) * DTYPE_BYTES[dtype]! : source.end - source.begin;
    const tensor = { name: source.name, dtype, shape: source.shape, begin: at, end: at + length, source, convert };
    at += length;
    return tensor;
  });
  const headerBytes = serializeHeader(tensors, metadata);
  return { header: headerBytes, tensors, size: headerBytes.length + at, converted: converted.length };
}
