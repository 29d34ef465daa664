/** Pure arithmetic over byte ranges: what is left to fetch and where a segment may be split. */

/** A half-open byte range [start, end). */
export interface ByteRange {
  start: number;
  end: number;
}

/** Sorts and merges ranges that touch or overlap. */
export function mergeRanges(ranges: readonly ByteRange[]): ByteRange[] {
  const sorted = ranges.filter((r) => r.end > r.start).sort((a, b) => a.start - b.start);
  const out: ByteRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.start <= last.end) last.end = Math.max(last.end, r.end);
    else out.push({ ...r });
  }
  return out;
}

/** The gaps of [0, size) not covered by `done`. */
export function missingRanges(size: number, done: readonly ByteRange[]): ByteRange[] {
  const gaps: ByteRange[] = [];
  let at = 0;
  for (const r of mergeRanges(done)) {
    if (r.start > at) gaps.push({ start: at, end: Math.min(r.start, size) });
    at = Math.max(at, r.end);
  }
  if (at < size) gaps.push({ start: at, end: size });
  return gaps;
}

/**
 * Where to split a segment whose next byte to fetch is `pos` and whose end is `end`, so that both
 * halves are at least `minSegmentSize`; undefined when it is too small to split.
 */
export function splitPoint(pos: number, end: number, minSegmentSize: number): number | undefined {
  const remaining = end - pos;
  if (remaining < 2 * minSegmentSize) return undefined;
  return pos + Math.ceil(remaining / 2);
}
