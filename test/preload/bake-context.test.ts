import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, readdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bake } from '../../src/bake/bake.js';
import { packModelfetch } from '../../src/bake/pack-self.js';
import { signLockfile } from '../../src/preload/lock-signature.js';
import { serialiseLockfile } from '../../src/preload/lockfile.js';
import { writeKeyPair } from '../../src/preload/signature.js';
import { fakeCommit } from '../support/cache-builder.js';
import { contextSources, dockerfileInstructions, dockerignoreAllowed, type Instruction } from '../support/dockerfile.js';
import { lockedModelOf } from '../support/locked-cache.js';
import { testTempDir } from '../support/temp.js';

/** Every file the build takes from the context is in it and let through by .dockerignore. */
async function expectContextHoldsSources(context: string, ins: Instruction[]): Promise<void> {
  const sources = contextSources(ins);
  expect(sources.length).toBeGreaterThan(0);
  expect(await dockerignoreAllowed(context)).toEqual(expect.arrayContaining(sources));
  for (const source of sources) await expect(readFile(join(context, source))).resolves.toBeInstanceOf(Buffer);
}

async function project(): Promise<string> {
  const dir = await testTempDir('mf-bake-');
  await writeFile(join(dir, 'modelfetch.yaml'), 'models:\n  - repo: org/tts\n');
  const model = lockedModelOf({ repoId: 'org/tts', commit: fakeCommit('tts'), files: [{ path: 'config.json', content: Buffer.from('{}') }] });
  await writeFile(join(dir, 'modelfetch.lock.json'), serialiseLockfile({ lockfileVersion: 1, models: [model] }));
  return dir;
}

