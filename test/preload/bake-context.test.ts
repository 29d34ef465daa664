import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bake } from '../../src/bake/bake.js';
import { signLockfile } from '../../src/preload/lock-signature.js';
import { serialiseLockfile } from '../../src/preload/lockfile.js';
import { writeKeyPair } from '../../src/preload/signature.js';
import { fakeCommit } from '../support/cache-builder.js';
import { lockedModelOf } from '../support/locked-cache.js';

/** Dockerfile instructions with continuation lines joined and comments dropped. */
function instructions(dockerfile: string): { op: string; args: string }[] {
  const joined = dockerfile.replace(/\\\n/g, ' ');
  return joined
    .split('\n')
    .filter((line) => line.trim() && !line.trimStart().startsWith('#'))
    .map((line) => {
      const [op, ...rest] = line.trim().split(/\s+/);
      return { op: op!.toUpperCase(), args: rest.join(' ') };
    });
}

async function project(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mf-bake-'));
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
    const ins = instructions(dockerfile);
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
    expect(builder.find((i) => i.op === 'RUN' && i.args.includes('npm install'))!.args).toContain('MODELFETCH_PACKAGE');
    expect(dockerfile).toContain('ARG MODELFETCH_PACKAGE=modelfetch@1.2.3');

    expect(final.find((i) => i.op === 'COPY' && i.args.startsWith('--from=models'))!.args).toBe('--from=models /out/hub/ /opt/huggingface/hub/');
    const env = final.find((i) => i.op === 'ENV')!.args;
    expect(env).toContain('HF_HOME=/opt/huggingface');
    expect(env).toContain('HF_HUB_OFFLINE=1');
    const health = final.find((i) => i.op === 'HEALTHCHECK')!.args;
    const command = JSON.parse(health.slice(health.indexOf('CMD ') + 4)) as string[];
    expect(command.slice(0, 4)).toEqual(['modelfetch', 'sync', '--check', '--frozen']);

    // Every file a COPY takes from the context is in it and let through by .dockerignore.
    const ignore = await readFile(join(out, '.dockerignore'), 'utf8');
    for (const copy of ins.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'))) {
      for (const source of copy.args.split(' ').slice(0, -1)) {
        await expect(readFile(join(out, source))).resolves.toBeInstanceOf(Buffer);
        expect(ignore).toContain(`!${source}`);
      }
    }
  });

  it('carries the signature and public key into the build, which checks them again', async () => {
    const dir = await project();
    const keys = await writeKeyPair(join(dir, 'release'));
    await signLockfile(join(dir, 'modelfetch.lock.json'), keys.privateKeyPath);
    const out = join(dir, 'image');
    const result = await bake({ lockPath: join(dir, 'modelfetch.lock.json'), outDir: out, cacheDir: join(dir, 'cache'), verifyKey: keys.publicKeyPath });
    expect(result.files).toContain('modelfetch.lock.json.sig');
    expect(await readFile(join(out, 'modelfetch-lock.pub'), 'utf8')).toBe(await readFile(keys.publicKeyPath, 'utf8'));
    const dockerfile = await readFile(join(out, 'Dockerfile'), 'utf8');
    expect(dockerfile).toContain('--verify-key modelfetch-lock.pub --cache-dir');
    expect(dockerfile).toContain('COPY modelfetch.yaml modelfetch.lock.json modelfetch.lock.json.sig modelfetch-lock.pub /etc/modelfetch/');
    expect(dockerfile).toContain('"--verify-key","/etc/modelfetch/modelfetch-lock.pub"]');

    const other = await writeKeyPair(join(dir, 'other'));
    await expect(bake({ lockPath: join(dir, 'modelfetch.lock.json'), outDir: join(dir, 'x'), cacheDir: join(dir, 'cache'), verifyKey: other.publicKeyPath })).rejects.toMatchObject({ code: 'ERR_SIGNATURE' });
  });

  it('refuses a lockfile that no longer matches the manifest', async () => {
    const dir = await project();
    await writeFile(join(dir, 'modelfetch.yaml'), 'models:\n  - repo: org/tts\n    include: ["*.json"]\n');
    await expect(bake({ lockPath: join(dir, 'modelfetch.lock.json'), outDir: join(dir, 'image'), cacheDir: join(dir, 'cache') })).rejects.toMatchObject({ code: 'ERR_USAGE', message: /does not match/ });
  });
});
