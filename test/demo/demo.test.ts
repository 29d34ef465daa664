import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/** `npm start` is the README's first command: it must keep working end to end (at 2% of its sizes). */

const root = join(import.meta.dirname, '../..');

function cliHas(command: string): boolean {
  const help = execFileSync(process.execPath, ['--import', 'tsx', join(root, 'src/cli/run.ts'), '--help'], { cwd: root, encoding: 'utf8' });
  return new RegExp(`^ {2}${command}\\b`, 'm').test(help);
}

describe.skipIf(!cliHas('get'))('npm start (the demo)', () => {
  it('downloads over one connection and with modelfetch, verifies both, pulls a repo twice and cleans up', () => {
    const run = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'scripts/demo.ts')], {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, MODELFETCH_DEMO_SCALE: '0.02' },
      timeout: 120_000,
    });
    expect(run.stderr).not.toMatch(/Error/);
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^one connection: +\d+\.\d+ s$/m);
    expect(run.stdout).toMatch(/^modelfetch defaults: +\d+\.\d+ s$/m);
    expect(run.stdout).toMatch(/^speed-up: \d+\.\dx — both copies verified/m);
    if (cliHas('pull')) {
      expect(run.stdout).toMatch(/^first pull: +\d+\.\d+ s/m);
      expect(run.stdout).toMatch(/^second pull: cache hit — 12 of 12 files cached, 0 bytes fetched, \d+ ms in modelfetch/m);
      expect(run.stdout).toMatch(/^├── model\.safetensors \(\d+\.\d MiB\) -> \.\.\/\.\.\/blobs\/[0-9a-f]{12}…$/m);
      expect(run.stdout).toMatch(/^ {4}└── bm_george\.pt /m);
    }
    expect(run.stdout).toMatch(/^demo finished$/m);
    const work = /data in (\S+) \(removed/.exec(run.stdout)?.[1];
    expect(work).toBeDefined();
    expect(spawnSync('test', ['-e', work!]).status).toBe(1);
  });
});
