import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../test/support/safetensors.js';
import { convertElements, f16ToF32Bits, f32ToBf16Bits, f32ToF16Bits } from './float.js';

const bitsOf = (value: number): number => {
  const view = new DataView(new ArrayBuffer(4));
  view.setFloat32(0, value);
  return view.getUint32(0);
};
const floatOf = (bits: number): number => {
  const view = new DataView(new ArrayBuffer(4));
  view.setUint32(0, bits);
  return view.getFloat32(0);
};

/** Half bits → number, straight from the IEEE definition (an independent decoder). */
function halfValue(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return exp === 0 ? sign * mant * 2 ** -24 : sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Nearest half by search over all finite halves, ties to the even pattern, overflow past 65520 → Inf. */
function referenceHalf(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00;
  let lo = 0;
  let hi = 0x7bff;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (halfValue(mid) <= a) lo = mid;
    else hi = mid;
  }
  const dLo = a - halfValue(lo);
  const dHi = halfValue(hi) - a;
  return sign | (dLo < dHi ? lo : dHi < dLo ? hi : lo % 2 === 0 ? lo : hi);
}

describe('float narrowing (as torch .to())', () => {
  it('f32 → f16: rounding to even, subnormals, overflow, Inf and NaN', () => {
    const cases: Array<[number, number]> = [
      [1, 0x3c00],
      [-2, 0xc000],
      [65504, 0x7bff],
      [65519.99, 0x7bff],
      [65520, 0x7c00],
      [1e6, 0x7c00],
      [-Infinity, 0xfc00],
      [2 ** -24, 0x0001],
      [2 ** -25, 0x0000],
      [1.5 * 2 ** -25, 0x0001],
      [3 * 2 ** -25, 0x0002],
      [2 ** -14 - 2 ** -25, 0x0400],
      [1 + 2 ** -11, 0x3c00],
      [1 + 3 * 2 ** -11, 0x3c02],
      [1e-10, 0x0000],
      [-0, 0x8000],
    ];
    for (const [value, half] of cases) expect([value, f32ToF16Bits(bitsOf(value))]).toEqual([value, half]);
    expect(f32ToF16Bits(0x7fc00000)).toBe(0x7e00);
    expect(f32ToF16Bits(0xffc00001)).toBe(0xfe00);
    expect(f32ToF16Bits(0x7f800001)).toBe(0x7e00);
  });

  it('f32 → f16 agrees with an independent nearest-half search on 60 000 random floats', () => {
    const random = seededRandom(5);
    for (let i = 0; i < 60_000; i++) {
      // Exponents around the half range, where every rounding path is taken.
      const value = (random() < 0.5 ? -1 : 1) * (1 + random()) * 2 ** Math.floor(random() * 50 - 30);
      const bits = bitsOf(value);
      const expected = referenceHalf(floatOf(bits));
      if (f32ToF16Bits(bits) !== expected) expect([floatOf(bits), f32ToF16Bits(bits)]).toEqual([floatOf(bits), expected]);
    }
  });

  it('every half survives f16 → f32 → f16 unchanged', () => {
    for (let h = 0; h < 65536; h++) {
      if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0) continue; // NaN payloads are canonicalised
      if (f32ToF16Bits(f16ToF32Bits(h)) !== h) expect(h.toString(16)).toBe('a round trip');
      if (!Object.is(floatOf(f16ToF32Bits(h)), halfValue(h))) expect([h, floatOf(f16ToF32Bits(h))]).toEqual([h, halfValue(h)]);
    }
  });

  it('f32 → bf16: round to nearest even, overflow to Inf, NaN → 0x7FC0', () => {
    expect(f32ToBf16Bits(bitsOf(1))).toBe(0x3f80);
    expect(f32ToBf16Bits(bitsOf(1 + 2 ** -8))).toBe(0x3f80);
    expect(f32ToBf16Bits(bitsOf(1 + 3 * 2 ** -8))).toBe(0x3f82);
    expect(f32ToBf16Bits(bitsOf(-(1 + 2 ** -8 + 2 ** -20)))).toBe(0xbf81);
    expect(f32ToBf16Bits(0x7f7fffff)).toBe(0x7f80);
    expect(f32ToBf16Bits(0xff7fffff)).toBe(0xff80);
    expect(f32ToBf16Bits(0x7f7f7fff)).toBe(0x7f7f);
    expect(f32ToBf16Bits(0xff800000)).toBe(0xff80);
    expect(f32ToBf16Bits(0xffc00000)).toBe(0x7fc0);
    expect(f32ToBf16Bits(0x7f800001)).toBe(0x7fc0);
  });

  it('converts buffers between F32, F16 and BF16', () => {
    const input = Buffer.alloc(16);
    [1, -2.5, 65536, NaN].forEach((v, i) => input.writeFloatLE(v, i * 4));
    const out = Buffer.alloc(8);
    convertElements(input, 'F32', 'F16', 4, out);
    expect([0, 2, 4, 6].map((o) => out.readUInt16LE(o))).toEqual([0x3c00, 0xc100, 0x7c00, 0x7e00]);
    const bf = Buffer.alloc(8);
    convertElements(input, 'F32', 'BF16', 4, bf);
    expect([0, 2, 4, 6].map((o) => bf.readUInt16LE(o))).toEqual([0x3f80, 0xc020, 0x4780, 0x7fc0]);
    // bf16 → f16: 65536 overflows half; f16 → bf16 is exact for these.
    const half = Buffer.alloc(8);
    convertElements(bf, 'BF16', 'F16', 4, half);
    expect([0, 2, 4, 6].map((o) => half.readUInt16LE(o))).toEqual([0x3c00, 0xc100, 0x7c00, 0x7e00]);
    const back = Buffer.alloc(8);
    convertElements(out, 'F16', 'BF16', 4, back);
    expect([0, 2, 4, 6].map((o) => back.readUInt16LE(o))).toEqual([0x3f80, 0xc020, 0x7f80, 0x7fc0]);
  });
});
