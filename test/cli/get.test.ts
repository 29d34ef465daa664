import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { MiB, type Setup, testScope } from '../transfer/helpers.js';

const run = promisify(execFile);
const root = resolve(import.meta.dirname, '../..');

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', join(root, 'src/cli/run.ts'), ...args], { cwd: root });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

let s: Setup | undefined;
const scope = testScope();

describe('modelfetch get', () => {
  it('downloads, verifies and prints JSON; a second run finds the file in place', async () => {
    s = await scope.setup(6 * MiB + 3);
    const out = join(s.dir, 'model.bin');
    const first = await cli(['get', s.url, '-o', out, '--sha256', s.info.sha256, '--json']);
    expect(first.code).toBe(0);
    const report = JSON.parse(first.stdout) as Record<string, number | string>;
    expect(report).toMatchObject({ path: out, size: 6 * MiB + 3, sha256: s.info.sha256, bytesFetched: 6 * MiB + 3, bytesResumed: 0 });
    expect(report.peakRssBytes).toBeGreaterThan(0);
    expect(createHash('sha256').update(await readFile(out)).digest('hex')).toBe(s.info.sha256);
    await expect(stat(`${out}.modelfetch-partial`)).rejects.toThrow();

    const second = await cli(['get', s.url, '-o', out, '--sha256', s.info.sha256, '--quiet']);
    expect(second.code).toBe(0);
    expect(second.stdout.trim()).toBe(out);
    expect(second.stderr).toBe('');
  });

  it('takes the digest from --sha256-url and exits 3 on a mismatch, writing nothing', async () => {
    s = await scope.setup(MiB);
    s.server.route('/sums/good', (_req, res) => void res.end(`${s?.info.sha256}  model.bin\n`));
    s.server.route('/sums/bad', (_req, res) => void res.end(`${"0".repeat(64)}\n`));
    const good = await cli(['get', s.url, '-o', join(s.dir, 'a.bin'), '--sha256-url', `${s.server.origin}/sums/good`, '--quiet']);
    expect(good.code).toBe(0);
    const bad = await cli(['get', s.url, '-o', join(s.dir, 'b.bin'), '--sha256-url', `${s.server.origin}/sums/bad`, '--quiet']);
    expect(bad.code).toBe(3);
    expect(bad.stderr).toContain('ERR_INTEGRITY');
    await expect(stat(join(s.dir, 'b.bin'))).rejects.toThrow();
  });

  it('refuses to overwrite a different existing file unless --force', async () => {
    s = await scope.setup(1000);
    const out = join(s.dir, 'x.bin');
    await writeFile(out, 'something else');
    const refused = await cli(['get', s.url, '-o', out, '--quiet']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('--force');
    expect(await readFile(out, 'utf8')).toBe('something else');
    const forced = await cli(['get', s.url, '-o', out, '--quiet', '--force']);
    expect(forced.code).toBe(0);
    expect((await stat(out)).size).toBe(1000);
  });

  it('exits 4 on 404 and 2 on bad usage', async () => {
    s = await scope.setup(1000);
    const missing = await cli(['get', `${s.server.origin}/nope.bin`, '-o', join(s.dir, 'n.bin'), '--quiet']);
    expect(missing.code).toBe(4);
    expect(missing.stderr).toContain('ERR_NOT_FOUND');
    const usage = await cli(['get', s.url, '--connections', 'zero']);
    expect(usage.code).toBe(2);
  });
});
