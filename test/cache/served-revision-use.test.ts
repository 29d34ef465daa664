import { randomBytes } from 'node:crypto';
import { utimes } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { gcCache } from '../../src/cache/gc.js';
import { scanCache } from '../../src/cache/scan.js';
import { createMirrorServer } from '../../src/server/mirror-server.js';
import { buildCachedRepo, digestOf, fakeCommit } from '../support/cache-builder.js';
import { testTempDir } from '../support/temp.js';

describe('the mirror server and gc', () => {
  it('records a served revision as used, so gc --unused-for keeps it and removes the one nobody served', async () => {
    const root = await testTempDir('mf-served-');
    const old = new Date(Date.now() - 30 * 86_400_000);
    const served = { path: 'w.bin', content: randomBytes(4096), lfs: true };
    const idle = { path: 'i.bin', content: randomBytes(1024), lfs: true };
    const a = await buildCachedRepo(root, { repoId: 'org/served', commit: fakeCommit('s'), files: [served] });
    const b = await buildCachedRepo(root, { repoId: 'org/idle', commit: fakeCommit('i'), files: [idle] });
    await utimes(a.blob(digestOf(served)), old, old);
    await utimes(b.blob(digestOf(idle)), old, old);

    const mirror = createMirrorServer({ cacheDir: root, publicRepos: ['*'], log: () => {} });
    await mirror.listen();
    try {
      const response = await fetch(`${mirror.url}/org/served/resolve/main/w.bin`);
      expect(Buffer.from(await response.arrayBuffer()).equals(served.content)).toBe(true);
    } finally {
      await mirror.close();
    }
    const scan = await scanCache({ cacheDir: root });
    expect(scan.repos.find((r) => r.repoId === 'org/served')!.revisions[0]!.lastUsed).toBeGreaterThan(Date.now() - 60_000);
    const report = await gcCache({ cacheDir: root, unusedForMs: 7 * 86_400_000 });
    expect(report.revisions.map((r) => r.repoId)).toEqual(['org/idle']);
  });
});