describe('bake build context', () => {
  it('writes a multi-stage Dockerfile: frozen sync into a BuildKit cache mount, an offline final stage with a healthcheck', async () => {
    const dir = await project();
    const out = join(dir, 'image');
    const result = await bake({ lockPath: join(dir, 'modelfetch.lock.json'), outDir: out, cacheDir: join(dir, 'cache'), modelfetchPackage: 'modelfetch@1.2.3' });
    expect(result.files).toEqual(['.dockerignore', 'Dockerfile', 'modelfetch.lock.json', 'modelfetch.yaml']);
    const dockerfile = await readFile(join(out, 'Dockerfile'), 'utf8');
    expect(dockerfile.split('\n')[0]).toBe('# syntax=docker/dockerfile:1.10');
    const ins = dockerfileInstructions(dockerfile);
    const froms = ins.filter((i) => i.op === 'FROM');
    expect(froms.map((f) => f.args)).toEqual(['${NODE_IMAGE} AS models', '${BASE_IMAGE}']);
    const finalStart = ins.indexOf(froms[1]!);
    const builder = ins.slice(0, finalStart);
    const final = ins.slice(finalStart);

    const syncRun = builder.find((i) => i.op === 'RUN' && i.args.includes('modelfetch sync'))!;
    expect(syncRun.args).toMatch(/^--mount=type=cache,[^ ]*target=\/var\/cache\/modelfetch/);
    expect(syncRun.args).toContain('modelfetch sync --frozen --lock modelfetch.lock.json --manifest modelfetch.yaml');
    expect(syncRun.args).toContain('--cache-dir /var/cache/modelfetch/hub');
    // The cache mount is gone after the RUN, so the locked tree is copied out of it in the same step.
    expect(syncRun.args).toContain('modelfetch bake --lock modelfetch.lock.json --cache-dir /var/cache/modelfetch/hub --tree /out/hub');
    expect(builder.find((i) => i.op === 'RUN' && i.args.includes('npm install'))!.args).toContain('"${MODELFETCH_PACKAGE}"');
    expect(dockerfile).toContain('ARG MODELFETCH_PACKAGE="modelfetch@1.2.3"');

    expect(final.find((i) => i.op === 'COPY' && i.args.startsWith('--from=models'))!.args).toBe('--from=models /out/hub/ /opt/huggingface/hub/');
    const env = final.find((i) => i.op === 'ENV')!.args;
    expect(env).toContain('HF_HOME=/opt/huggingface');
    expect(env).toContain('HF_HUB_OFFLINE=1');
    const health = final.find((i) => i.op === 'HEALTHCHECK')!.args;
    const command = JSON.parse(health.slice(health.indexOf('CMD ') + 4)) as string[];
    expect(command.slice(0, 4)).toEqual(['modelfetch', 'sync', '--check', '--frozen']);

    await expectContextHoldsSources(out, ins);
  });

  it('by default packs this modelfetch into the context and installs that tarball in both stages', async () => {
    const dir = await project();
    const out = join(dir, 'image');
    const packed: string[] = [];
    const result = await bake({
      lockPath: join(dir, 'modelfetch.lock.json'),
      outDir: out,
      cacheDir: join(dir, 'cache'),
      packModelfetch: async (target) => {
        packed.push(target);
        await writeFile(target, 'tarball');
      },
    });
    expect(packed).toEqual([join(out, 'modelfetch.tgz')]);
    expect(result.files).toEqual(['.dockerignore', 'Dockerfile', 'modelfetch.lock.json', 'modelfetch.tgz', 'modelfetch.yaml']);
    const dockerfile = await readFile(join(out, 'Dockerfile'), 'utf8');
    const installs = dockerfileInstructions(dockerfile).filter((i) => i.op === 'RUN' && i.args.includes('npm install'));
    expect(installs.map((i) => i.args)).toEqual(Array(2).fill('--mount=type=bind,source=modelfetch.tgz,target=/tmp/modelfetch.tgz npm install --global --no-audit --no-fund /tmp/modelfetch.tgz'));
    expect(dockerfile).not.toContain('MODELFETCH_PACKAGE');
    await expectContextHoldsSources(out, dockerfileInstructions(dockerfile));
  });

  it('quotes a --package spec and refuses values a Dockerfile line cannot hold, before writing anything', async () => {
    const dir = await project();
    await bake({ lockPath: join(dir, 'modelfetch.lock.json'), outDir: join(dir, 'image'), cacheDir: join(dir, 'cache'), modelfetchPackage: 'https://example.test/m.tgz?a="$(x)"\\' });
    expect(await readFile(join(dir, 'image', 'Dockerfile'), 'utf8')).toContain('ARG MODELFETCH_PACKAGE="https://example.test/m.tgz?a=\\"\\$(x)\\"\\\\"\n');
    for (const options of [{ modelfetchPackage: 'modelfetch@1\nRUN touch pwned' }, { baseImage: 'node:20\nRUN touch pwned', modelfetchPackage: 'modelfetch' }, { nodeImage: 'node:20\r' }]) {
      const out = join(dir, 'refused');
      await expect(bake({ lockPath: join(dir, 'modelfetch.lock.json'), outDir: out, cacheDir: join(dir, 'cache'), ...options })).rejects.toMatchObject({ code: 'ERR_USAGE', message: /line break or control character/ });
      expect(existsSync(out)).toBe(false);
    }
  });

  it('says what to do when the running modelfetch has no build to pack', async () => {
    const dir = await project();
    await expect(packModelfetch(join(dir, 'modelfetch.tgz'), dir)).rejects.toMatchObject({ code: 'ERR_USAGE', hint: /npm run build.*--package SPEC/ });
    expect(await readdir(dir)).not.toContain('modelfetch.tgz');
  });

  it('carries the signature and public key into the build, which checks them again', async () => {
    const dir = await project();
    const keys = await writeKeyPair(join(dir, 'release'));
    await signLockfile(join(dir, 'modelfetch.lock.json'), keys.privateKeyPath);
    const out = join(dir, 'image');
    const result = await bake({ lockPath: join(dir, 'modelfetch.lock.json'), outDir: out, cacheDir: join(dir, 'cache'), verifyKey: keys.publicKeyPath, modelfetchPackage: 'modelfetch' });
    expect(result.files).toContain('modelfetch.lock.json.sig');
    expect(await readFile(join(out, 'modelfetch-lock.pub'), 'utf8')).toBe(await readFile(keys.publicKeyPath, 'utf8'));
    const dockerfile = await readFile(join(out, 'Dockerfile'), 'utf8');
    expect(dockerfile).toContain('--verify-key modelfetch-lock.pub --cache-dir');
    expect(dockerfile).toContain('COPY ["modelfetch.yaml","modelfetch.lock.json","modelfetch.lock.json.sig","modelfetch-lock.pub","/etc/modelfetch/"]');
    expect(dockerfile).toContain('"--verify-key","/etc/modelfetch/modelfetch-lock.pub"]');

    const other = await writeKeyPair(join(dir, 'other'));
    await expect(bake({ lockPath: join(dir, 'modelfetch.lock.json'), outDir: join(dir, 'x'), cacheDir: join(dir, 'cache'), verifyKey: other.publicKeyPath, modelfetchPackage: 'modelfetch' })).rejects.toMatchObject({ code: 'ERR_SIGNATURE' });
  });

  it('refuses a lockfile that no longer matches the manifest', async () => {
    const dir = await project();
    await writeFile(join(dir, 'modelfetch.yaml'), 'models:\n  - repo: org/tts\n    include: ["*.json"]\n');
    await expect(bake({ lockPath: join(dir, 'modelfetch.lock.json'), outDir: join(dir, 'image'), cacheDir: join(dir, 'cache'), modelfetchPackage: 'modelfetch' })).rejects.toMatchObject({ code: 'ERR_USAGE', message: /does not match/ });
  });
});

