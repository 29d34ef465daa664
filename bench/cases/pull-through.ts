import { join } from 'node:path';
import type { Fault } from '../../test/support/fixture-server.js';
import { FeatureMissing, MiB, missingCommands, ratioCheck, seconds, type BenchCase } from '../lib/bench-case.js';
import { modelfetchPull, snapshotTotals, startPacedHub } from '../lib/hub.js';
import { startServe } from '../lib/serve-process.js';

/** Case 8: the first client through a cold `serve` mirror vs the same pull straight from the Hub. */
export const pullThroughCase: BenchCase = {
  id: 'pull-through',
  title: 'Cold pull-through: first pull through a cold serve mirror vs a direct pull from the fixture Hub',
  unavailable: (ctx) => missingCommands(ctx, 'pull', 'serve'),
  async run(ctx, report) {
    const pace: Fault = { throttleBytesPerSec: ctx.throttleRate, latencyMs: 30 };
    const big = ctx.quick ? 64 * MiB : 512 * MiB;
    const files = [
      { path: 'config.json', content: '{"model_type":"llama","hidden_size":4096}' },
      { path: 'tokenizer.json', size: 2 * MiB },
      { path: 'model.safetensors', size: big },
    ];
    const hub = await startPacedHub('bench/through', files, pace);
    await hub.addRepo({ repoId: 'bench/probe', files: [{ path: 'config.json', content: '{}' }] });
    const mirrorCache = join(ctx.work, 'mirror-cache');
    const mirror = await startServe(ctx.cli, mirrorCache, { upstream: hub.endpoint });
    try {
      // A mirror that never asks upstream about a repo it lacks has no pull-through to measure.
      const probe = await fetch(`${mirror.origin}/api/models/bench/probe/revision/main`);
      await probe.arrayBuffer();
      if (!probe.ok && hub.requests().length === 0) throw new FeatureMissing('serve pull-through (filling misses from upstream) not available');
      const commit = hub.commitOf('bench/through');
      const expected = 2 * MiB + big + Buffer.byteLength(files[0]!.content!);
      const check = async (cacheDir: string, label: string): Promise<void> => {
        const got = await snapshotTotals(join(cacheDir, 'models--bench--through', 'snapshots', commit));
        if (got.files !== files.length || got.bytes !== expected) throw new Error(`${label} left ${got.files} files / ${got.bytes} bytes`);
      };
      const direct = await modelfetchPull(ctx, hub, 'bench/through', join(ctx.work, 'c-direct'));
      await check(join(ctx.work, 'c-direct'), 'direct pull');
      const through = await modelfetchPull(ctx, { endpoint: mirror.origin }, 'bench/through', join(ctx.work, 'c-through'));
      await check(join(ctx.work, 'c-through'), 'pull through the mirror');
      report.notes.push(`${files.length} files, ${(expected / MiB).toFixed(0)} MiB; hub and CDN paced at ${(ctx.throttleRate / MiB).toFixed(0)} MiB/s per connection, ${pace.latencyMs} ms per response; the mirror starts cold`);
      report.measurements.push({ label: 'pull direct from the Hub', value: seconds(direct.run.ms), unit: 's' });
      report.measurements.push({ label: 'pull through cold serve mirror', value: seconds(through.run.ms), unit: 's' });
      report.checks.push(ratioCheck('mirror time vs direct', through.run.ms / direct.run.ms, '≤', 1.15));
    } finally {
      await mirror.close();
      await hub.close();
    }
  },
};
