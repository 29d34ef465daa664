import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';
import { canMountSmallDisk, runOnSmallDisk } from '../support/small-disk.js';
import { testTempDir } from '../support/temp.js';

/**
 * Case 18: a real full disk. The cache lives on a 2 MiB tmpfs mounted in a private mount namespace
 * (`unshare -rm`), so the kernel itself answers ENOSPC in the middle of a write. The up-front
 * free-space check is skipped (`--ignore-disk-space`) so that the write path itself is tested; the
 * check has its own test (test/cli/disk-space.test.ts).
 */

const RUN_TS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'run.ts');
let hub: FixtureHub | undefined;
afterEach(async () => hub?.close());

describe.skipIf(!canMountSmallDisk())('disk full (case 18)', () => {
  for (const command of ['pull', 'get'] as const) {
    it(`${command}: fails fast with exit code 7, a clear message, and no temp file left`, async () => {
      hub = await startFixtureHub({ repos: [{ repoId: 'org/big', files: [{ path: 'config.json', content: '{}' }, { path: 'w.safetensors', size: 6 * 1024 * 1024 }] }] });
      const file = hub.file('org/big', 'w.safetensors');
      const mountPoint = await testTempDir('mf-full-');
      const args = command === 'pull' ? ['pull', 'org/big', '--cache-dir', mountPoint, '--quiet', '--ignore-disk-space'] : ['get', `${hub.cdn.origin}/lfs/${file.sha256}`, '-o', join(mountPoint, 'w.safetensors'), '--sha256', file.sha256, '--quiet', '--ignore-disk-space'];
      const run = await runOnSmallDisk({
        sizeBytes: 2 * 1024 * 1024,
        mountPoint,
        argv: [process.execPath, '--import', 'tsx', RUN_TS, ...args],
        env: { PATH: process.env.PATH, HOME: process.env.HOME, HF_ENDPOINT: hub.endpoint, HF_TOKEN: '' },
      });
      expect(run.code, run.stderr).toBe(7);
      expect(run.stderr).toMatch(/no space left/i);
      expect(run.stderr).toMatch(/ERR_NO_SPACE/);
      // The file that hit the full disk leaves no partial behind to keep the disk full. (A small file
      // that finished in the same batch may stay, complete, under .locks/ for the next run.)
      const partials = run.leftover.filter((line) => line.includes(file.sha256) && /\.(part|journal|tmp)/.test(line));
      expect(partials, run.leftover.join('\n')).toEqual([]);
      const bigLeftovers = run.leftover.filter((line) => Number(line.split(' ').pop()) > 1024);
      expect(bigLeftovers, run.leftover.join('\n')).toEqual([]);
      // No retry loop: the big file was asked for a handful of times, not again and again.
      const gets = hub.requests().filter((r) => r.method === 'GET' && r.url.includes(file.sha256) && r.headers.range !== 'bytes=0-0');
      expect(gets.length).toBeLessThanOrEqual(16);
      // And nothing half-written sits where a loader looks.
      expect(run.leftover.filter((line) => line.startsWith('models--org--big/blobs/') && !line.endsWith(' 2'))).toEqual([]);
    });
  }
});
