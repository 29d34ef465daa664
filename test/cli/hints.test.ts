import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { markRevisionInUse } from '../../src/cache/lock.js';
import { RepoPaths } from '../../src/cache/layout.js';
import { buildProgram, main, type CliIo } from '../../src/cli/main.js';
import { buildCachedRepo, fakeCommit } from '../support/cache-builder.js';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';

/**
 * The hint under each error names only flags of the command that ran (or of the command it tells
 * the user to run), says what happened, and gives the command that fixes it. One case per error
 * code per command, run through the real CLI entry point.
 */

const DEAD_ENDPOINT = 'http://127.0.0.1:9';

let hub: FixtureHub;
let work: string;
let dir: string;

beforeAll(async () => {
  hub = await startFixtureHub({
    repos: [
      {
        repoId: 'org/tts',
        files: [
          { path: 'config.json', content: '{"model_type":"tts"}' },
          { path: 'model.safetensors', size: 300_000, lfs: true },
        ],
      },
      { repoId: 'org/gated', gatedToken: 'hf_hintsgatedtoken000001', files: [{ path: 'config.json', content: '{}' }] },
    ],
  });
  work = await mkdtemp(join(tmpdir(), 'mf-hints-'));
});
afterAll(async () => {
  await hub.close();
  await rm(work, { recursive: true, force: true });
});
beforeEach(async () => {
  dir = await mkdtemp(join(work, 'case-'));
});

interface Failure {
  code: number;
  message: string;
  hint: string;
}

/** Runs the CLI in-process; returns the exit code and the error line and hint it printed. */
async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Failure> {
  let err = '';
  const sink = (write: (s: string) => void) => new Writable({ write: (chunk: Buffer, _e, done) => (write(chunk.toString()), done()) });
  const io: CliIo = { stdout: sink(() => {}), stderr: sink((s) => (err += s)), env: { HF_ENDPOINT: hub.endpoint, ...env } };
  const code = await main(args, io);
  const lines = err.split('\n').filter((line) => line.trim() !== '');
  const at = lines.findIndex((line) => line.startsWith('modelfetch: ') && line.includes('[ERR_'));
  return { code, message: lines[at] ?? '', hint: (lines[at + 1] ?? '').trim() };
}

/** The long flags each command has. */
function flagsOf(command: string): Set<string> {
  const found = buildProgram({ stdout: process.stdout, stderr: process.stderr, env: {} }).commands.find((c) => c.name() === command);
  if (!found) throw new Error(`no command ${command}`);
  return new Set(found.options.map((o) => o.long ?? ''));
}

