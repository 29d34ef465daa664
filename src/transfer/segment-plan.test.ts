import { describe, expect, it } from 'vitest';
import { mergeRanges, missingRanges, splitPoint } from './segment-plan.js';
import { SegmentTable } from './segment-table.js';

describe('segment arithmetic', () => {
  it('merges and complements ranges', () => {
    expect(mergeRanges([{ start: 5, end: 8 }, { start: 0, end: 5 }, { start: 10, end: 12 }])).toEqual([{ start: 0, end: 8 }, { start: 10, end: 12 }]);
    expect(missingRanges(15, [{ start: 0, end: 8 }, { start: 10, end: 12 }])).toEqual([{ start: 8, end: 10 }, { start: 12, end: 15 }]);
    expect(missingRanges(10, [])).toEqual([{ start: 0, end: 10 }]);
  });

  it('splits only what leaves two halves of at least the minimum', () => {
    expect(splitPoint(0, 100, 10)).toBe(50);
    expect(splitPoint(81, 100, 10)).toBeUndefined();
  });
});

describe('SegmentTable', () => {
  it('hands out chunks in file order, then splits the largest active segment', () => {
    const table = new SegmentTable(100, [], [{ start: 0, end: 100 }]);
    const a = table.claim(40, 10);
    const b = table.claim(40, 10);
    const c = table.claim(40, 10);
    expect([a?.start, a?.end, b?.start, b?.end, c?.start, c?.end]).toEqual([0, 40, 40, 80, 80, 100]);
    if (!a || !b || !c) throw new Error('unreachable');
    a.pos = a.written = 40;
    table.release(a);
    b.pos = b.written = 50; // 30 bytes left in b, 20 in c
    const d = table.claim(40, 10);
    expect([d?.start, d?.end, b.end]).toEqual([65, 80, 65]);
    expect(table.contiguous()).toBe(50);
    expect(table.claim(40, 10)?.start).toBe(90); // c had 20 left
    expect(table.claim(40, 10)).toBeUndefined(); // everything left is too small to split
  });

  it('starts from journaled ranges and reports the contiguous prefix', () => {
    const table = new SegmentTable(100, [{ start: 0, end: 30 }, { start: 60, end: 70 }], [{ start: 30, end: 60 }, { start: 70, end: 100 }]);
    expect(table.bytesWritten()).toBe(40);
    expect(table.contiguous()).toBe(30);
    expect(table.claim(1000, 10)?.start).toBe(30);
  });
});
