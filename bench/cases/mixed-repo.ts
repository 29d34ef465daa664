import { join } from 'node:path';
import type { FixtureFileSpec } from '../../test/support/fixture-hub.js';
import type { Fault } from '../../test/support/fixture-server.js';
import { MiB, missingCommands, ratioCheck, seconds, type BenchCase } from '../lib/bench-case.js';
import { hfHubSnapshot, modelfetchPull, snapshotTotals, startPacedHub } from '../lib/hub.js';

/** A repo that is mostly small files plus two large ones, like a dataset shard folder beside weights. */
function mixedRepo(quick: boolean): FixtureFileSpec[] {
  const small = quick ? 100 : 1000;
  const big = quick ? 32 * MiB : 512 * MiB;
  // Sizes spread over 10–200 KB by a fixed sequence, so every run pulls the same repo.
  const files: FixtureFileSpec[] = Array.from({ length: small }, (_, i) => ({
    path: `shards/${String(Math.floor(i / 100)).padStart(2, '0')}/part-${String(i).padStart(4, '0')}.bin`,
    size: 10_000 + ((i * 7919) % 190_001),
  }));
  files.push({ path: 'model-00001-of-00002.safetensors', size: big }, { path: 'model-00002-of-00002.safetensors', size: big });
  return files;
}

/** Case 5: pull of a mixed repo from a paced fixture Hub: defaults vs one connection vs @huggingface/hub. */
export const mixedRepoCase: BenchCase = {
  id: 'mixed',
  title: 'Mixed repo (many small files + two large) from a paced fixture Hub: pull vs one connection vs @huggingface/hub',
  unavailable: (ctx) => missingCommands(ctx, 'pull'),
  async run(ctx, report) {
    const pace: Fault = { throttleBytesPerSec: ctx.throttleRate, latencyMs: 30 };
    const files = mixedRepo(ctx.quick);
    const total = files.reduce((sum, f) => sum + (f.size ?? 0), 0);
    ctx.log(`generating the fixture Hub repo (${files.length} files, ${(total / MiB).toFixed(0)} MiB)`);
    const hub = await startPacedHub('bench/mixed', files, pace);
    try {
      report.notes.push(
        `${files.length} files, ${(total / MiB).toFixed(0)} MiB; every hub and CDN response waits ${pace.latencyMs} ms and is throttled to ${(ctx.throttleRate / MiB).toFixed(0)} MiB/s per connection`,
        'baseline: pull --connections 1 (one connection per host: the hub for small files, the CDN for LFS ones)',
      );
      const timed: Array<[string, string, () => Promise<number>]> = [
        ['modelfetch pull (defaults)', 'c-default', async () => (await modelfetchPull(ctx, hub, 'bench/mixed', join(ctx.work, 'c-default'))).run.ms],
        ['modelfetch pull --connections 1', 'c-one', async () => (await modelfetchPull(ctx, hub, 'bench/mixed', join(ctx.work, 'c-one'), ['--connections', '1'])).run.ms],
        ['@huggingface/hub snapshotDownload', 'c-hfjs', async () => (await hfHubSnapshot(ctx, hub, 'bench/mixed', join(ctx.work, 'c-hfjs'))).ms],
      ];
      const times: number[] = [];
      for (const [label, dir, run] of timed) {
        ctx.log(label);
        const ms = await run();
        const snapshot = join(ctx.work, dir, 'models--bench--mixed', 'snapshots', hub.commitOf('bench/mixed'));
        const got = await snapshotTotals(snapshot);
        if (got.files !== files.length || got.bytes !== total) throw new Error(`${label} left ${got.files} files / ${got.bytes} bytes, expected ${files.length} / ${total}`);
        times.push(ms);
        report.measurements.push({ label, value: seconds(ms), unit: 's' });
      }
      const [fast, one, hfjs] = times as [number, number, number];
      report.checks.push(ratioCheck('speed-up over one connection', one / fast, '≥', 5));
      report.checks.push(ratioCheck('speed-up over @huggingface/hub', hfjs / fast, '≥', 3));
    } finally {
      await hub.close();
    }
  },
};
