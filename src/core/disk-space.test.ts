import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { assertDiskSpace, bytesStillMissing } from './disk-space.js';
import { isModelfetchError } from './errors.js';
import { testTempDir } from '../../test/support/temp.js';

let dir: string;
beforeEach(async () => {
  dir = await testTempDir('mf-space-');
});

describe('assertDiskSpace', () => {
  it('counts only what a partial file does not hold yet (a resumed download needs the rest)', async () => {
    await writeFile(join(dir, 'a.part'), Buffer.alloc(64 * 1024, 1));
    expect(await bytesStillMissing([{ path: join(dir, 'a.part'), size: 100 * 1024 }, { path: join(dir, 'sub', 'b.part'), size: 10 }])).toBe(36 * 1024 + 10);
  });

  it('refuses with ERR_NO_SPACE naming both numbers, asking the nearest existing folder', async () => {
    const asked: string[] = [];
    const freeBytes = async (existing: string) => {
      asked.push(existing);
      return 1024 * 1024;
    };
    const error = await assertDiskSpace([{ path: join(dir, 'not', 'yet', 'x.part'), size: 3 * 1024 * 1024 }], { freeBytes, elsewhere: 'pick another -o' }).catch((e: unknown) => e);
    expect(isModelfetchError(error, 'ERR_NO_SPACE')).toBe(true);
    expect((error as Error).message).toBe(`Not enough disk space in ${dir}: 3.0 MiB still to download, 1.0 MiB free`);
    expect((error as { hint?: string }).hint).toBe('Free 2.0 MiB or more there, or pick another -o; --ignore-disk-space skips this check.');
    expect(asked).toEqual([dir]);
  });

  it('passes when it fits, and never asks when told to ignore', async () => {
    await assertDiskSpace([{ path: join(dir, 'x'), size: 10 }], { freeBytes: async () => 10 });
    await assertDiskSpace([{ path: join(dir, 'x'), size: 10 }], { ignore: true, freeBytes: async () => { throw new Error('not asked'); } });
  });
});
