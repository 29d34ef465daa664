import type { ByteRange } from '../segment-plan.js';
import type { Reconstruction, XorbRangeFetch } from './reconstruction.js';

/**
 * Where each term of a reconstruction lands in the file, and which terms one fetch serves: a range
 * that repeats in the file is fetched once and written to each of its terms.
 */

export interface TermSlot {
  index: number;
  chunkStart: number;
  chunkEnd: number;
  /** Where the term's first byte goes; negative for a first term that starts before byte 0. */
  fileOffset: number;
  length: number;
}

/** The terms one fetch serves. */
export interface RangeWork {
  terms: TermSlot[];
}

export interface TermPlan {
  /** Terms grouped by the fetch that serves them, in the order the file first needs them. */
  works: RangeWork[];
  /** The file offset just past each term. */
  termEnds: number[];
}

export function planTerms(reconstruction: Reconstruction): TermPlan {
  const byFetch = new Map<XorbRangeFetch, RangeWork>();
  const termEnds: number[] = [];
  let offset = -reconstruction.offsetIntoFirstRange;
  reconstruction.terms.forEach((term, index) => {
    let work = byFetch.get(term.fetch);
    if (!work) {
      work = { terms: [] };
      byFetch.set(term.fetch, work);
    }
    work.terms.push({ index, chunkStart: term.chunkStart, chunkEnd: term.chunkEnd, fileOffset: offset, length: term.unpackedLength });
    offset += term.unpackedLength;
    termEnds.push(offset);
  });
  return { works: [...byFetch.values()], termEnds };
}

/** The file bytes [start, end) of term `index` (a first term that starts before byte 0 is cut there). */
export function termBytes(termEnds: readonly number[], index: number, size: number): ByteRange {
  return { start: Math.max(0, index === 0 ? 0 : (termEnds[index - 1] as number)), end: Math.min(size, termEnds[index] as number) };
}
