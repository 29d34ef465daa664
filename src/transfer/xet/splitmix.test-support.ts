/** SplitMix64 bytes, as xet-core's chunker tests generate their reference data (portable, seedable). */
export function splitmixData(length: number, seed: bigint): Uint8Array {
  const out = new Uint8Array(length + 8);
  let state = seed;
  const mask = (1n << 64n) - 1n;
  for (let at = 0; at < length; at += 8) {
    state = (state + 0x9e3779b97f4a7c15n) & mask;
    let z = state;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & mask;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & mask;
    z ^= z >> 31n;
    for (let i = 0; i < 8; i++) out[at + i] = Number((z >> BigInt(8 * i)) & 0xffn);
  }
  return out.subarray(0, length);
}
