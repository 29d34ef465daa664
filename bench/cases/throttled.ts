import { join } from 'node:path';
import { MiB, missingCommands, ratioCheck, seconds, type BenchCase } from '../lib/bench-case.js';
import { aria2Get, assertDownloaded, modelfetchGet } from '../lib/downloads.js';

/** Case 1: a throttled 256 MiB file (20 MiB/s per connection): modelfetch defaults vs one connection vs aria2c -x16. */
export const throttledCase: BenchCase = {
  id: 'throttled',
  title: 'Throttled download at 20 MiB/s per connection: get defaults vs one connection vs aria2c -x16 -s16',
  unavailable: (ctx) => missingCommands(ctx, 'get'),
  async run(ctx, report) {
    const size = ctx.quick ? 64 * MiB : 256 * MiB;
    const file = await ctx.dataFile('throttled.bin', size);
    const server = await ctx.reference();
    const url = server.url('throttled.bin', true);
    const output = join(ctx.work, 'out-throttled.bin');
    report.notes.push(`${size / MiB} MiB from ${server.kind}, ${(ctx.throttleRate / MiB).toFixed(0)} MiB/s per connection`);

    const many = await modelfetchGet(ctx, url, output);
    await assertDownloaded('modelfetch get', output, file);
    report.measurements.push({ label: 'modelfetch get (defaults)', value: seconds(many.ms), unit: 's' });
    if (many.peakRssBytes) report.measurements.push({ label: 'modelfetch peak RSS', value: many.peakRssBytes / 1e6, unit: 'MB' });

    const one = await modelfetchGet(ctx, url, output, ['--connections', '1']);
    await assertDownloaded('modelfetch get --connections 1', output, file);
    report.measurements.push({ label: 'modelfetch get --connections 1', value: seconds(one.ms), unit: 's' });
    report.checks.push(ratioCheck('speed-up over one connection', one.ms / many.ms, '≥', 12));

    if (ctx.tools.has('aria2c')) {
      const aria = await aria2Get(url, output);
      await assertDownloaded('aria2c', output, file);
      report.measurements.push({ label: 'aria2c -x16 -s16', value: seconds(aria.ms), unit: 's' });
      report.checks.push(ratioCheck('time vs aria2c', many.ms / aria.ms, '≤', 1));
    } else {
      report.notes.push('aria2c not installed (run as root to install it): no comparison');
    }
  },
};
