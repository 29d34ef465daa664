import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isRevisionInUse } from '../../src/cache/lock.js';
import { RepoPaths } from '../../src/cache/layout.js';
import { serialiseLockfile } from '../../src/preload/lockfile.js';
import { fakeCommit } from '../support/cache-builder.js';
import { buildLockedCache } from '../support/locked-cache.js';
import { runCli } from '../preload/cli-helpers.js';
import { testTempDir } from '../support/temp.js';

describe('modelfetch run and gc', () => {
  it('holds the synced revisions in use while the command runs, and lets go when it exits', async () => {
    const dir = await testTempDir('mf-run-hold-');
    const cache = join(dir, 'hub');
    const commit = fakeCommit('held');
    const { lock } = await buildLockedCache(cache, [{ repoId: 'org/held', commit, files: [{ path: 'config.json', content: Buffer.from('{}') }] }]);
    await writeFile(join(dir, 'modelfetch.lock.json'), serialiseLockfile(lock));
    const repo = new RepoPaths(cache, 'model', 'org/held');
    const out = join(dir, 'markers.json');
    // The command itself looks at the in-use markers while it runs.
    const script = `const fs = require('fs'); fs.writeFileSync(${JSON.stringify(out)}, JSON.stringify(fs.readdirSync(${JSON.stringify(repo.inUseDir(commit))})))`;
    const result = await runCli(['run', '--lock', join(dir, 'modelfetch.lock.json'), '--cache-dir', cache, '--endpoint', 'http://mirror.invalid', '--', process.execPath, '-e', script]);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(await readFile(out, 'utf8'))).toHaveLength(1);
    expect(await isRevisionInUse(repo, commit)).toBe(false);
    expect(await readdir(repo.inUseDir(commit)).catch(() => [])).toEqual([]);
  });
});