/** Every `--flag` in a hint belongs to the command that ran, or to the `modelfetch X …` command the hint quotes. */
function expectOnlyOwnFlags(command: string, hint: string): void {
  let rest = hint;
  for (const quoted of hint.match(/`modelfetch [a-z]+[^`]*`/g) ?? []) {
    const name = quoted.split(' ')[1]!;
    for (const flag of quoted.match(/--[a-z][a-z-]*/g) ?? []) expect(flagsOf(name), `${flag} in ${quoted}`).toContain(flag);
    rest = rest.replace(quoted, '');
  }
  for (const flag of rest.match(/--[a-z][a-z-]*/g) ?? []) expect(flagsOf(command), `${flag} in the hint of ${command}: ${hint}`).toContain(flag);
}

async function expectHint(command: string, args: string[], code: number, errorCode: string, hint: RegExp | string, env: NodeJS.ProcessEnv = {}): Promise<Failure> {
  const run = await cli([command, ...args], env);
  expect(run.message).toContain(`[${errorCode}]`);
  expect(run.code).toBe(code);
  if (typeof hint === 'string') expect(run.hint).toBe(hint);
  else expect(run.hint).toMatch(hint);
  expectOnlyOwnFlags(command, run.hint);
  return run;
}

const cacheOf = () => join(dir, 'hub');
const repo = () => new RepoPaths(cacheOf(), 'model', 'org/tts');

async function corruptBlobOf(path: string): Promise<void> {
  const digest = path === 'config.json' ? hub.file('org/tts', path).gitSha1 : hub.file('org/tts', path).sha256;
  await writeFile(repo().blob({ algorithm: path === 'config.json' ? 'git-sha1' : 'sha256', hex: digest }), 'not the right bytes at all');
}

describe('pull hints', () => {
  it('ERR_NOT_FOUND: a selection matching nothing, a file the repo does not have', async () => {
    await expectHint('pull', ['org/tts', '--include', '*.nomatch', '--cache-dir', cacheOf()], 4, 'ERR_NOT_FOUND', /^Check the patterns: a pattern without "\/" matches the file name at any depth/);
    await expectHint('pull', ['org/tts', 'nope.bin', '--cache-dir', cacheOf()], 4, 'ERR_NOT_FOUND', /^Check the file names/);
  });

  it('ERR_INCOMPLETE (--check): the same pull, with its filters, without --check; corrupt is told apart', async () => {
    await expectHint('pull', ['org/tts', '--include', '*.json', '--check', '--cache-dir', cacheOf()], 8, 'ERR_INCOMPLETE', `Run \`modelfetch pull org/tts --include '*.json' --cache-dir ${cacheOf()}\` to fetch them.`);
    expect((await cli(['pull', 'org/tts', '--cache-dir', cacheOf(), '--quiet'])).code).toBe(0);
    await corruptBlobOf('config.json');
    const run = await expectHint('pull', ['org/tts', '--check', '--cache-dir', cacheOf()], 8, 'ERR_INCOMPLETE', `Run \`modelfetch pull org/tts --cache-dir ${cacheOf()}\` to fetch them again; \`modelfetch verify --fix\` also repairs the rest of the cache.`);
    expect(run.message).toContain('1 of 2 files of org/tts@');
    expect(run.message).toContain('are not in the cache: 1 corrupt, now removed (config.json)');
  });

  it('ERR_OFFLINE: the same pull with network access', async () => {
    expect((await cli(['pull', 'org/tts', '--include', '*.json', '--cache-dir', cacheOf(), '--quiet'])).code).toBe(0);
    await expectHint('pull', ['org/tts', '--offline', '--cache-dir', cacheOf()], 8, 'ERR_OFFLINE', `Run \`modelfetch pull org/tts --cache-dir ${cacheOf()}\` once with network access (HF_HUB_OFFLINE unset, no --offline) to fetch them.`);
  });

  it('ERR_GATED: a gated repo without a token names HF_TOKEN and --token', async () => {
    await expectHint('pull', ['org/gated', '--cache-dir', cacheOf()], 5, 'ERR_GATED', /^Set HF_TOKEN \(or --token\) and accept the terms at http/);
  });

  it('ERR_NETWORK and ERR_USAGE', async () => {
    await expectHint('pull', ['org/tts', '--cache-dir', cacheOf()], 6, 'ERR_NETWORK', /^Check the network and HF_ENDPOINT/, { HF_ENDPOINT: DEAD_ENDPOINT });
    await expectHint('pull', ['org/tts', '--connections', '0'], 2, 'ERR_USAGE', 'Use a whole number from 1 to 256.');
  });
});

