import { createHash } from 'node:crypto';
import { access, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RepoPaths } from '../../src/cache/layout.js';
import { isRevisionInUse } from '../../src/cache/lock.js';
import { createMirrorServer } from '../../src/server/mirror-server.js';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';
import { hasTool } from '../support/tools.js';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '../support/browser.js';

const SIZE = 8 * 1024 * 1024;
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

async function until(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 3000; i++) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** A download in flight: shown live on the status page, and kept for resuming across a shutdown. */
describe('pull-through downloads in flight', () => {
  let hub: FixtureHub;
  let work: string;

  beforeAll(async () => {
    hub = await startFixtureHub({ repos: [{ repoId: 'org/slow', files: [{ path: 'big.bin', size: SIZE }] }, { repoId: 'org/page', files: [{ path: 'big.bin', size: SIZE }] }] });
    work = await mkdtemp(join(tmpdir(), 'mf-inflight-'));
  });

  afterAll(async () => {
    await hub.close();
    await rm(work, { recursive: true, force: true });
  });

  it('shutdown stops a download without publishing it; the next start resumes from the journal', async () => {
    const file = hub.file('org/slow', 'big.bin');
    const cacheDir = join(work, 'resume');
    const repo = new RepoPaths(cacheDir, 'model', 'org/slow');
    const digest = { algorithm: 'sha256' as const, hex: file.sha256 };
    hub.cdn.addFault({ fault: { throttleBytesPerSec: 4 * 1024 * 1024 } });
    const first = createMirrorServer({ cacheDir, upstream: hub.endpoint, graceMs: 100 });
    await first.listen();
    const client = fetch(`${first.url}/org/slow/resolve/main/big.bin`).then((r) => r.arrayBuffer()).then((b) => b.byteLength, () => -1);
    await until(async () => (await first.status()).downloads.some((d) => d.bytesDone >= 2 * 1024 * 1024), 'a partial download');
    // gc must leave a revision alone while the mirror pulls it.
    expect(await isRevisionInUse(repo, hub.commitOf('org/slow'))).toBe(true);
    await first.close();
    expect(await isRevisionInUse(repo, hub.commitOf('org/slow'))).toBe(false);
    hub.cdn.clearFaults();
    // The client got a short response; nothing became visible as a blob or snapshot file.
    expect(await client).toBeLessThan(SIZE);
    await expect(access(repo.blob(digest))).rejects.toThrow();
    await expect(access(repo.snapshotFile(hub.commitOf('org/slow'), 'big.bin'))).rejects.toThrow();
    const kept = await stat(repo.partial(digest));
    expect(kept.size).toBeGreaterThan(0);
    await access(`${repo.partial(digest)}.journal`);

    const sentBefore = hub.cdn.bodyBytesServed();
    const second = createMirrorServer({ cacheDir, upstream: hub.endpoint });
    await second.listen();
    try {
      const body = Buffer.from(await (await fetch(`${second.url}/org/slow/resolve/main/big.bin`)).arrayBuffer());
      expect(sha256(body)).toBe(file.sha256);
      // Resumed: upstream sent less than the whole file again.
      expect(hub.cdn.bodyBytesServed() - sentBefore).toBeLessThan(SIZE);
    } finally {
      await second.close();
    }
  });

  it.skipIf(!hasTool('chromium'))('the status page shows a download in flight with live progress', async () => {
    const cacheDir = join(work, 'page');
    // Slow enough that the page loads (even on a busy machine) while the download is still running.
    hub.cdn.addFault({ fault: { throttleBytesPerSec: 1024 * 1024 } });
    const mirror = createMirrorServer({ cacheDir, upstream: hub.endpoint, graceMs: 100 });
    await mirror.listen();
    const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
    try {
      const client = fetch(`${mirror.url}/org/page/resolve/main/big.bin`).then((r) => r.arrayBuffer()).catch(() => undefined);
      await until(async () => (await mirror.status()).downloads.length === 1, 'the download to start');
      const page = await browser.newPage();
      await page.goto(`${mirror.url}/`);
      const row = page.locator('tr[data-download="org/page/big.bin"]');
      await row.waitFor({ timeout: 15_000 });
      const progress = row.locator('progress');
      expect(await progress.getAttribute('max')).toBe(String(SIZE));
      const firstValue = Number(await progress.getAttribute('value'));
      // The poll moves the bar without a reload.
      await until(async () => Number((await progress.getAttribute('value').catch(() => '0')) ?? 0) > firstValue || (await row.count()) === 0, 'the progress bar to move');
      expect(await row.locator('td').nth(4).textContent()).toBe('1');
      const shot = join(work, 'status-inflight.png');
      await page.screenshot({ path: shot, fullPage: true });
      if (process.env.MODELFETCH_KEEP_SCREENSHOT) await page.screenshot({ path: process.env.MODELFETCH_KEEP_SCREENSHOT, fullPage: true });
      hub.cdn.clearFaults();
      await client;
      // Once done, the download leaves the table and the repo appears with its size.
      await expect.poll(() => page.locator('tr[data-repo="model:org/page"] .size').textContent({ timeout: 1000 }).catch(() => ''), { timeout: 15_000 }).toBe('8.0 MiB');
      await until(async () => (await page.locator('#downloads tbody tr').count()) === 0, 'the download row to go');
    } finally {
      hub.cdn.clearFaults();
      await browser.close();
      await mirror.close();
    }
  });
});
