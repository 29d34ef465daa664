import { execFileSync } from 'node:child_process';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hasTool } from '../../test/support/tools.js';
import { signBytes, verifyBytes, writeKeyPair } from './signature.js';
import { testTempDir } from '../../test/support/temp.js';

describe('signatures', async () => {
  // Made while the suite is collected, outside any test: removed when the suite ends.
  const dir = await testTempDir('mf-sig-');
  afterAll(() => rm(dir, { recursive: true, force: true }));
  const keys = await writeKeyPair(join(dir, 'release'));
  const other = await writeKeyPair(join(dir, 'other'));
  const data = '{"lockfileVersion": 1}\n';

  it('writes the private key with mode 0600 and refuses to overwrite it', async () => {
    expect((await stat(keys.privateKeyPath)).mode & 0o777).toBe(0o600);
    await expect(writeKeyPair(join(dir, 'release'))).rejects.toMatchObject({ code: 'ERR_USAGE' });
  });

  it('accepts the right signature and refuses tampering, a wrong key and a missing signature', async () => {
    const signature = await signBytes(data, keys.privateKeyPath);
    await verifyBytes(data, signature, keys.publicKeyPath, 'lock');
    await expect(verifyBytes(data.replace('1', '2'), signature, keys.publicKeyPath, 'lock')).rejects.toMatchObject({ code: 'ERR_SIGNATURE' });
    await expect(verifyBytes(data, signature, other.publicKeyPath, 'lock')).rejects.toMatchObject({ code: 'ERR_SIGNATURE' });
    await expect(verifyBytes(data, undefined, keys.publicKeyPath, 'lock')).rejects.toMatchObject({ code: 'ERR_SIGNATURE', message: /not signed/ });
    await expect(verifyBytes(data, 'garbage', keys.publicKeyPath, 'lock')).rejects.toMatchObject({ code: 'ERR_SIGNATURE' });
    await expect(verifyBytes(data, signature, keys.privateKeyPath, 'lock')).resolves.toBeUndefined(); // a private key implies its public key
  });

  it.skipIf(!hasTool('openssl'))('writes signatures that openssl verifies', async () => {
    const file = join(dir, 'data.json');
    await writeFile(file, data);
    await writeFile(join(dir, 'data.sig'), Buffer.from((await signBytes(data, keys.privateKeyPath)).trim(), 'base64'));
    const out = execFileSync('openssl', ['pkeyutl', '-verify', '-pubin', '-inkey', keys.publicKeyPath, '-rawin', '-in', file, '-sigfile', join(dir, 'data.sig')]).toString();
    expect(out).toMatch(/Signature Verified Successfully/);
    expect(await readFile(keys.publicKeyPath, 'utf8')).toMatch(/^-----BEGIN PUBLIC KEY-----/);
  });
});
