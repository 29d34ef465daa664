import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMirrorServer, type MirrorServer } from '../../src/server/mirror-server.js';
import { buildCachedRepo, fakeCommit } from '../support/cache-builder.js';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '../support/browser.js';
import { hasTool } from '../support/tools.js';

describe.skipIf(!hasTool('chromium'))('status page in a real browser', () => {
  let root: string;
  let mirror: MirrorServer;
  let browser: Browser;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'mf-status-'));
    await buildCachedRepo(root, { repoId: 'org/big-model', commit: fakeCommit('a'), files: [{ path: 'w.bin', content: randomBytes(3 * 1024 * 1024), lfs: true }] });
    await buildCachedRepo(root, { repoId: 'org/small', repoType: 'dataset', commit: fakeCommit('b'), files: [{ path: 'x.txt', content: Buffer.from('hello') }] });
    mirror = createMirrorServer({ cacheDir: root, publicRepos: ['*'] });
    await mirror.listen();
    browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
  });

  afterAll(async () => {
    await browser?.close();
    await mirror?.close();
    await rm(root, { recursive: true, force: true });
  });

  it('lists cached repos with sizes and keeps hit rate and rows current by polling', async () => {
    const page = await browser.newPage();
    await page.goto(`${mirror.url}/`);
    const rows = page.locator('#repos tbody tr');
    expect(await rows.count()).toBe(2);
    expect(await page.locator('tr[data-repo="model:org/big-model"] .size').textContent()).toBe('3.0 MiB');
    expect(await page.locator('tr[data-repo="dataset:org/small"] .size').textContent()).toBe('5 B');
    expect(await page.locator('#hit-rate').textContent()).toBe('–');
    // A hit after the page loaded shows up through the poll, without a reload.
    await fetch(`${mirror.url}/org/big-model/resolve/main/w.bin`).then((r) => r.arrayBuffer());
    await expect.poll(() => page.locator('#hit-rate').textContent(), { timeout: 15_000 }).toBe('100.0%');
    // Bytes served are counted when the response has finished on the server, which can be a poll
    // later than the hit that the request counted on arrival.
    await expect.poll(() => page.locator('#served').textContent(), { timeout: 15_000 }).toMatch(/MiB/);
    const shot = join(root, 'status.png');
    await page.screenshot({ path: shot, fullPage: true });
    if (process.env.MODELFETCH_KEEP_SCREENSHOT) await page.screenshot({ path: process.env.MODELFETCH_KEEP_SCREENSHOT, fullPage: true });
    expect(await page.locator('body').getAttribute('data-error')).toBeNull();
    await page.close();
  });
});
