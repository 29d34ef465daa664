import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';
import { testTempDir } from '../support/temp.js';

/** huggingface_hub's HF_HUB_DISABLE_PROGRESS_BARS, HF_HUB_DOWNLOAD_TIMEOUT and HF_HUB_ETAG_TIMEOUT, honoured by pull and download. */

let hub: FixtureHub;
const WEIGHTS = 'model.safetensors';

beforeAll(async () => {
  hub = await startFixtureHub({ repos: [{ repoId: 'org/env', files: [{ path: 'config.json', content: '{}' }, { path: WEIGHTS, size: 1024 * 1024 + 5, lfs: true }] }] });
});
afterAll(() => hub.close());
beforeEach(() => {
  hub.hub.clearFaults();
  hub.cdn.clearFaults();
});

async function pullWith(env: NodeJS.ProcessEnv, command = 'pull') {
  const dir = await testTempDir('mf-hf-env-');
  return runCli([command, 'org/env'], { HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: join(dir, 'hub'), ...env });
}

const isApi = (req: { url?: string }) => (req.url ?? '').startsWith('/api/');
const progressLines = (stderr: string) => stderr.split('\n').filter((line) => /\d+ conn\b/.test(line));

describe('HF_HUB_DISABLE_PROGRESS_BARS', () => {
  it('pull prints progress lines without it and none with it; the result line stays', async () => {
    const plain = await pullWith({});
    expect(plain.code).toBe(0);
    expect(progressLines(plain.stderr).length).toBeGreaterThan(0);
    const off = await pullWith({ HF_HUB_DISABLE_PROGRESS_BARS: '1' });
    expect(off.code).toBe(0);
    expect(progressLines(off.stderr)).toEqual([]);
    expect(off.stderr).toContain('files ready');
  });

  it('download honours it too', async () => {
    expect(progressLines((await pullWith({}, 'download')).stderr).length).toBeGreaterThan(0);
    const off = await pullWith({ HF_HUB_DISABLE_PROGRESS_BARS: 'true' }, 'download');
    expect(off.code).toBe(0);
    expect(progressLines(off.stderr)).toEqual([]);
  });
});

describe('HF_HUB_ETAG_TIMEOUT', () => {
  it('bounds each hub API request: a slow API fails the pull with a network error, and succeeds without the variable', async () => {
    hub.hub.addFault({ match: isApi, fault: { latencyMs: 1500 } });
    const slow = await pullWith({ HF_HUB_ETAG_TIMEOUT: '0.3' });
    expect(slow.code).toBe(6);
    expect(slow.stderr).toContain('Could not reach the hub');
    expect(slow.stderr).toMatch(/timeout/i);
    expect((await pullWith({})).code).toBe(0);
  });

  it('a value that is not seconds is a usage error naming the variable', async () => {
    const run = await pullWith({ HF_HUB_ETAG_TIMEOUT: 'soon' });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('HF_HUB_ETAG_TIMEOUT="soon" is not a number of seconds');
  });
});

describe('HF_HUB_DOWNLOAD_TIMEOUT', () => {
  it('is the stall timeout: a download that stops sending is retried after it, and completes', async () => {
    hub.cdn.addFault({ times: 1, fault: { stallAfterBytes: 4096 } });
    const run = await pullWith({ HF_HUB_DOWNLOAD_TIMEOUT: '0.5' });
    expect(run.code).toBe(0);
    expect(run.stderr).toContain('no data for too long, retry 1/');
  });
});