/** The shell command of a shell-form RUN (its `--mount=` flags dropped); undefined for the JSON exec form. */
function shellCommand(run: { args: string }): string | undefined {
  if (run.args.startsWith('[')) return undefined;
  return run.args.replace(/^(--[a-z]+=\S+\s+)+/, '');
}

describe('bake with hostile file names', () => {
  it.each([
    ['a command substitution', 'evil$(touch pwned-subst).lock.json'],
    ['back quotes and quotes', 'evil`touch pwned-backquote`"\'.lock.json'],
    ['a newline that starts an instruction', 'evil\nRUN touch pwned-newline\n.lock.json'],
  ])('keeps a lockfile name with %s out of the Dockerfile\'s instructions', async (_what, name) => {
    const plain = await project();
    await bake({ lockPath: join(plain, 'modelfetch.lock.json'), outDir: join(plain, 'image'), cacheDir: join(plain, 'cache'), modelfetchPackage: 'modelfetch@1.2.3' });
    const expected = dockerfileInstructions(await readFile(join(plain, 'image', 'Dockerfile'), 'utf8')).map((i) => i.op);

    const dir = await project();
    await rename(join(dir, 'modelfetch.lock.json'), join(dir, name));
    const out = join(dir, 'image');
    await bake({ lockPath: join(dir, name), manifestPath: join(dir, 'modelfetch.yaml'), outDir: out, cacheDir: join(dir, 'cache'), modelfetchPackage: 'modelfetch@1.2.3' });
    const ins = dockerfileInstructions(await readFile(join(out, 'Dockerfile'), 'utf8'));
    // A name cannot add, drop or split an instruction.
    expect(ins.map((i) => i.op)).toEqual(expected);

    // Run every shell-form RUN as the build's /bin/sh would, in a copy of the context, with npm and
    // modelfetch stubbed: no command hidden in the name may run.
    const stubs = join(dir, 'stubs');
    await mkdir(stubs);
    for (const program of ['npm', 'modelfetch']) {
      await writeFile(join(stubs, program), '#!/bin/sh\nexit 0\n');
      await chmod(join(stubs, program), 0o755);
    }
    const commands = ins.filter((i) => i.op === 'RUN').map(shellCommand).filter((c): c is string => c !== undefined);
    expect(commands.length).toBeGreaterThan(0);
    for (const command of commands) {
      execFileSync('sh', ['-c', command], { cwd: out, env: { PATH: `${stubs}:/usr/bin:/bin` }, stdio: 'pipe' });
    }
    expect((await readdir(out)).filter((f) => f.startsWith('pwned'))).toEqual([]);
    expect(existsSync(join(out, 'pwned-subst')) || existsSync(join(out, 'pwned-backquote')) || existsSync(join(out, 'pwned-newline'))).toBe(false);
  });
});
