import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isModelfetchError } from '../../src/core/errors.js';
import { pull } from '../../src/pull/index.js';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';
import { testTempDir } from '../support/temp.js';

const TOKEN = 'hf_tokenpolicygated0001';

/** `token: null`: the caller decided there is no token, so none is read from the environment or a token file. */
describe('pull with no token by policy', () => {
  let hub: FixtureHub;
  beforeAll(async () => {
    hub = await startFixtureHub({
      repos: [
        { repoId: 'org/open', files: [{ path: 'config.json', content: '{}' }] },
        { repoId: 'org/gated', gatedToken: TOKEN, files: [{ path: 'config.json', content: '{}' }] },
      ],
    });
  });
  afterAll(() => hub.close());

  it('sends no token although HF_TOKEN and the token file name one', async () => {
    const home = await testTempDir('mf-token-');
    await mkdir(join(home, 'hf'), { recursive: true });
    await writeFile(join(home, 'hf', 'token'), TOKEN);
    const cacheDir = join(home, 'hub');
    hub.resetLogs();
    const result = await pull({ repo: 'org/open', cacheDir, endpoint: hub.endpoint, token: null, env: { HF_TOKEN: TOKEN, HF_HOME: join(home, 'hf') } });
    expect(result.files).toBe(1);
    expect(hub.requests().length).toBeGreaterThan(0);
    expect(hub.requests().filter((r) => r.headers.authorization !== undefined)).toEqual([]);
    // Without the policy the environment's token would open the gated repo; with it, it stays closed.
    const refused = await pull({ repo: 'org/gated', cacheDir, endpoint: hub.endpoint, token: null, env: { HF_HOME: join(home, 'hf') } }).catch((e: unknown) => e);
    expect(isModelfetchError(refused) && refused.code).toBe('ERR_GATED');
    const allowed = await pull({ repo: 'org/gated', cacheDir, endpoint: hub.endpoint, env: { HF_HOME: join(home, 'hf') } });
    expect(allowed.files).toBe(1);
  });
});
