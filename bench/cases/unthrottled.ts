import { join } from 'node:path';
import { GiB, MiB, missingCommands, ratioCheck, seconds, type BenchCase } from '../lib/bench-case.js';
import { assertDownloaded, curlGet, curlTeeSha256, modelfetchGet, opensslSha256 } from '../lib/downloads.js';
import { assertOk, median, runMeasured } from '../lib/proc.js';

/** Case 2: an unthrottled 2 GiB file: time until the verified file is in place vs curl's time merely to write it. */
export const unthrottledCase: BenchCase = {
  id: 'unthrottled',
  title: 'Unthrottled download: get --sha256 (verified, in place) vs curl -o, and vs curl then sha256sum',
  unavailable: (ctx) => missingCommands(ctx, 'get') ?? (ctx.tools.has('curl') ? undefined : 'curl not installed'),
  async run(ctx, report) {
    const size = ctx.quick ? 256 * MiB : 2 * GiB;
    const runs = ctx.quick ? 1 : 3;
    const file = await ctx.dataFile('unthrottled.bin', size);
    const server = await ctx.reference();
    const url = server.url('unthrottled.bin', false);
    const output = join(ctx.work, 'out-unthrottled.bin');
    report.notes.push(`${size / MiB} MiB from ${server.kind}, median of ${runs} run(s); modelfetch fsyncs the file before it is in place, curl does not`);

    const curlTimes: number[] = [];
    const hashTimes: number[] = [];
    const teeTimes: number[] = [];
    const opensslTimes: number[] = [];
    const mfTimes: number[] = [];
    let peak = 0;
    for (let i = 0; i < runs; i++) {
      curlTimes.push((await curlGet(url, output)).ms);
      if (ctx.tools.has('sha256sum')) {
        const hashed = assertOk('sha256sum', await runMeasured('sha256sum', [output]));
        if (!hashed.stdout.startsWith(file.sha256)) throw new Error('curl wrote bytes with the wrong SHA-256');
        hashTimes.push(hashed.ms);
      }
      if (ctx.tools.has('openssl')) {
        const floor = await opensslSha256(output);
        if (floor.sha256 !== file.sha256) throw new Error('openssl hashed other bytes than were served');
        opensslTimes.push(floor.ms);
        const tee = await curlTeeSha256(url, output);
        if (tee.sha256 !== file.sha256) throw new Error('curl | tee | openssl saw other bytes than were served');
        teeTimes.push(tee.ms);
      }
      const mf = await modelfetchGet(ctx, url, output, ['--sha256', file.sha256]);
      mfTimes.push(mf.ms);
      peak = Math.max(peak, mf.peakRssBytes ?? 0);
    }
    await assertDownloaded('modelfetch get', output, file);
    const curl = median(curlTimes);
    const mf = median(mfTimes);
    report.measurements.push({ label: 'curl -s -o (write only)', value: seconds(curl), unit: 's' });
    if (hashTimes.length) {
      const both = curl + median(hashTimes);
      report.measurements.push({ label: 'curl -o, then sha256sum', value: seconds(both), unit: 's' });
      report.notes.push(`modelfetch takes ${(mf / both).toFixed(2)}x the time of download-then-verify`);
    }
    if (teeTimes.length) {
      const tee = median(teeTimes);
      report.measurements.push({ label: 'openssl dgst -sha256 of the file (hashing alone)', value: seconds(median(opensslTimes)), unit: 's' });
      report.measurements.push({ label: 'curl | tee | openssl dgst (verified while writing)', value: seconds(tee), unit: 's' });
      report.notes.push(`modelfetch takes ${(mf / tee).toFixed(2)}x the time of curl | tee | openssl, the same work done by standard tools; hashing alone takes ${(median(opensslTimes) / curl).toFixed(2)}x curl's write time on one core`);
    }
    report.measurements.push({ label: 'modelfetch get --sha256 (verified)', value: seconds(mf), unit: 's' });
    report.measurements.push({ label: 'modelfetch throughput', value: size / 1e6 / (mf / 1000), unit: 'MB/s' });
    if (peak) report.measurements.push({ label: 'modelfetch peak RSS', value: peak / 1e6, unit: 'MB' });
    report.checks.push(ratioCheck('verified time vs curl write time', mf / curl, '≤', 1.1));
  },
};
