import { join } from 'node:path';
import { GiB, MiB, missingCommands, ratioCheck, seconds, type BenchCase } from '../lib/bench-case.js';
import { assertDownloaded, modelfetchGet } from '../lib/downloads.js';
import { lastJson } from '../lib/modelfetch-cli.js';
import { readBytesRead } from '../lib/proc.js';

/**
 * Case 4: kill -9 modelfetch at about half of a ~1 GiB throttled download, run it again, and count
 * the body bytes the server sent over both runs. Progress is watched from outside, through the bytes
 * the process has read (/proc/<pid>/io rchar), so the case depends on no output format.
 */
export const resumeCase: BenchCase = {
  id: 'resume',
  title: 'Resume after kill -9 at ~50%: body bytes the server sent over both runs vs file size',
  unavailable: (ctx) => missingCommands(ctx, 'get'),
  async run(ctx, report) {
    const size = ctx.quick ? 128 * MiB : 1 * GiB;
    const file = await ctx.dataFile('resume.bin', size);
    const server = await ctx.reference();
    const url = server.url('resume.bin', true);
    const output = join(ctx.work, 'out-resume.bin');
    const sha = ['--sha256', file.sha256];
    await server.resetCount();

    let readAtKill = 0;
    const first = await modelfetchGet(ctx, url, output, sha, {
      killWhen: async (pid) => {
        readAtKill = (await readBytesRead(pid)) ?? 0;
        return readAtKill >= size / 2;
      },
    });
    if (first.result.signal !== 'SIGKILL') throw new Error(`the first run ended (${first.result.code}) before it could be killed at 50%`);
    const second = await modelfetchGet(ctx, url, output, sha);
    await assertDownloaded('modelfetch get (resumed)', output, file);
    const sent = await server.bodyBytesSent();

    report.notes.push(`${size / MiB} MiB from ${server.kind}, ${(ctx.throttleRate / MiB).toFixed(0)} MiB/s per connection; killed after the process had read ${(readAtKill / MiB).toFixed(0)} MiB`);
    report.measurements.push({ label: 'first run until kill -9', value: seconds(first.ms), unit: 's' });
    report.measurements.push({ label: 'second run (resumed, verified)', value: seconds(second.ms), unit: 's' });
    report.measurements.push({ label: 'body bytes sent, both runs', value: sent / 1e6, unit: 'MB' });
    const resumed = lastJson(second.result.stdout)?.bytesResumed;
    if (typeof resumed === 'number') report.measurements.push({ label: 'bytes the second run took from the journal', value: resumed / 1e6, unit: 'MB' });
    report.checks.push(ratioCheck('bytes sent / file size', sent / size, '≤', 1.05));
  },
};
