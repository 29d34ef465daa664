import { readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { JournalWriter, readJournal } from './journal.js';
import { testTempDir } from '../../test/support/temp.js';

let dir: string;
beforeEach(async () => {
  dir = await testTempDir('modelfetch-journal-');
});

const key = { identity: 'hf:org/model@abc:model.bin', size: 1000, etag: 'e1' };

async function written(): Promise<string> {
  const path = join(dir, 'f.part.journal');
  const journal = await JournalWriter.create(path, key);
  await journal.record([{ start: 0, end: 100 }, { start: 500, end: 600 }]);
  await journal.record([{ start: 100, end: 200 }]);
  await journal.close();
  return path;
}

describe('resume journal', () => {
  it('reads back what was recorded, merged', async () => {
    expect(await readJournal(await written(), key)).toEqual([{ start: 0, end: 200 }, { start: 500, end: 600 }]);
  });

  it('keeps no URL or identity text on disk', async () => {
    expect(await readFile(await written(), 'utf8')).not.toContain('org/model');
  });

  it('belongs to one identity, size and ETag', async () => {
    const path = await written();
    expect(await readJournal(path, { ...key, etag: 'e2' })).toBeUndefined();
    expect(await readJournal(path, { ...key, size: 1001 })).toBeUndefined();
    expect(await readJournal(path, { ...key, identity: 'other' })).toBeUndefined();
  });

  it('ignores a torn last line but discards a tampered one', async () => {
    const path = await written();
    const text = await readFile(path, 'utf8');
    await writeFile(path, `${text}R 200 30`);
    expect(await readJournal(path, key)).toEqual([{ start: 0, end: 200 }, { start: 500, end: 600 }]);
    await writeFile(path, text.replace('R 500 600', 'R 500 900'));
    expect(await readJournal(path, key)).toBeUndefined();
    await writeFile(path, text.replace('MFJ1', 'MFJ2'));
    expect(await readJournal(path, key)).toBeUndefined();
  });

  it('discards out-of-bounds and overlapping records even with valid checksums', async () => {
    const path = join(dir, 'g.journal');
    const journal = await JournalWriter.create(path, key);
    await journal.record([{ start: 0, end: 100 }, { start: 50, end: 150 }]);
    await journal.close();
    expect(await readJournal(path, key)).toBeUndefined();
    const other = join(dir, 'h.journal');
    const j2 = await JournalWriter.create(other, key);
    await j2.record([{ start: 900, end: 1001 }]);
    await j2.close();
    expect(await readJournal(other, key)).toBeUndefined();
  });

  it('never reads or writes through a symlink', async () => {
    const real = await written();
    const link = join(dir, 'link.journal');
    await symlink(real, link);
    expect(await readJournal(link, key)).toBeUndefined();
    const victim = join(dir, 'victim');
    await writeFile(victim, 'keep');
    const planted = join(dir, 'planted.journal');
    await symlink(victim, planted);
    const journal = await JournalWriter.create(planted, key);
    await journal.close();
    expect(await readFile(victim, 'utf8')).toBe('keep');
  });
});
