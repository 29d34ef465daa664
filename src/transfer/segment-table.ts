import { splitPoint, type ByteRange } from './segment-plan.js';

/**
 * The live state of one file's byte ranges. Every byte of [0, size) belongs to exactly one segment;
 * a segment is fetched by at most one connection at a time. Positions only move forward:
 * start ≤ journaled ≤ written ≤ pos ≤ end.
 */
export interface Segment {
  start: number;
  /** Exclusive; shrinks when the segment is split. */
  end: number;
  /** Next byte to receive. */
  pos: number;
  /** Bytes [start, written) are on disk (positional write completed). */
  written: number;
  /** Bytes [start, journaled) are fdatasync'ed and recorded in the journal. */
  journaled: number;
  active: boolean;
}

function segmentOf(start: number, end: number, done: boolean): Segment {
  const at = done ? end : start;
  return { start, end, pos: at, written: at, journaled: at, active: false };
}

export class SegmentTable {
  /** Sorted by start. */
  readonly segments: Segment[] = [];

  /** `done` ranges come from the journal; everything else is to fetch. */
  constructor(
    readonly size: number,
    done: readonly ByteRange[],
    missing: readonly ByteRange[],
  ) {
    for (const r of done) this.segments.push(segmentOf(r.start, r.end, true));
    for (const r of missing) this.segments.push(segmentOf(r.start, r.end, false));
    this.segments.sort((a, b) => a.start - b.start);
  }

  private insert(segment: Segment): void {
    let at = this.segments.length;
    while (at > 0 && (this.segments[at - 1]?.start ?? 0) > segment.start) at -= 1;
    this.segments.splice(at, 0, segment);
  }

  /**
   * Claims the next piece of work: up to `chunkSize` bytes from the lowest unclaimed range (so the
   * finished prefix grows in order and the hash keeps up), or, when nothing is unclaimed, the back
   * half of the active segment with the most bytes left (dynamic splitting: the last percent never
   * crawls on one slow connection). Undefined when nothing can be claimed.
   */
  claim(chunkSize: number, minSegmentSize: number): Segment | undefined {
    const idle = this.segments.find((s) => !s.active && s.pos < s.end);
    if (idle) {
      if (idle.end - idle.pos > chunkSize + minSegmentSize) {
        const cut = idle.pos + chunkSize;
        this.insert(segmentOf(cut, idle.end, false));
        idle.end = cut;
      }
      idle.active = true;
      return idle;
    }
    let largest: Segment | undefined;
    for (const s of this.segments) {
      if (s.active && (!largest || s.end - s.pos > largest.end - largest.pos)) largest = s;
    }
    if (!largest) return undefined;
    const mid = splitPoint(largest.pos, largest.end, minSegmentSize);
    if (mid === undefined) return undefined;
    const back = segmentOf(mid, largest.end, false);
    largest.end = mid;
    back.active = true;
    this.insert(back);
    return back;
  }

  release(segment: Segment): void {
    segment.active = false;
  }

  /** Bytes [0, n) written without a gap. */
  contiguous(): number {
    let at = 0;
    for (const s of this.segments) {
      if (s.start !== at) break;
      if (s.written < s.end) return s.written;
      at = s.end;
    }
    return at;
  }

  bytesWritten(): number {
    return this.segments.reduce((sum, s) => sum + (s.written - s.start), 0);
  }

  complete(): boolean {
    return this.segments.every((s) => s.written === s.end && !s.active);
  }

  activeCount(): number {
    return this.segments.reduce((n, s) => n + (s.active ? 1 : 0), 0);
  }

  /** Ranges written since the last journal record, up to `upTo[i]` for segment i; marks them journaled. */
  takeUnjournaled(upTo: ReadonlyMap<Segment, number>): ByteRange[] {
    const out: ByteRange[] = [];
    for (const [s, written] of upTo) {
      if (written > s.journaled) {
        out.push({ start: s.journaled, end: written });
        s.journaled = written;
      }
    }
    return out;
  }
}
