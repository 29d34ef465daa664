import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isModelfetchError } from '../../src/core/errors.js';
import { parseLockfile } from '../../src/preload/lockfile.js';
import { pull } from '../../src/pull/index.js';
import { listTree } from '../support/cache-audit.js';
import { fakeCommit } from '../support/cache-builder.js';
import { runCli } from '../support/cli.js';
import { servedBuffer, startFixtureServer, type FixtureServer } from '../support/fixture-server.js';
import { hasTool } from '../support/tools.js';
import { testTempDir } from '../support/temp.js';

/** Case 28: a hostile hub lists `.git/…` (or an alias of it) to plant git configuration that runs commands. */

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

async function tempDir(prefix: string): Promise<string> {
  const dir = await testTempDir(prefix);
  return dir;
}

const gitSha1 = (data: Buffer): string => createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');
const HOSTILE_CONFIG = Buffer.from('[core]\n\tfsmonitor = "touch /tmp/pwned-by-modelfetch"\n');

/** A hub whose listing holds `config.json` and `{gitPath}` (git config that runs a command on `git status`). */
async function hubListing(gitPath: string): Promise<FixtureServer> {
  const server = await startFixtureServer();
  cleanup.push(() => server.close());
  const commit = fakeCommit('dotgit');
  const config = Buffer.from('{}');
  server.route('/api/models/evil/repo/revision/', (_req, res) => void res.end(JSON.stringify({ sha: commit })));
  server.route('/api/models/evil/repo/tree/', (_req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(
      JSON.stringify([
        { type: 'file', path: 'config.json', size: config.length, oid: gitSha1(config) },
        { type: 'file', path: gitPath, size: HOSTILE_CONFIG.length, oid: gitSha1(HOSTILE_CONFIG) },
      ]),
    );
  });
  server.setFile(`/evil/repo/resolve/${commit}/config.json`, servedBuffer(config));
  server.setFile(`/evil/repo/resolve/${commit}/${gitPath}`, servedBuffer(HOSTILE_CONFIG));
  return server;
}

describe('.git from a hostile hub (case 28)', () => {
  it.skipIf(!hasTool('git'))('a listing with .git/config pulled with --local-dir into a git work tree exits 9 and leaves .git/config byte-identical', async () => {
    const work = await tempDir('mf-worktree-');
    execFileSync('git', ['init', '-q', work]);
    const before = await readFile(join(work, '.git', 'config'));
    const hub = await hubListing('.git/config');
    const run = await runCli(['pull', 'evil/repo', '--local-dir', work, '--endpoint', hub.origin], { TMPDIR: tmpdir() });
    expect(run.code, run.stderr).toBe(9);
    expect(run.stderr).toContain('.git');
    expect(run.stderr).not.toMatch(/\n\s+at /); // a sentence, not a stack trace
    expect((await readFile(join(work, '.git', 'config'))).equals(before), '.git/config unchanged').toBe(true);
  });

  const aliases = ['.git/config', '.GIT/config', '.Git/hooks/pre-commit', '.git./config', '.git /config', '.git. . /config', 'GIT~1/config', 'git~1/config', 'sub/.git/config', '.git\u200c/config', '\u200d.git/config', '.g\ufeffit/config', '.git\u206a/config', '.git::$INDEX_ALLOCATION/config', '.git'];
  for (const path of aliases) {
    it(`cache mode refuses ${JSON.stringify(path)} before anything is written`, async () => {
      const cacheDir = await tempDir('mf-dotgit-cache-');
      await mkdir(join(cacheDir, 'models--other--repo'), { recursive: true });
      await writeFile(join(cacheDir, 'models--other--repo', 'keep'), 'x');
      const before = await listTree(cacheDir);
      const hub = await hubListing(path);
      const error: unknown = await pull({ repo: 'evil/repo', cacheDir, endpoint: hub.origin, env: {} }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isModelfetchError(error, 'ERR_UNSAFE_PATH'), `refused with ERR_UNSAFE_PATH, got ${String(error)}`).toBe(true);
      expect(await listTree(cacheDir)).toEqual(before);
    });
  }

  it('a lockfile naming a .git path is refused', () => {
    const commit = 'a'.repeat(40);
    const lock = {
      lockfileVersion: 1,
      models: [
        {
          source: 'hf',
          repoType: 'model',
          repo: 'org/b',
          revision: 'main',
          include: [],
          exclude: [],
          commit,
          identity: `hf:model/org/b@${commit}`,
          files: [{ path: 'x/.GIT./config', size: 3, digest: { algorithm: 'git-sha1', hex: 'c'.repeat(40) } }],
        },
      ],
    };
    expect(() => parseLockfile(JSON.stringify(lock))).toThrow(/\.git/);
  });

  it('the mirror refuses a request for a .git path (any alias) with the same validator', async () => {
    const { parseRoute } = await import('../../src/server/route.js');
    for (const path of ['/org/name/resolve/main/.git/config', '/org/name/resolve/main/sub/.GIT./config', '/org/name/resolve/main/git~1/config', '/org/name/resolve/main/.g%E2%80%8Cit/config', '/api/models/org/name/tree/main/.git']) {
      expect(() => parseRoute('GET', path), path).toThrowError(expect.objectContaining({ code: 'ERR_UNSAFE_PATH' }));
    }
    expect(parseRoute('GET', '/org/name/resolve/main/.gitattributes')).toMatchObject({ kind: 'resolve', path: '.gitattributes' });
  });

  it('names that only look like .git pass', async () => {
    const { assertSafeRelativePath } = await import('../../src/core/validate.js');
    for (const path of ['.gitattributes', '.gitignore', '.github/workflows/x.yml', 'git/config', 'a.git/b', '.gitkeep', 'git~10', 'x.git']) {
      expect(assertSafeRelativePath(path, 'test')).toBe(path);
    }
  });
});
