import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';
import { runProcess } from '../support/process.js';
import { interopPython, interopVenv } from '../support/python.js';
import { testTempDir } from '../support/temp.js';

/**
 * `modelfetch download` prints what huggingface_hub's own `hf download` prints, byte for byte once the
 * temp folder is replaced by a placeholder: both run against the same fixture hub, each with its own cache.
 */

const python = interopPython();
let hub: FixtureHub;

beforeAll(async () => {
  hub = await startFixtureHub({
    repos: [
      {
        repoId: 'org/compat',
        files: [
          { path: 'config.json', content: '{"model_type":"demo"}' },
          { path: 'tokenizer.json', content: '{"v":1}' },
          { path: 'sub/notes.txt', content: 'notes\n' },
          { path: 'model.safetensors', size: 1024 * 1024 + 11, lfs: true },
        ],
      },
    ],
  });
});
afterAll(() => hub.close());

/** Runs `hf download ARGS` and `modelfetch download ARGS` (ROOT in ARGS is each one's own folder); returns both stdouts with their folder as ROOT. */
async function both(args: string[]): Promise<{ hf: string; modelfetch: string }> {
  const dir = await testTempDir('mf-download-compat-');
  const common = { HF_ENDPOINT: hub.endpoint, HF_HUB_DISABLE_TELEMETRY: '1', HF_HUB_DISABLE_PROGRESS_BARS: '1', HF_HUB_DISABLE_XET: '1', NO_COLOR: '1' };
  const outputs: string[] = [];
  for (const name of ['hf', 'modelfetch']) {
    const root = join(dir, name);
    const env = { ...common, HF_HUB_CACHE: join(root, 'hub') };
    const concrete = args.map((arg) => arg.replaceAll('ROOT', root));
    const run = name === 'hf' ? await runProcess(join(interopVenv, 'bin', 'hf'), ['download', ...concrete], { PATH: process.env.PATH, HOME: process.env.HOME, ...env }) : await runCli(['download', ...concrete], env);
    expect(run.code, `${name} download failed: ${run.stderr}`).toBe(0);
    outputs.push(run.stdout.replaceAll(root, 'ROOT'));
  }
  await rm(dir, { recursive: true, force: true });
  return { hf: outputs[0] ?? '', modelfetch: outputs[1] ?? '' };
}

describe.skipIf(!python)('modelfetch download against hf download', () => {
  const commit = () => hub.commitOf('org/compat');

  it('a whole repo: the snapshot path', async () => {
    const out = await both(['org/compat']);
    expect(out.hf).toBe(`✓ Downloaded\n  path: ROOT/hub/models--org--compat/snapshots/${commit()}\n`);
    expect(out.modelfetch).toBe(out.hf);
  });

  it('one file: that file path', async () => {
    const out = await both(['org/compat', 'sub/notes.txt']);
    expect(out.hf).toBe(`✓ Downloaded\n  path: ROOT/hub/models--org--compat/snapshots/${commit()}/sub/notes.txt\n`);
    expect(out.modelfetch).toBe(out.hf);
  });

  it('--local-dir: the local dir path', async () => {
    const out = await both(['org/compat', '--local-dir', 'ROOT/model']);
    expect(out.hf).toBe('✓ Downloaded\n  path: ROOT/model\n');
    expect(out.modelfetch).toBe(out.hf);
  });

  it('--include: the snapshot path', async () => {
    const out = await both(['org/compat', '--include', '*.json']);
    expect(out.hf).toBe(`✓ Downloaded\n  path: ROOT/hub/models--org--compat/snapshots/${commit()}\n`);
    expect(out.modelfetch).toBe(out.hf);
  });

  it('--quiet: the path alone, for $(…)', async () => {
    const out = await both(['org/compat', 'config.json', '--quiet']);
    expect(out.hf).toBe(`ROOT/hub/models--org--compat/snapshots/${commit()}/config.json\n`);
    expect(out.modelfetch).toBe(out.hf);
  });
});

describe('download flags without a meaning for modelfetch', () => {
  it('--max-workers and --resume-download are accepted with a note; the files still arrive', async () => {
    const dir = await testTempDir('mf-download-notes-');
    const run = await runCli(['download', 'org/compat', 'config.json', '--max-workers', '4', '--resume-download', '--quiet'], { HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: join(dir, 'hub') });
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`${join(dir, 'hub', 'models--org--compat', 'snapshots', hub.commitOf('org/compat'), 'config.json')}\n`);
    expect(run.stderr).toContain('modelfetch: note: --max-workers 4 is ignored');
    expect(run.stderr).toContain('modelfetch: note: --resume-download is ignored');
  });

  it('--dry-run is a usage error that points at pull --check', async () => {
    const run = await runCli(['download', 'org/compat', '--dry-run'], { HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: '/nonexistent/never-written' });
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain('pull REPO --check');
    expect(run.stdout).toBe('');
  });
});
