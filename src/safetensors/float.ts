import { endianness } from 'node:os';
import { ModelfetchError } from '../core/errors.js';

/**
 * Float narrowing exactly as PyTorch's `.to()` does it (c10/util/Half.h and BFloat16.h):
 *  - f32 → f16: round to nearest, ties to even; beyond the largest half (65504 + half an ulp) → ±Inf;
 *    below half the smallest subnormal → ±0; NaN → 0x7E00 with its sign kept.
 *  - f32 → bf16: round to nearest even on the upper 16 bits; overflow rounds into ±Inf; NaN → 0x7FC0.
 *  - f16 ↔ bf16: through the exact f32 value, then the rounding above (what `.to()` does).
 * Bits in, bits out: no float arithmetic, so the result never depends on the JIT.
 */

export type FloatDtype = 'F32' | 'F16' | 'BF16';
export type TargetDtype = 'F16' | 'BF16';

/** Half-precision bits of the float32 with bits `w` (as a signed or unsigned 32-bit integer). */
export function f32ToF16Bits(w: number): number {
  const sign = (w >>> 16) & 0x8000;
  const abs = w & 0x7fffffff;
  if (abs >= 0x38800000 && abs < 0x477ff000) {
    // The common case, a normal half that does not overflow: re-bias the exponent (112 << 23), then
    // round to nearest even by adding 0xFFF plus the lowest kept bit; a carry bumps the exponent.
    return sign | ((abs - 0x38000000 + 0xfff + ((abs >>> 13) & 1)) >>> 13);
  }
  const exp = (w >>> 23) & 0xff;
  const mant = w & 0x7fffff;
  if (exp === 0xff) return sign | (mant !== 0 ? 0x7e00 : 0x7c00);
  const e = exp - 112; // re-biased for half: 127 - 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half (or zero): the 24-bit significand shifted right by 14 - e, rounded to even.
    const shift = 14 - e;
    if (shift > 24) return sign;
    const m = mant | 0x800000;
    let q = m >>> shift;
    const rest = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rest > half || (rest === half && (q & 1) === 1)) q += 1;
    return sign | q;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  // A carry out of the mantissa bumps the exponent; out of the largest exponent it makes Inf (0x7C00).
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h += 1;
  return sign | h;
}

/** bfloat16 bits of the float32 with bits `w`. */
export function f32ToBf16Bits(w: number): number {
  if ((w & 0x7fffffff) > 0x7f800000) return 0x7fc0;
  // Exact in doubles for signed or unsigned `w`; >>> takes the sum modulo 2^32.
  return (w + 0x7fff + ((w >>> 16) & 1)) >>> 16;
}

/** float32 bits of the half with bits `h` (exact). */
export function f16ToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  let mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0;
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
  if (mant === 0) return sign >>> 0;
  // Subnormal half: normalise.
  let e = 113;
  while ((mant & 0x400) === 0) {
    mant <<= 1;
    e -= 1;
  }
  return (sign | (e << 23) | ((mant & 0x3ff) << 13)) >>> 0;
}

let f16ToBf16Table: Uint16Array | undefined;
let bf16ToF16Table: Uint16Array | undefined;

/** Every one of the 65 536 inputs computed once: the 16-bit conversions are then one lookup each. */
function tables(): { f16ToBf16: Uint16Array; bf16ToF16: Uint16Array } {
  if (!f16ToBf16Table || !bf16ToF16Table) {
    f16ToBf16Table = new Uint16Array(65536);
    bf16ToF16Table = new Uint16Array(65536);
    for (let x = 0; x < 65536; x++) {
      f16ToBf16Table[x] = f32ToBf16Bits(f16ToF32Bits(x));
      bf16ToF16Table[x] = f32ToF16Bits((x << 16) >>> 0);
    }
  }
  return { f16ToBf16: f16ToBf16Table, bf16ToF16: bf16ToF16Table };
}

export function elementBytes(dtype: FloatDtype): number {
  return dtype === 'F32' ? 4 : 2;
}

const littleEndian = endianness() === 'LE';

/**
 * Converts `count` little-endian elements of `from` in `input` into `output` as `to`. Both buffers
 * must start at a multiple of 4 bytes in their ArrayBuffer (typed-array views of the same memory).
 */
export function convertElements(input: Buffer, from: FloatDtype, to: TargetDtype, count: number, output: Buffer): void {
  if (!littleEndian) throw new ModelfetchError('ERR_USAGE', 'Converting safetensors needs a little-endian machine', { hint: 'Run the conversion on x86-64 or arm64.' });
  const out = new Uint16Array(output.buffer, output.byteOffset, count);
  if (from === 'F32') {
    // Int32 loads stay small integers in V8; Uint32 values from 2^31 up (every negative float) would not.
    const src = new Int32Array(input.buffer, input.byteOffset, count);
    if (to === 'F16') for (let i = 0; i < count; i++) out[i] = f32ToF16Bits(src[i]!);
    else for (let i = 0; i < count; i++) out[i] = f32ToBf16Bits(src[i]!);
    return;
  }
  const src = new Uint16Array(input.buffer, input.byteOffset, count);
  if (from === to) {
    out.set(src);
    return;
  }
  const table = to === 'BF16' ? tables().f16ToBf16 : tables().bf16ToF16;
  for (let i = 0; i < count; i++) out[i] = table[src[i]!]!;
}
