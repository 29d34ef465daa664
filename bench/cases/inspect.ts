import { join } from 'node:path';
import { limitCheck, missingCommands, MiB, ratioCheck, type BenchCase } from '../lib/bench-case.js';
import { startPacedHub } from '../lib/hub.js';
import { lastJson } from '../lib/modelfetch-cli.js';
import { assertOk, median } from '../lib/proc.js';
import { shardSafetensors } from '../lib/safetensors-files.js';
import type { FixtureHub } from '../../test/support/fixture-hub.js';
import type { RequestRecord } from '../../test/support/fixture-server.js';

const LATENCY_MS = 20;
const SHARDS = 4;
const TENSORS_PER_SHARD = 800;
const RUNS = 11;

const isApi = (r: RequestRecord): boolean => r.url.startsWith('/api/');

/** Wall time from the first of `records` arriving to the last one's answer finishing, as the servers saw it. */
function span(records: RequestRecord[]): number {
  if (!records.length) return 0;
  return Math.max(...records.map((r) => r.finishedAt ?? r.receivedAt)) - Math.min(...records.map((r) => r.receivedAt));
}

/**
 * Requests on the longest chain where each one was sent after the one before it was answered: the
 * round trips a client cannot overlap, whatever the machine's load adds to each.
 */
function chainLength(records: RequestRecord[]): number {
  const sorted = [...records].sort((a, b) => a.receivedAt - b.receivedAt);
  const depth: number[] = [];
  sorted.forEach((r, i) => (depth[i] = 1 + Math.max(0, ...sorted.slice(0, i).flatMap((p, j) => ((p.finishedAt ?? Infinity) <= r.receivedAt ? [depth[j]!] : [])))));
  return Math.max(0, ...depth);
}

/** One round trip as this run has it: a small GET answered by the hub over an open connection, median of 15. */
async function measureRoundTrip(url: string): Promise<number> {
  const times: number[] = [];
  await (await fetch(url)).arrayBuffer(); // opens the connection
  for (let i = 0; i < 15; i++) {
    const began = performance.now();
    await (await fetch(url)).arrayBuffer();
    times.push(performance.now() - began);
  }
  return median(times);
}

interface InspectRun {
  ms: number;
  groupMs: number;
  apiMs: number;
  chain: number;
  apiChain: number;
  groupChain: number;
  bytes: number;
  requests: number;
  api: number;
}

/**
 * `inspect` of a 4-shard model on the fixture Hub, every hub and CDN answer held back 20 ms, against
 * the same model unpaced, runs alternating so both meet the same load. One round trip is what one
 * small request to the paced hub takes, measured in this run. The shard group (index and headers)
 * is timed from the servers' logs: from the first resolve request arriving to the last header read
 * answered; what the latency added to it, in round trips, is checked, and so is the number of requests the
group makes one after another (a figure the machine's load cannot blur).
 */
