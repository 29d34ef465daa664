import type { FileHandle } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { Checkpointer } from './checkpointer.js';
import type { JournalWriter } from './journal.js';
import type { ByteRange } from './segment-plan.js';
import { SegmentTable } from './segment-table.js';

function fakeFile(log: string[]): FileHandle {
  return { datasync: async () => void log.push('datasync') } as unknown as FileHandle;
}

function fakeJournal(log: string[]): JournalWriter {
  return { record: async (ranges: ByteRange[]) => void log.push(`record ${JSON.stringify(ranges)}`) } as unknown as JournalWriter;
}

describe('Checkpointer', () => {
  it('syncs the data before the journal records it, and records only what is new', async () => {
    const log: string[] = [];
    const table = new SegmentTable(100, [], [{ start: 0, end: 100 }]);
    const segment = table.segments[0]!;
    const checkpointer = new Checkpointer(fakeFile(log), fakeJournal(log), table, new Set());
    segment.written = 40;
    await checkpointer.flush();
    segment.written = 70;
    await checkpointer.flush();
    await checkpointer.flush();
    await checkpointer.stop();
    expect(log).toEqual(['datasync', 'record [{"start":0,"end":40}]', 'datasync', 'record [{"start":40,"end":70}]']);
  });

  it('without a journal (a plain stream) still syncs what arrived', async () => {
    const log: string[] = [];
    const table = new SegmentTable(100, [], [{ start: 0, end: 100 }]);
    const checkpointer = new Checkpointer(fakeFile(log), undefined, table, new Set());
    table.segments[0]!.written = 50;
    await checkpointer.flush();
    await checkpointer.stop();
    expect(log).toEqual(['datasync']);
  });
});
