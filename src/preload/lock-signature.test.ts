import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readVerifiedLockfile, signLockfile } from './lock-signature.js';
import { serialiseLockfile } from './lockfile.js';
import { writeKeyPair } from './signature.js';
import { testTempDir } from '../../test/support/temp.js';

describe('readVerifiedLockfile', async () => {
  // Made while the suite is collected, outside any test: removed when the suite ends.
  const dir = await testTempDir('mf-locksig-');
  afterAll(() => rm(dir, { recursive: true, force: true }));
  const keys = await writeKeyPair(join(dir, 'k'));
  const lockPath = join(dir, 'modelfetch.lock.json');
  const commit = 'e'.repeat(40);
  const text = serialiseLockfile({
    lockfileVersion: 1,
    models: [{ source: 'hf', repoType: 'model', repo: 'org/m', revision: 'main', include: [], exclude: [], commit, identity: `hf:model/org/m@${commit}`, files: [{ path: 'a.json', size: 1, digest: { algorithm: 'git-sha1', hex: 'f'.repeat(40) } }] }],
  });

  it('accepts the signed lockfile, also re-indented, and refuses any change to its content', async () => {
    await writeFile(lockPath, text);
    await signLockfile(lockPath, keys.privateKeyPath);
    expect((await readVerifiedLockfile(lockPath, keys.publicKeyPath)).lock.models[0]!.commit).toBe(commit);
    await writeFile(lockPath, JSON.stringify(JSON.parse(text))); // same content, other whitespace
    await expect(readVerifiedLockfile(lockPath, keys.publicKeyPath)).resolves.toBeDefined();
    await writeFile(lockPath, text.replace('"a.json"', '"b.json"'));
    await expect(readVerifiedLockfile(lockPath, keys.publicKeyPath)).rejects.toMatchObject({ code: 'ERR_SIGNATURE' });
  });

  it('reports a tampered, unparsable lockfile as a signature failure, not a syntax error', async () => {
    await writeFile(lockPath, text);
    await signLockfile(lockPath, keys.privateKeyPath);
    await writeFile(lockPath, `${text.slice(0, 40)}{{{`);
    await expect(readVerifiedLockfile(lockPath, keys.publicKeyPath)).rejects.toMatchObject({ code: 'ERR_SIGNATURE' });
    await expect(readVerifiedLockfile(lockPath)).rejects.toMatchObject({ code: 'ERR_USAGE' });
    expect(await readFile(`${lockPath}.sig`, 'utf8')).toMatch(/^[A-Za-z0-9+/]{86}==\n$/);
  });
});
