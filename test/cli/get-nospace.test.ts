import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { canMountSmallDisk, runOnSmallDisk } from '../support/small-disk.js';
import { MiB, testScope } from '../transfer/helpers.js';
import { testTempDir } from '../support/temp.js';

const root = resolve(import.meta.dirname, '../..');
const scope = testScope();

describe.skipIf(!canMountSmallDisk())('modelfetch get on a full disk', () => {
  it('fails fast with ERR_NO_SPACE (exit 7), removes the partial file, and does not retry', async () => {
    const s = await scope.setup(8 * MiB);
    const mountPoint = await testTempDir('mf-full-');
    const run = await runOnSmallDisk({
      sizeBytes: MiB,
      mountPoint,
      cwd: root,
      argv: [process.execPath, '--import', 'tsx', join(root, 'src/cli/run.ts'), 'get', s.url, '-o', join(mountPoint, 'model.bin'), '--sha256', s.info.sha256, '--quiet'],
    });
    expect(run.code).toBe(7);
    expect(run.stderr).toContain('ERR_NO_SPACE');
    // get's own words: its -o flag (get has no --cache-dir), and the partial file is gone, so it starts over.
    expect(run.stderr).toContain(`  Free space on the disk holding ${mountPoint}, or pass -o with a folder on a larger disk, then run the same command again; the partial file was removed, so it starts over.`);
    expect(run.stderr).not.toContain('--cache-dir');
    expect(run.stderr).not.toContain('ranges are kept');
    expect(run.leftover).toEqual([]);
    // one probe and one round of segment requests, no retries
    expect(s.server.requests.length).toBeLessThanOrEqual(17);
  });
});
