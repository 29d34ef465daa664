import { join } from 'node:path';
import { fakeCommit } from '../../test/support/cache-builder.js';
import { GiB, MiB, missingCommands, ratioCheck, seconds, type BenchCase } from '../lib/bench-case.js';
import { buildLargeCachedRepo } from '../lib/large-cache.js';
import { assertOk, median, runMeasured } from '../lib/proc.js';

/** Case 9: `modelfetch verify` of a 4 GiB cache vs `openssl dgst -sha256` over the same blobs one after another. */
export const verifyCase: BenchCase = {
  id: 'verify',
  title: 'verify of a 4 GiB cache vs openssl dgst -sha256 over the same files, one after another',
  unavailable: (ctx) => missingCommands(ctx, 'verify') ?? (ctx.tools.has('openssl') ? undefined : 'openssl not installed'),
  async run(ctx, report) {
    const total = ctx.quick ? 512 * MiB : 4 * GiB;
    const files = [
      ...Array.from({ length: 6 }, (_, i) => ({ path: `model-0000${i + 1}-of-00006.safetensors`, size: Math.round(total / 8) })),
      { path: 'consolidated.pth', size: Math.round(total / 4) },
    ];
    const cacheDir = join(ctx.work, 'verify-cache');
    ctx.log(`building a ${total / MiB} MiB cache of ${files.length} files`);
    const { blobs } = await buildLargeCachedRepo(cacheDir, 'bench/verify', fakeCommit('verify'), files);
    const runs = ctx.quick ? 1 : 3;
    const opensslMs: number[] = [];
    const verifyMs: number[] = [];
    const env = { ...process.env, HF_HUB_CACHE: cacheDir };
    const args = ['verify', ...(ctx.cli.hasOption('verify', '--full') ? ['--full'] : [])];
    for (let i = 0; i < runs; i++) {
      const openssl = assertOk('openssl dgst', await runMeasured('openssl', ['dgst', '-sha256', ...blobs.map((b) => b.blob)]));
      for (const b of blobs) if (!openssl.stdout.includes(b.sha256)) throw new Error('openssl printed an unexpected digest');
      opensslMs.push(openssl.ms);
      verifyMs.push(assertOk('modelfetch verify', await ctx.cli.run(args, { env })).ms);
    }
    const openssl = median(opensslMs);
    const verify = median(verifyMs);
    report.notes.push(`${files.length} blobs, ${total / MiB} MiB in all, warm page cache, median of ${runs} run(s); modelfetch ${args.join(' ')}`);
    report.measurements.push({ label: 'openssl dgst -sha256 (sequential)', value: seconds(openssl), unit: 's' });
    report.measurements.push({ label: `modelfetch ${args.join(' ')}`, value: seconds(verify), unit: 's' });
    report.checks.push(ratioCheck('time vs openssl sequential', verify / openssl, '≤', 0.6));
  },
};
