import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';
import { CLI, runCli, TSX } from '../preload/cli-helpers.js';
import { canMountSmallDisk, runOnSmallDisk } from '../support/small-disk.js';

/**
 * The free-space check before the first byte, on a real small tmpfs: pull, sync and get refuse at
 * once with ERR_NO_SPACE (exit 7) naming what is needed and what is free, and no content request is
 * made; with room the same command succeeds; --ignore-disk-space skips the check.
 */

const root = resolve(import.meta.dirname, '../..');
const MiB = 1024 * 1024;
const cli = (...args: string[]) => [process.execPath, '--import', TSX, CLI, ...args];

let hub: FixtureHub;
let work: string;

beforeAll(async () => {
  hub = await startFixtureHub({
    repos: [
      {
        repoId: 'org/big',
        files: [
          { path: 'config.json', content: '{"model_type":"big"}' },
          { path: 'model.safetensors', size: 3 * MiB, lfs: true },
        ],
      },
      { repoId: 'org/small', files: [{ path: 'weights.bin', size: 512 * 1024, lfs: true }] },
    ],
  });
  work = await mkdtemp(join(tmpdir(), 'mf-diskspace-'));
});
afterAll(async () => {
  await hub.close();
  await rm(work, { recursive: true, force: true });
});
beforeEach(() => hub.resetLogs());

/** Requests for file content: resolve calls on the hub, and anything on the CDN. */
const contentRequests = () => hub.hub.requests.filter((r) => r.url.includes('/resolve/')).length + hub.cdn.requests.length;

async function onSmallDisk(sizeBytes: number, argv: (mount: string) => string[], cwd = root) {
  const mountPoint = await mkdtemp(join(work, 'disk-'));
  try {
    return await runOnSmallDisk({ sizeBytes, mountPoint, cwd, argv: argv(mountPoint), env: { PATH: process.env.PATH, HOME: process.env.HOME, HF_ENDPOINT: hub.endpoint } });
  } finally {
    await rm(mountPoint, { recursive: true, force: true });
  }
}

describe.skipIf(!canMountSmallDisk())('free space is checked before the first byte', () => {
  it('pull into a disk too small fails at once with both numbers and no content request; with room it succeeds', async () => {
    const full = await onSmallDisk(MiB, (mount) => cli('pull', 'org/big', '--cache-dir', join(mount, 'hub'), '--quiet'));
    expect(full.code).toBe(7);
    expect(full.stderr).toContain('[ERR_NO_SPACE]');
    expect(full.stderr).toMatch(/3\.0 MiB still to download, (1\.0 MiB|1[0-9]{3}\.\d KiB|\d{3}\.\d KiB) free/);
    expect(full.stderr).toContain('--ignore-disk-space');
    expect(full.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(contentRequests()).toBe(0);
    expect(full.leftover.filter((line) => line.includes('blobs/'))).toEqual([]);

    hub.resetLogs();
    const roomy = await onSmallDisk(8 * MiB, (mount) => cli('pull', 'org/big', '--cache-dir', join(mount, 'hub'), '--quiet'));
    expect(roomy.stderr).toBe('');
    expect(roomy.code).toBe(0);
    expect(roomy.leftover.some((line) => line.includes('blobs/') && line.endsWith(` ${3 * MiB}`))).toBe(true);
  });

  it('--ignore-disk-space skips the check: the download starts and then hits the real full disk', async () => {
    const run = await onSmallDisk(MiB, (mount) => cli('pull', 'org/big', '--cache-dir', join(mount, 'hub'), '--quiet', '--ignore-disk-space'));
    expect(run.code).toBe(7);
    expect(run.stderr).not.toContain('still to download');
    expect(contentRequests()).toBeGreaterThan(0);
  });

  it('sync checks the whole lockfile before the first byte: a second model that does not fit stops the first', async () => {
    const project = join(work, 'project');
    await mkdir(project, { recursive: true });
    await writeFile(join(project, 'modelfetch.yaml'), ['version: 1', 'models:', '  - repo: org/small', '  - repo: org/big', ''].join('\n'));
    const locked = await runCli(['lock', '--endpoint', hub.endpoint], { cwd: project });
    expect(locked.stderr).toBe('');
    expect(locked.code).toBe(0);
    hub.resetLogs();
    const run = await onSmallDisk(MiB, (mount) => cli('sync', '--cache-dir', join(mount, 'hub'), '--endpoint', hub.endpoint), project);
    expect(run.code).toBe(7);
    expect(run.stderr).toMatch(/3\.5 MiB still to download, .* free/);
    expect(contentRequests()).toBe(0);
  });

  it('get checks once the size is known, before writing, and leaves nothing behind', async () => {
    const url = `${hub.endpoint}/org/big/resolve/main/model.safetensors`;
    const run = await onSmallDisk(MiB, (mount) => cli('get', url, '-o', join(mount, 'model.safetensors'), '--quiet'));
    expect(run.code).toBe(7);
    expect(run.stderr).toMatch(/3\.0 MiB still to download, .* free/);
    expect(run.stderr).toContain('-o');
    expect(run.leftover).toEqual([]);
    // Only the probe reached the content: no segment was requested.
    expect(hub.cdn.requests.filter((r) => r.method === 'GET' && r.bodyBytes > 1).length).toBe(0);
  });
});
