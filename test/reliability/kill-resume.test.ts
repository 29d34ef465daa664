import { spawn } from 'node:child_process';
import { readdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { RepoPaths } from '../../src/cache/layout.js';
import { auditCache, isClean } from '../support/cache-audit.js';
import { runCli } from '../support/cli.js';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';
import { testTempDir } from '../support/temp.js';

/** Case 16, the quick version (the chaos run does 200): kill -9 mid-write, twice, then the rerun completes. */

const RUN_TS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'run.ts');
let hub: FixtureHub | undefined;
afterEach(async () => hub?.close());

async function partialBytes(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    // Allocated blocks, not size: the engine may size the file up front and fill it out of order.
    if (name.endsWith('.part')) total += ((await stat(join(dir, name)).catch(() => ({ blocks: 0 }))).blocks ?? 0) * 512;
  }
  return total;
}

/** Starts a pull and SIGKILLs it once its partial files hold more than `afterBytes` of data. */
async function pullKilledAfter(env: NodeJS.ProcessEnv, partialDir: string, afterBytes: number): Promise<NodeJS.Signals | number | null> {
  const child = spawn(process.execPath, ['--import', 'tsx', RUN_TS, 'pull', 'org/kill', '--quiet'], { env, stdio: 'ignore' });
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code)));
  let done = false;
  void exited.then(() => (done = true));
  while (!done) {
    if ((await partialBytes(partialDir)) > afterBytes) {
      child.kill('SIGKILL');
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return exited;
}

describe('kill -9 and resume (case 16)', () => {
  it('survives two kills mid-write, reuses finished ranges, and leaves nothing bad behind', async () => {
    hub = await startFixtureHub({ repos: [{ repoId: 'org/kill', files: [{ path: 'w.safetensors', size: 8 * 1024 * 1024 }, { path: 'config.json', content: '{}' }] }] });
    hub.cdn.addFault({ fault: { throttleBytesPerSec: 1024 * 1024 } });
    const cacheDir = await testTempDir('mf-kill-');
    const env = { PATH: process.env.PATH, HOME: process.env.HOME, HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: cacheDir, HF_TOKEN: '' };
    const partialDir = join(new RepoPaths(cacheDir, 'model', 'org/kill').stateDir, 'partial');
    const file = hub.file('org/kill', 'w.safetensors');

    expect(await pullKilledAfter(env, partialDir, 2 * 1024 * 1024)).toBe('SIGKILL');
    expect(isClean(await auditCache(cacheDir))).toBe(true);
    expect(await pullKilledAfter(env, partialDir, 5 * 1024 * 1024)).toBe('SIGKILL');
    expect(isClean(await auditCache(cacheDir))).toBe(true);

    hub.cdn.clearFaults();
    const final = await runCli(['pull', 'org/kill', '--json'], env);
    expect(final.code, final.stderr).toBe(0);
    const result = JSON.parse(final.stdout.trim()) as { bytesResumed: number; path: string };
    expect(result.bytesResumed).toBeGreaterThan(0);
    const served = hub.cdn.requests.filter((r) => r.url.includes(file.sha256)).reduce((sum, r) => sum + r.bodyBytes, 0);
    // Three runs, but well under three downloads' worth of bytes: finished ranges were kept.
    expect(served).toBeLessThan(2 * file.size);
    const audit = await auditCache(cacheDir);
    expect(isClean(audit), JSON.stringify(audit)).toBe(true);
    expect(audit.blobs).toBe(2);
    expect(audit.snapshotEntries).toBe(2);
  }, 120_000);
});
