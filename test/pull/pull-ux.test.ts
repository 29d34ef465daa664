import { readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { isModelfetchError } from '../../src/core/errors.js';
import { pull, type PullOptions } from '../../src/pull/index.js';
import { buildCachedRepo, fakeCommit } from '../support/cache-builder.js';
import { runCli } from '../support/cli.js';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';
import { interopPython, runPython } from '../support/python.js';
import { testTempDir } from '../support/temp.js';

/**
 * What a newcomer meets with `pull`: a selection that matches nothing, a hub that cannot be reached
 * while the repo is cached, and a local dir whose files the user edited.
 */

const DEAD_ENDPOINT = 'http://127.0.0.1:9';
const python = interopPython();

let hub: FixtureHub;
let dir: string;

beforeAll(async () => {
  hub = await startFixtureHub({
    repos: [
      {
        repoId: 'org/tts',
        branches: {
          main: [
            { path: 'config.json', content: '{"model_type":"tts"}' },
            { path: 'model.safetensors', size: 1024 * 1024 + 7, lfs: true },
            { path: 'sub/vocab.json', content: '{"a":1}' },
            ...Array.from({ length: 12 }, (_, i) => ({ path: `extra/file-${String(i).padStart(2, '0')}.txt`, content: `file ${i}\n` })),
          ],
          v2: [{ path: 'config.json', content: '{"model_type":"tts","v":2}' }],
        },
      },
    ],
  });
});
afterAll(() => hub.close());
beforeEach(async () => {
  dir = await testTempDir('mf-pullux-');
  hub.resetLogs();
  hub.hub.clearFaults();
});

const cacheDir = () => join(dir, 'hub');
const options = (extra: Partial<PullOptions> = {}): PullOptions => ({ repo: 'org/tts', cacheDir: cacheDir(), endpoint: hub.endpoint, env: {}, ...extra });
const resolveGets = () => hub.hub.requests.filter((r) => r.method === 'GET' && r.url.includes('/resolve/')).length + hub.cdn.requests.length;

describe('a selection that matches nothing', () => {
  it('is ERR_NOT_FOUND (exit 4) that shows a sample of what the repo has, and prints no path', async () => {
    const run = await runCli(['pull', 'org/tts', '--include', '*.nomatch', '--cache-dir', cacheDir()], { HF_ENDPOINT: hub.endpoint });
    expect(run.code).toBe(4);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain('No file matches --include "*.nomatch"; org/tts@');
    expect(run.stderr).toContain('has 15 files: config.json, extra/file-00.txt');
    expect(run.stderr).toContain('(5 more)');
    expect(run.stderr).toContain('[ERR_NOT_FOUND]');
    expect(run.stderr).not.toContain('all 0 files cached');
    expect(resolveGets()).toBe(0);
  });

  it('an exclude that removes everything fails the same way', async () => {
    const error = await pull(options({ files: ['config.json'], exclude: ['*.json'] })).catch((e: unknown) => e);
    expect(isModelfetchError(error, 'ERR_NOT_FOUND')).toBe(true);
    expect((error as Error).message).toMatch(/^No file matches --exclude "\*\.json"; org\/tts@[0-9a-f]{12} has 15 files/);
  });
});

describe('the hub unreachable while the repo is cached', () => {
  it('pull falls back to the cached snapshot with a one-line warning and exit 0', async () => {
    const first = await pull(options({ include: ['*.json'] }));
    const run = await runCli(['pull', 'org/tts', '--include', '*.json', '--cache-dir', cacheDir()], { HF_ENDPOINT: DEAD_ENDPOINT });
    expect(run.code).toBe(0);
    expect(run.stdout.trim()).toBe(first.path);
    const warnings = run.stderr.split('\n').filter((line) => line.startsWith('modelfetch: warning:'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('Could not reach the hub at http://127.0.0.1:9');
    expect(warnings[0]).toContain(`using the cached org/tts@${first.commit.slice(0, 12)} (main)`);
  });

  it('a hub answering 5xx counts as unreachable; the library reports through onWarning', async () => {
    await pull(options({ include: ['*.json'] }));
    hub.hub.addFault({ fault: { status: 503 } });
    const warnings: string[] = [];
    const result = await pull(options({ include: ['*.json'], onWarning: (w) => warnings.push(w) }));
    expect(result.downloaded).toBe(0);
    expect(warnings).toHaveLength(1);
  });

  it('with an older cache (no tree listing) the snapshot folder answers, but cannot say a file does not exist', async () => {
    const commit = fakeCommit('old-cache');
    await buildCachedRepo(cacheDir(), { repoId: 'org/old', commit, refs: ['main'], files: [{ path: 'config.json', content: Buffer.from('{}') }] });
    const warnings: string[] = [];
    const result = await pull(options({ repo: 'org/old', endpoint: DEAD_ENDPOINT, onWarning: (w) => warnings.push(w) }));
    expect(result).toMatchObject({ commit, files: 1, downloaded: 0 });
    expect(warnings).toHaveLength(1);
    const error = await pull(options({ repo: 'org/old', endpoint: DEAD_ENDPOINT, files: ['absent.bin'] })).catch((e: unknown) => e);
    expect(isModelfetchError(error, 'ERR_NETWORK')).toBe(true);
  });

  it('does not fall back when the selection is not complete in the cache (exit 6)', async () => {
    await pull(options({ include: ['*.json'] }));
    const run = await runCli(['pull', 'org/tts', '--cache-dir', cacheDir()], { HF_ENDPOINT: DEAD_ENDPOINT });
    expect(run.code).toBe(6);
    expect(run.stderr).not.toContain('warning');
  });

  it('does not fall back on an answer (401), nor with --check', async () => {
    await pull(options({ include: ['*.json'] }));
    hub.hub.addFault({ fault: { status: 401 } });
    const denied = await pull(options({ include: ['*.json'] })).catch((e: unknown) => e);
    expect(isModelfetchError(denied, 'ERR_AUTH') || isModelfetchError(denied, 'ERR_GATED') || isModelfetchError(denied, 'ERR_NOT_FOUND')).toBe(true);
    hub.hub.clearFaults();
    const checked = await runCli(['pull', 'org/tts', '--include', '*.json', '--check', '--cache-dir', cacheDir()], { HF_ENDPOINT: DEAD_ENDPOINT });
    expect(checked.code).toBe(6);
  });
});

describe('a local dir the user edited', () => {
  const local = () => join(dir, 'local');
  const edit = async (path: string, content: string) => {
    await writeFile(join(local(), path), content);
    const later = new Date(Date.now() + 5000);
    await utimes(join(local(), path), later, later);
  };

  it('keeps an edited file with a warning; --force-download replaces it; huggingface_hub then downloads nothing', async () => {
    await pull(options({ cacheDir: undefined, localDir: local() }));
    hub.resetLogs();
    await edit('config.json', '{"model_type":"mine"}');
    await edit('model.safetensors', 'tuned by hand');

    const kept = await runCli(['pull', 'org/tts', '--local-dir', local()], { HF_ENDPOINT: hub.endpoint });
    expect(kept.code).toBe(0);
    expect(kept.stderr).toContain('modelfetch: warning: config.json was changed since it was downloaded; kept as it is (--force-download replaces it)');
    expect(kept.stderr).toContain('modelfetch: warning: model.safetensors was changed');
    expect(await readFile(join(local(), 'config.json'), 'utf8')).toBe('{"model_type":"mine"}');
    expect(await readFile(join(local(), 'model.safetensors'), 'utf8')).toBe('tuned by hand');
    expect(resolveGets()).toBe(0);

    const forced = await runCli(['pull', 'org/tts', '--local-dir', local(), '--force-download', '--quiet'], { HF_ENDPOINT: hub.endpoint });
    expect(forced.code).toBe(0);
    expect(forced.stderr).toBe('');
    expect(await readFile(join(local(), 'config.json'), 'utf8')).toBe('{"model_type":"tts"}');
    expect((await readFile(join(local(), 'model.safetensors'))).length).toBe(1024 * 1024 + 7);

    if (python) {
      hub.resetLogs();
      await runPython(python, `from huggingface_hub import snapshot_download; snapshot_download("org/tts", local_dir=${JSON.stringify(local())})`, { HF_ENDPOINT: hub.endpoint });
      expect(resolveGets()).toBe(0);
    } else if (process.env.MODELFETCH_REQUIRE_TOOLS === '1') {
      throw new Error('Python huggingface_hub is required (MODELFETCH_REQUIRE_TOOLS=1)');
    }
  });

  it('replaces an untouched file from another commit without a warning', async () => {
    await pull(options({ cacheDir: undefined, localDir: local(), revision: 'v2' }));
    const warnings: string[] = [];
    await pull(options({ cacheDir: undefined, localDir: local(), files: ['config.json'], onWarning: (w) => warnings.push(w) }));
    expect(warnings).toEqual([]);
    expect(await readFile(join(local(), 'config.json'), 'utf8')).toBe('{"model_type":"tts"}');
  });
});
