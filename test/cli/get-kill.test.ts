import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { MiB, type Setup, testScope } from '../transfer/helpers.js';

const root = resolve(import.meta.dirname, '../..');
const cliArgs = ['--import', 'tsx', join(root, 'src/cli/run.ts')];

let s: Setup | undefined;
const scope = testScope();

describe('modelfetch get survives kill -9', () => {
  it('resumes after SIGKILL mid-download and fetches little more than the file', async () => {
    const size = 8 * MiB;
    s = await scope.setup(size);
    s.server.addFault({ fault: { throttleBytesPerSec: MiB } });
    const out = join(s.dir, 'killed.bin');
    const args = [...cliArgs, 'get', s.url, '-o', out, '--sha256', s.info.sha256, '--connections', '4', '--quiet'];

    const child = spawn(process.execPath, args, { cwd: root, stdio: 'ignore' });
    const exited = new Promise<number | null>((done) => child.on('exit', (_code, signal) => done(signal === 'SIGKILL' ? -9 : _code)));
    // Wait until about 40% has been served (bounded, so a broken child cannot hang the test).
    for (let i = 0; i < 600 && s.server.bodyBytesServed() < 0.4 * size; i += 1) await sleep(50);
    expect(s.server.bodyBytesServed()).toBeGreaterThanOrEqual(0.4 * size);
    child.kill('SIGKILL');
    expect(await exited).toBe(-9);
    const servedBeforeKill = s.server.bodyBytesServed();
    expect(servedBeforeKill).toBeLessThan(size);

    s.server.clearFaults();
    const { stdout } = await promisify(execFile)(process.execPath, [...args.slice(0, -1), '--json'], { cwd: root });
    const report = JSON.parse(stdout) as { sha256: string; bytesFetched: number; bytesResumed: number };
    expect(report.sha256).toBe(s.info.sha256);
    expect(createHash('sha256').update(await readFile(out)).digest('hex')).toBe(s.info.sha256);
    expect(report.bytesResumed).toBeGreaterThan(0.25 * size);
    // Everything served over both runs: the file plus at most a few segments' worth lost to the kill.
    expect(s.server.bodyBytesServed()).toBeLessThanOrEqual(size + 4 * MiB);
  });
});