describe('sync hints', () => {
  async function locked(): Promise<string> {
    await writeFile(join(dir, 'modelfetch.yaml'), ['version: 1', 'models:', '  - repo: org/tts', ''].join('\n'));
    const lockPath = join(dir, 'models.lock.json');
    expect((await cli(['lock', '--manifest', join(dir, 'modelfetch.yaml'), '--out', lockPath, '--endpoint', hub.endpoint])).code).toBe(0);
    return lockPath;
  }

  it('ERR_INCOMPLETE (--check): `modelfetch sync` with the same lockfile, never a pull without its filters', async () => {
    const lock = await locked();
    const missing = await expectHint('sync', ['--lock', lock, '--cache-dir', cacheOf(), '--check'], 8, 'ERR_INCOMPLETE', `Run \`modelfetch sync --lock ${lock}\` to fetch them.`);
    expect(missing.message).toContain('are not in the cache: 2 missing (config.json, model.safetensors)');
    expect(missing.message).not.toContain('corrupt');
    expect((await cli(['sync', '--lock', lock, '--cache-dir', cacheOf()])).code).toBe(0);
    await corruptBlobOf('model.safetensors');
    const corrupt = await expectHint('sync', ['--lock', lock, '--cache-dir', cacheOf(), '--check'], 8, 'ERR_INCOMPLETE', `Run \`modelfetch sync --lock ${lock}\` to fetch them again; \`modelfetch verify --fix\` also repairs the rest of the cache.`);
    expect(corrupt.message).toContain('are not in the cache: 1 corrupt, now removed (model.safetensors)');
    expect(corrupt.hint).not.toContain('modelfetch pull');
  });

  it('ERR_OFFLINE: sync once with network access', async () => {
    const lock = await locked();
    await expectHint('sync', ['--lock', lock, '--cache-dir', cacheOf()], 8, 'ERR_OFFLINE', `Run \`modelfetch sync --lock ${lock}\` once with network access (HF_HUB_OFFLINE unset) to fetch them.`, { HF_HUB_OFFLINE: '1' });
  });

  it('ERR_NETWORK: names sync\'s --endpoint and says a rerun resumes', async () => {
    const lock = await locked();
    await expectHint('sync', ['--lock', lock, '--cache-dir', cacheOf(), '--endpoint', DEAD_ENDPOINT], 6, 'ERR_NETWORK', `Check the network and --endpoint (or HF_ENDPOINT), then run \`modelfetch sync --lock ${lock}\` again: finished files and ranges are kept.`);
  });

  it('ERR_SIGNATURE: an unsigned lockfile under --verify-key', async () => {
    const lock = await locked();
    const pub = join(dir, 'release');
    expect((await cli(['keygen', '--out', pub])).code).toBe(0);
    await expectHint('sync', ['--lock', lock, '--cache-dir', cacheOf(), '--verify-key', `${pub}.pub`], 3, 'ERR_SIGNATURE', 'Sign it with `modelfetch sign --key PRIVATE_KEY`, or drop --verify-key if you accept unsigned lockfiles.');
  });

  it('ERR_USAGE: a missing lockfile', async () => {
    await expectHint('sync', ['--lock', join(dir, 'absent.lock.json'), '--cache-dir', cacheOf()], 2, 'ERR_USAGE', 'Create it with `modelfetch lock`, or pass its path with --lock.');
  });
});

describe('verify, rm and gc hints', () => {
  const commit = fakeCommit('hints');
  const build = () => buildCachedRepo(cacheOf(), { repoId: 'org/local', commit, files: [{ path: 'w.bin', content: Buffer.alloc(4096, 7), lfs: true }] });

  it('verify: ERR_INTEGRITY suggests --fix; ERR_NOT_FOUND suggests ls', async () => {
    const paths = await build();
    const [blob] = await readdir(paths.blobsDir);
    await writeFile(join(paths.blobsDir, blob!), 'rotten');
    await expectHint('verify', ['--cache-dir', cacheOf()], 3, 'ERR_INTEGRITY', 'Run `modelfetch verify --fix` to remove bad blobs and pull them again.');
    await expectHint('verify', ['org/absent', '--cache-dir', cacheOf()], 4, 'ERR_NOT_FOUND', 'Run `modelfetch ls` to see what is cached.');
  });

  it('rm: ERR_USAGE without --yes off a terminal, ERR_NOT_FOUND, ERR_LOCKED', async () => {
    await build();
    await expectHint('rm', ['org/local', '--cache-dir', cacheOf()], 2, 'ERR_USAGE', 'Run `modelfetch rm org/local --yes`, or `modelfetch rm org/local --dry-run` to see what would go.');
    await expectHint('rm', ['org/absent', '--yes', '--cache-dir', cacheOf()], 4, 'ERR_NOT_FOUND', /^Run `modelfetch ls` to see what is cached; use --repo-type/);
    const held = await markRevisionInUse(new RepoPaths(cacheOf(), 'model', 'org/local'), commit);
    try {
      await expectHint('rm', ['org/local', '--yes', '--cache-dir', cacheOf()], 10, 'ERR_LOCKED', /^Wait for it to finish/);
    } finally {
      await held.release();
    }
  });

  it('gc: ERR_USAGE without a rule, ERR_LOCKED when what is left is in use', async () => {
    await build();
    await expectHint('gc', ['--cache-dir', cacheOf()], 2, 'ERR_USAGE', /^For example: modelfetch gc --unused-for 7d --max-size 200G --dry-run$/);
    const held = await markRevisionInUse(new RepoPaths(cacheOf(), 'model', 'org/local'), commit);
    try {
      await expectHint('gc', ['--max-size', '1K', '--cache-dir', cacheOf()], 10, 'ERR_LOCKED', /^Run gc again when the pulls or servers holding those revisions are done\.$/);
    } finally {
      await held.release();
    }
  });
});
