import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeEach, describe, expect, it } from 'vitest';
import { buildCachedRepo, fakeCommit } from '../support/cache-builder.js';
import { runCli } from '../support/cli.js';
import { hasTool } from '../support/tools.js';
import { testTempDir } from '../support/temp.js';

/**
 * `rm org/name` asks on a terminal (listing what goes and how much it frees) and refuses without
 * --yes when nobody can answer. The terminal is a real pseudo-terminal from util-linux `script`.
 */

const TSX_CLI = ['--import', 'tsx', join(import.meta.dirname, '../../src/cli/run.ts')];
const shellQuote = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;

let root: string;
beforeEach(async () => {
  root = await testTempDir('mf-rmprompt-');
  await buildCachedRepo(root, { repoId: 'org/big', commit: fakeCommit('big'), files: [{ path: 'w.bin', content: randomBytes(2 * 1024 * 1024), lfs: true }] });
});

const repoDir = () => join(root, 'models--org--big');
const exists = (path: string) => access(path).then(() => true, () => false);

/** Runs the CLI with its stdin, stdout and stderr on a pseudo-terminal, typing `answer` into it. */
async function onTerminal(args: string[], answer: string): Promise<{ code: number; output: string }> {
  const command = [process.execPath, ...TSX_CLI, ...args].map(shellQuote).join(' ');
  const shell = `printf ${shellQuote(answer)} | script -qec ${shellQuote(command)} /dev/null`;
  try {
    const { stdout } = await promisify(execFile)('sh', ['-c', shell], { cwd: join(import.meta.dirname, '../..'), env: { PATH: process.env.PATH, HOME: process.env.HOME, TERM: 'dumb' } });
    return { code: 0, output: stdout };
  } catch (error) {
    const e = error as { code: number; stdout: string };
    return { code: e.code, output: e.stdout };
  }
}

describe.skipIf(!hasTool('script'))('rm asks before removing a whole repo', () => {
  it('on a terminal: lists what goes and its size, and "y" removes it', async () => {
    const run = await onTerminal(['rm', 'org/big', '--cache-dir', root], 'y\n');
    expect(run.output).toContain(`Remove model org/big from ${root}: 1 revision(s), 1 blob(s), 2.0 MiB (revisions ${fakeCommit('big').slice(0, 12)})? [y/N]`);
    expect(run.output).toContain('Removed model org/big');
    expect(run.code).toBe(0);
    expect(await exists(repoDir())).toBe(false);
  });

  it('on a terminal: any other answer removes nothing', async () => {
    const run = await onTerminal(['rm', 'org/big', '--cache-dir', root], 'n\n');
    expect(run.output).toContain('[y/N]');
    expect(run.output).toContain('Nothing removed.');
    expect(run.code).toBe(0);
    expect(await exists(repoDir())).toBe(true);
  });

  it('without a terminal: refuses clearly (exit 2) unless --yes, and removes nothing', async () => {
    const run = await runCli(['rm', 'org/big', '--cache-dir', root]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('Removing all of org/big needs --yes when stdin is not a terminal [ERR_USAGE]');
    expect(run.stderr).toContain('Run `modelfetch rm org/big --yes`, or `modelfetch rm org/big --dry-run` to see what would go.');
    expect(await exists(repoDir())).toBe(true);
    const yes = await runCli(['rm', 'org/big', '--yes', '--cache-dir', root]);
    expect(yes.code).toBe(0);
    expect(await exists(repoDir())).toBe(false);
  });
});
