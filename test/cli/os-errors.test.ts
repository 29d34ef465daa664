import { chmod, mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';
import { canMountSmallDisk, runOnSmallDisk } from '../support/small-disk.js';
import { runProcess } from '../support/process.js';
import { hasTool } from '../support/tools.js';
import { testScope } from '../transfer/helpers.js';
import { testTempDir } from '../support/temp.js';

const root = resolve(import.meta.dirname, '../..');
const cliArgv = [process.execPath, '--import', 'tsx', join(root, 'src/cli/run.ts')];
const scope = testScope();
const STACK_LINE = /^\s+at /m;

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function scratchDir(prefix: string): Promise<string> {
  const dir = await testTempDir(prefix);
  return dir;
}

describe('operating-system errors are sentences with a hint, never a stack trace', () => {
  it('serve on a port in use: ERR_PORT_IN_USE naming the address and --port; the stack only with --verbose or DEBUG=modelfetch', async () => {
    const holder = createServer();
    await new Promise<void>((done) => holder.listen(0, '127.0.0.1', done));
    cleanups.push(() => new Promise<void>((done) => holder.close(() => done())));
    const port = (holder.address() as { port: number }).port;
    const cacheDir = await scratchDir('mf-oserr-');

    const plain = await runCli(['serve', '--port', String(port), '--cache-dir', cacheDir, '--offline']);
    expect(plain.code).toBe(1);
    expect(plain.stderr).toContain(`Address 127.0.0.1:${port} is already in use (EADDRINUSE) [ERR_PORT_IN_USE]`);
    expect(plain.stderr).toContain('choose another --port (0 picks a free one)');
    expect(plain.stderr).not.toMatch(STACK_LINE);
    expect(plain.stderr).not.toContain('unexpected error');

    const verbose = await runCli(['serve', '--port', String(port), '--cache-dir', cacheDir, '--offline', '--verbose']);
    expect(verbose.code).toBe(1);
    expect(verbose.stderr).toContain('[ERR_PORT_IN_USE]');
    expect(verbose.stderr).toMatch(STACK_LINE);
    expect(verbose.stderr).toContain('listen EADDRINUSE');

    const debug = await runCli(['serve', '--port', String(port), '--cache-dir', cacheDir, '--offline'], { DEBUG: 'other,modelfetch' });
    expect(debug.stderr).toMatch(STACK_LINE);
  });

  // As root, permissions stop nobody: the CLI runs as `nobody` through setpriv. As another user, it runs as that user.
  const asRoot = process.getuid?.() === 0;
  it.skipIf(asRoot && !hasTool('setpriv'))('a folder the user may not write to: ERR_PERMISSION naming the folder that refused, with get\'s -o hint', async () => {
    const s = await scope.setup(1000);
    const dir = await scratchDir('mf-perm-');
    await chmod(dir, 0o777);
    const locked = join(dir, 'locked');
    await mkdir(locked, { mode: 0o755 });
    await chmod(locked, 0o555);
    const childTmp = join(dir, 'tmp');
    await mkdir(childTmp, { mode: 0o777 });
    await chmod(childTmp, 0o777);
    const argv = [...cliArgv, 'get', s.url, '-o', join(locked, 'model.bin'), '--quiet'];
    const [command, ...args] = asRoot ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', ...argv] : argv;
    const run = await runProcess(command!, args, { PATH: process.env.PATH, TMPDIR: childTmp });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`Permission denied (EACCES) while creating ${join(locked, 'model.bin')}.modelfetch-partial [ERR_PERMISSION]`);
    expect(run.stderr).toContain(`  Pass -o with a path in a folder you can write to (${locked} is not writable).`);
    expect(run.stderr).not.toMatch(STACK_LINE);
  });

  describe.skipIf(!canMountSmallDisk())('on a read-only file system (a tmpfs mounted ro in a private mount namespace)', () => {
    let hub: FixtureHub | undefined;
    afterEach(async () => {
      await hub?.close();
      hub = undefined;
    });

    it('pull --cache-dir: ERR_READ_ONLY naming the folder it could not create, not ENOENT', async () => {
      hub = await startFixtureHub({ repos: [{ repoId: 'org/tiny', files: [{ path: 'config.json', content: '{}' }] }] });
      const mountPoint = await scratchDir('mf-ro-');
      const cacheDir = join(mountPoint, 'hub');
      const run = await runOnSmallDisk({ sizeBytes: 1024 * 1024, readOnly: true, mountPoint, cwd: root, argv: [...cliArgv, 'pull', 'org/tiny', '--cache-dir', cacheDir, '--endpoint', hub.endpoint, '--quiet'] });
      expect(run.code).toBe(1);
      expect(run.stderr).toContain('[ERR_READ_ONLY]');
      expect(run.stderr).toContain('The file system is read-only (EROFS) while ');
      expect(run.stderr).toContain(cacheDir);
      expect(run.stderr).toContain('Choose a location on a writable disk');
      expect(run.stderr).not.toContain('ENOENT');
      expect(run.stderr).not.toMatch(STACK_LINE);
      expect(run.leftover).toEqual([]);
    });

    it('get -o into a read-only folder: ERR_READ_ONLY while creating the partial file, not "removing"', async () => {
      const s = await scope.setup(1000);
      const mountPoint = await scratchDir('mf-ro-');
      const out = join(mountPoint, 'model.bin');
      const run = await runOnSmallDisk({ sizeBytes: 1024 * 1024, readOnly: true, mountPoint, cwd: root, argv: [...cliArgv, 'get', s.url, '-o', out, '--quiet'] });
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(`The file system is read-only (EROFS) while creating ${out}.modelfetch-partial [ERR_READ_ONLY]`);
      expect(run.stderr).toContain(`  Pass -o with a path in a folder you can write to (${mountPoint} is not writable).`);
      expect(run.stderr).not.toContain('removing');
      expect(run.stderr).not.toMatch(STACK_LINE);
    });
  });
});
