import { spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { contextSources, dockerfileInstructions, dockerignoreAllowed } from '../support/dockerfile.js';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';

/**
 * The README's install paths, from the committed HEAD in a fresh clone and without a registry
 * (`--offline`: npm's cache, filled by the checkout's own `npm ci`): `npm ci` builds the CLI (the
 * `prepare` script), `npm install -g .` links it, `npm pack` holds what the bin needs, and the
 * tarball installs into a prefix and runs. Then `bake`, run by that installed modelfetch, packs
 * itself into a build context, and the Dockerfile's steps are carried out without Docker.
 */

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const NPM_QUIET = ['--offline', '--no-audit', '--no-fund'];
const SLOW = 300_000;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment without the npm_* variables a parent `npm test` sets, which would steer a child npm. */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^npm_/i.test(name)) env[name] = value;
  }
  return { ...env, ...extra };
}

function run(command: string, args: string[], cwd: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: cleanEnv(extraEnv), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function ok(command: string, args: string[], cwd: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<Run> {
  const result = await run(command, args, cwd, extraEnv);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.code}:\n${result.stderr.slice(-3000)}\n${result.stdout.slice(-1000)}`);
  return result;
}

describe('installing modelfetch as the README says', () => {
  let work: string;
  let clone: string;
  let tarball: string;
  let prefix: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'mf-install-'));
    clone = join(work, 'clone');
    await ok('git', ['clone', '--quiet', '--depth', '1', `file://${repoRoot}`, clone], work);
  }, SLOW);
  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('from a fresh clone: npm ci builds the CLI, and the bin and `npm install -g .` run it', async () => {
    expect(await readdir(clone)).not.toContain('dist');
    const ci = await ok('npm', ['ci', ...NPM_QUIET], clone);
    // Every dependency's install script is decided in package.json (allowScripts): no warning to puzzle over.
    expect(ci.stderr).not.toContain('not yet covered by allowScripts');
    const help = await ok(process.execPath, [join(clone, 'bin', 'modelfetch.js'), '--help'], clone);
    expect(help.stdout).toMatch(/^Usage: modelfetch /);
    for (const command of ['get', 'pull', 'serve', 'bake']) expect(help.stdout).toContain(`  ${command} `);

    const linked = join(work, 'linked');
    await ok('npm', ['install', '--global', '--prefix', linked, ...NPM_QUIET, '.'], clone);
    const viaLink = await ok(join(linked, 'bin', 'modelfetch'), ['--version'], work);
    expect(viaLink.stdout.trim()).toBe(JSON.parse(await readFile(join(clone, 'package.json'), 'utf8')).version);
  }, SLOW);

  it('as a package: the npm pack tarball holds the bin, dist and dependencies, and runs from a prefix', async () => {
    const packed = await ok('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], clone);
    const [info] = JSON.parse(packed.stdout) as [{ filename: string; files: { path: string }[] }];
    const paths = info.files.map((f) => f.path);
    expect(paths).toContain('bin/modelfetch.js');
    expect(paths).toContain('dist/cli/main.js');
    // The hash workers run from dist as .js modules beside the code that starts them.
    expect(paths).toEqual(expect.arrayContaining(['dist/core/hash/hash-cursor-worker.js', 'dist/core/hash/hash-pool-worker.js']));
    expect(paths).toContain('node_modules/undici/package.json');
    expect(paths.some((p) => p.startsWith('src/') || p.startsWith('test/'))).toBe(false);
    tarball = join(work, info.filename);

    prefix = join(work, 'prefix');
    const installed = await run('npm', ['install', '--global', '--prefix', prefix, ...NPM_QUIET, tarball], work);
    if (installed.stderr.includes('ENOTCACHED')) {
      // Not a skip: the machine is not set up for this test, and the message says how to set it up.
      throw new Error(`npm's cache lacks registry metadata that installing the tarball needs (npm ci caches only tarballs): run \`bash scripts/warm-npm-cache.sh\` once with the registry reachable, then run the tests again.\n${installed.stderr.slice(-500)}`);
    }
    if (installed.code !== 0) throw new Error(`npm install of the tarball exited ${installed.code}:\n${installed.stderr.slice(-3000)}`);
    const help = await ok(join(prefix, 'bin', 'modelfetch'), ['--help'], work);
    expect(help.stdout).toMatch(/^Usage: modelfetch /);
  }, SLOW);

  describe('bake from the installed modelfetch', () => {
    let hub: FixtureHub;
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
        ],
      });
    });
    afterAll(async () => {
      await hub?.close();
    });

    it('packs itself into the context, and the Dockerfile steps (install, sync --frozen, tree, healthcheck) succeed', async () => {
      expect(prefix).toBeDefined();
      const modelfetch = join(prefix, 'bin', 'modelfetch');
      const project = join(work, 'project');
      await mkdir(project);
      await writeFile(join(project, 'modelfetch.yaml'), 'version: 1\nmodels:\n  - repo: org/tts\n');
      await ok(modelfetch, ['lock', '--endpoint', hub.endpoint], project);
      const baked = await ok(modelfetch, ['bake', '--out', 'image'], project);
      expect(baked.stdout).toContain('modelfetch.tgz');

      const context = join(project, 'image');
      const dockerfile = await readFile(join(context, 'Dockerfile'), 'utf8');
      const ins = dockerfileInstructions(dockerfile);
      // Every file the build takes from the context (COPY, bind mounts) is there and not ignored.
      const sources = contextSources(ins);
      expect(sources).toEqual(['modelfetch.lock.json', 'modelfetch.tgz', 'modelfetch.yaml']);
      expect(await dockerignoreAllowed(context)).toEqual(expect.arrayContaining(sources));
      for (const source of sources) await readFile(join(context, source));

      // RUN npm install --global /tmp/modelfetch.tgz, with the bind-mounted context tarball, as a fresh image would.
      const install = ins.find((i) => i.op === 'RUN' && i.args.includes('npm install'))!;
      expect(install.args).toMatch(/--mount=type=bind,source=modelfetch\.tgz,target=\/tmp\/modelfetch\.tgz npm install --global .*\/tmp\/modelfetch\.tgz$/);
      const image = join(work, 'image-root');
      await ok('npm', ['install', '--global', '--prefix', join(image, 'usr'), ...NPM_QUIET, join(context, 'modelfetch.tgz')], work);
      const inImage = join(image, 'usr', 'bin', 'modelfetch');

      // WORKDIR /preload + COPY the inputs, then the sync RUN line, with the image's modelfetch.
      const preload = join(image, 'preload');
      await mkdir(preload);
      for (const name of ['modelfetch.lock.json', 'modelfetch.yaml']) await cp(join(context, name), join(preload, name));
      const syncRun = ins.find((i) => i.op === 'RUN' && i.args.includes('modelfetch sync'))!;
      const shell = syncRun.args.replace(/^(--mount=\S+\s+)+/, '').replaceAll('/var/cache/modelfetch', join(image, 'var-cache')).replaceAll('/out/hub', join(image, 'out', 'hub'));
      await ok('sh', ['-c', shell], preload, { PATH: `${dirname(inImage)}:${process.env.PATH}`, HF_ENDPOINT: hub.endpoint });

      // The final stage: the tree copied to HF_HOME/hub, then its HEALTHCHECK, offline.
      const hfHome = join(image, 'opt', 'huggingface');
      await cp(join(image, 'out', 'hub'), join(hfHome, 'hub'), { recursive: true, verbatimSymlinks: true });
      const health = ins.find((i) => i.op === 'HEALTHCHECK')!.args;
      const [program, ...args] = (JSON.parse(health.slice(health.indexOf('CMD ') + 4)) as string[]).map((a) => a.replace('/etc/modelfetch', context));
      expect(program).toBe('modelfetch');
      const check = await run(inImage, args, work, { HF_HOME: hfHome, HF_HUB_CACHE: join(hfHome, 'hub'), HF_HUB_OFFLINE: '1', HF_ENDPOINT: 'http://127.0.0.1:9' });
      expect(check.stderr).not.toMatch(/ERR_/);
      expect(check.code).toBe(0);
      const snapshot = join(hfHome, 'hub', 'models--org--tts', 'snapshots', hub.commitOf('org/tts'));
      expect((await readFile(join(snapshot, 'model.safetensors'))).length).toBe(300_000);

      // The installed build's hash workers: sync hashed each download on the cursor's worker (a
      // failed worker fails the sync), and verify re-hashes both blobs (SHA-256 and git SHA-1) on the pool's.
      const verified = await run(inImage, ['verify'], work, { HF_HUB_CACHE: join(hfHome, 'hub'), HF_HUB_OFFLINE: '1' });
      expect(verified.stderr).not.toMatch(/ERR_/);
      expect(verified.stdout).toMatch(/^OK: 2 blob\(s\)/m);
      expect(verified.code).toBe(0);
    }, SLOW);
  });
});
