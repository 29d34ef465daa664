import { join } from 'node:path';
import { limitCheck, missingCommands, MiB, ratioCheck, type BenchCase } from '../lib/bench-case.js';
import { startPacedHub } from '../lib/hub.js';
import { lastJson } from '../lib/modelfetch-cli.js';
import { assertOk } from '../lib/proc.js';
import { zeroSafetensors } from '../lib/safetensors-files.js';

const LATENCY_MS = 20;
const SHARDS = 4;
const RUNS = 7;

/**
 * `inspect` of a 4-shard model on the fixture Hub at 20 ms per response: how many round trips of
 * wall time it costs (the same run at 0 ms latency subtracted, divided by the latency) and what
 * share of the model's bytes it moved.
 */
export const inspectCase: BenchCase = {
  id: 'inspect',
  title: `inspect of a ${SHARDS}-shard safetensors model on the fixture Hub at ${LATENCY_MS} ms latency: round trips and bytes moved`,
  unavailable: (ctx) => missingCommands(ctx, 'inspect'),
  async run(ctx, report) {
    const shardBytes = (ctx.quick ? 16 : 64) * MiB;
    const shards = Array.from({ length: SHARDS }, (_, i) => `model-0000${i + 1}-of-0000${SHARDS}.safetensors`);
    const weightMap = Object.fromEntries(shards.map((name, i) => [`layers.${i}.weight`, name]));
    const files = [
      ...shards.map((path, i) => ({ path, content: zeroSafetensors(`layers.${i}.weight`, shardBytes), lfs: true })),
      { path: 'model.safetensors.index.json', content: JSON.stringify({ metadata: { total_size: SHARDS * shardBytes }, weight_map: weightMap }) },
      { path: 'config.json', content: '{"torch_dtype":"float32"}' },
    ];
    const modelBytes = files.reduce((n, f) => n + Buffer.byteLength(f.content), 0);
    const timeAt = async (latencyMs: number): Promise<{ ms: number; bytes: number; requests: number }> => {
      const hub = await startPacedHub('bench/sharded', files, latencyMs ? { latencyMs } : {});
      try {
        const times: number[] = [];
        let bytes = 0;
        let requests = 0;
        for (let i = 0; i < RUNS; i++) {
          hub.resetLogs();
          const run = assertOk('modelfetch inspect', await ctx.cli.run(['inspect', 'bench/sharded', '--json', '--cache-dir', join(ctx.work, 'inspect-empty-cache'), '--endpoint', hub.endpoint], { env: { ...process.env, HF_HUB_OFFLINE: '' } }));
          const parsed = lastJson(run.stdout);
          if (!parsed || (parsed.files as unknown[]).length !== SHARDS) throw new Error(`inspect did not report ${SHARDS} shards: ${run.stdout.slice(0, 300)}`);
          times.push(run.ms);
          bytes = hub.requests().reduce((n, r) => n + r.bodyBytes, 0);
          requests = hub.requests().length;
        }
        // The fastest run: other work on the machine only ever adds time, never removes round trips.
        return { ms: Math.min(...times), bytes, requests };
      } finally {
        await hub.close();
      }
    };
    const fast = await timeAt(0);
    const paced = await timeAt(LATENCY_MS);
    const roundTrips = (paced.ms - fast.ms) / LATENCY_MS;
    // Resolving a branch costs two hub API calls (revision, tree listing) before any header is read.
    const headerRoundTrips = roundTrips - 2;
    report.notes.push(`${SHARDS} shards of ${shardBytes / MiB} MiB + index + config; fastest of ${RUNS} runs; round trips = (time at ${LATENCY_MS} ms − time at 0 ms) / ${LATENCY_MS} ms; every hub and CDN response is delayed`);
    report.measurements.push({ label: `inspect at 0 ms latency (whole process)`, value: fast.ms, unit: 'ms' });
    report.measurements.push({ label: `inspect at ${LATENCY_MS} ms latency (whole process)`, value: paced.ms, unit: 'ms' });
    report.measurements.push({ label: 'round trips of wall time, all', value: Math.round(roundTrips * 10) / 10, unit: 'count' });
    report.measurements.push({ label: 'requests', value: paced.requests, unit: 'count' });
    report.measurements.push({ label: 'bytes moved', value: paced.bytes, unit: 'bytes' });
    report.checks.push(limitCheck('round trips for the shard group (after the 2 API calls)', Math.round(headerRoundTrips * 10) / 10, 'count', '≤', 3));
    report.checks.push(ratioCheck('bytes moved / model bytes (%)', Math.round((paced.bytes / modelBytes) * 10000) / 100, '<', 1));
  },
};