export const inspectCase: BenchCase = {
  id: 'inspect',
  title: `inspect of a ${SHARDS}-shard safetensors model on the fixture Hub at ${LATENCY_MS} ms latency: round trips and bytes moved`,
  unavailable: (ctx) => missingCommands(ctx, 'inspect'),
  async run(ctx, report) {
    const shardBytes = (ctx.quick ? 16 : 64) * MiB;
    const shardNames = Array.from({ length: SHARDS }, (_, i) => `model-0000${i + 1}-of-0000${SHARDS}.safetensors`);
    const shards = shardNames.map((path, i) => ({ path, ...shardSafetensors(i, TENSORS_PER_SHARD, shardBytes) }));
    const weightMap = Object.fromEntries(shards.flatMap((shard) => shard.names.map((name) => [name, shard.path])));
    const files = [
      ...shards.map((shard) => ({ path: shard.path, content: shard.content, lfs: true })),
      { path: 'model.safetensors.index.json', content: JSON.stringify({ metadata: { total_size: SHARDS * shardBytes }, weight_map: weightMap }) },
      { path: 'config.json', content: '{"torch_dtype":"float32"}' },
    ];
    const modelBytes = files.reduce((n, f) => n + Buffer.byteLength(f.content), 0);
    const headerBytes = Number(shards[0]!.content.readBigUInt64LE(0));
    const hubs: FixtureHub[] = [await startPacedHub('bench/sharded', files, {}), await startPacedHub('bench/sharded', files, { latencyMs: LATENCY_MS })];
    const runs: [InspectRun[], InspectRun[]] = [[], []];
    let rtt: number[];
    try {
      rtt = await Promise.all(hubs.map((hub) => measureRoundTrip(`${hub.endpoint}/bench/sharded/resolve/main/config.json`)));
      for (let i = 0; i < RUNS; i++) {
        for (const which of i % 2 ? [1, 0] : [0, 1]) {
          const hub = hubs[which]!;
          hub.resetLogs();
          const run = assertOk('modelfetch inspect', await ctx.cli.run(['inspect', 'bench/sharded', '--json', '--cache-dir', join(ctx.work, 'inspect-empty-cache'), '--endpoint', hub.endpoint], { env: { ...process.env, HF_HUB_OFFLINE: '' } }));
          const parsed = lastJson(run.stdout);
          if (!parsed || (parsed.files as unknown[]).length !== SHARDS) throw new Error(`inspect did not report ${SHARDS} shards: ${run.stdout.slice(0, 300)}`);
          const log = hub.requests();
          const group = log.filter((r) => !isApi(r));
          runs[which]!.push({ ms: run.ms, groupMs: span(group), apiMs: span(log.filter(isApi)), chain: chainLength(log), apiChain: chainLength(log.filter(isApi)), groupChain: chainLength(group), bytes: log.reduce((n, r) => n + r.bodyBytes, 0), requests: log.length, api: log.filter(isApi).length });
        }
      }
    } finally {
      await Promise.all(hubs.map((hub) => hub.close()));
    }
    const [fast, paced] = runs;
    const roundTrip = rtt[1]!;
    const inRoundTrips = (ms: number): number => Math.round((ms / roundTrip) * 10) / 10;
    // Each paced run minus the unpaced run beside it: what is left is what the latency added, not this machine's work (parsing, connections).
    const added = inRoundTrips(median(paced.map((run, i) => run.groupMs - fast[i]!.groupMs)));
    const last = paced.at(-1)!;
    const groupChain = median(paced.map((r) => r.groupChain));
    report.notes.push(
      `${SHARDS} shards of ${shardBytes / MiB} MiB, ${TENSORS_PER_SHARD} tensors each (headers of ${headerBytes} bytes), + index + config; ${RUNS} runs at each latency, alternating`,
      `latency: the hub and the CDN hold every answer ${LATENCY_MS} ms before its first byte, a redirect included (it is a second request, so a second round trip); connection set-up on loopback is not delayed, so on a real link new connections would add their handshakes`,
      `one round trip = a small GET to the paced hub over an open connection, measured in this run (median of 15): ${roundTrip.toFixed(1)} ms (${rtt[0]!.toFixed(1)} ms unpaced)`,
      `shard group = from the first resolve request arriving at the hub to the last header read answered (servers' clocks); API calls = the revision and tree listing requests, likewise; medians; sequential requests = the longest chain of requests each sent after the one before was answered`,
    );
    report.measurements.push({ label: 'one round trip, measured', value: Math.round(roundTrip * 10) / 10, unit: 'ms' });
    report.measurements.push({ label: 'inspect at 0 ms latency, whole process (median)', value: Math.round(median(fast.map((r) => r.ms))), unit: 'ms' });
    report.measurements.push({ label: `inspect at ${LATENCY_MS} ms latency, whole process (median)`, value: Math.round(median(paced.map((r) => r.ms))), unit: 'ms' });
    report.measurements.push({ label: `API calls (${last.api}): wall time in round trips`, value: inRoundTrips(median(paced.map((r) => r.apiMs))), unit: 'count' });
    report.measurements.push({ label: 'shard group (index + headers) at 0 ms latency', value: Math.round(median(fast.map((r) => r.groupMs))), unit: 'ms' });
    report.measurements.push({ label: `shard group at ${LATENCY_MS} ms latency`, value: Math.round(median(paced.map((r) => r.groupMs))), unit: 'ms' });
    report.measurements.push({ label: 'shard group: wall time in round trips, as measured', value: inRoundTrips(median(paced.map((r) => r.groupMs))), unit: 'count' });
    report.measurements.push({ label: 'shard group: round trips the latency added', value: added, unit: 'count' });
    report.measurements.push({ label: 'sequential requests: all', value: median(paced.map((r) => r.chain)), unit: 'count' });
    report.measurements.push({ label: 'sequential requests: API calls', value: median(paced.map((r) => r.apiChain)), unit: 'count' });
    report.measurements.push({ label: 'sequential requests: shard group', value: groupChain, unit: 'count' });
    report.measurements.push({ label: 'requests', value: last.requests, unit: 'count' });
    report.measurements.push({ label: 'bytes moved', value: last.bytes, unit: 'bytes' });
    // Both: the wall time is what a user waits, but on a loaded machine its CPU part swamps 20 ms; the chain of requests does not move with the load.
    report.checks.push(limitCheck('round trips of wall time the latency added to the shard group', added, 'count', '≤', 3));
    report.checks.push(limitCheck('sequential requests in the shard group', groupChain, 'count', '≤', 3));
    report.checks.push(ratioCheck('bytes moved / model bytes (%)', Math.round((last.bytes / modelBytes) * 10000) / 100, '<', 1));
  },
};
