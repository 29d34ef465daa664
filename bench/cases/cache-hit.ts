import { join } from 'node:path';
import { limitCheck, missingCommands, type BenchCase } from '../lib/bench-case.js';
import { modelfetchPull, startPacedHub } from '../lib/hub.js';
import { median, nodeStartFloorMs } from '../lib/proc.js';

const RUNS = 7;

/** Case 6: `pull` of a snapshot that is already complete: whole-process time, and no request offline. */
export const cacheHitCase: BenchCase = {
  id: 'cache-hit',
  title: 'Cache hit: pull of a complete 20-file snapshot (whole process), and --offline making no request',
  unavailable: (ctx) => missingCommands(ctx, 'pull'),
  async run(ctx, report) {
    const files = Array.from({ length: 20 }, (_, i) => ({ path: i < 17 ? `configs/file-${i}.json` : `model-${i}.safetensors`, size: i < 17 ? 2_000 + i * 500 : 2 * 1024 * 1024 }));
    const hub = await startPacedHub('bench/cached', files, {});
    try {
      const cacheDir = join(ctx.work, 'c-hit');
      await modelfetchPull(ctx, hub, 'bench/cached', cacheDir);
      const online: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        const { run, result } = await modelfetchPull(ctx, hub, 'bench/cached', cacheDir);
        if (result.cacheHits !== 20) throw new Error(`expected 20 cache hits, got ${String(result.cacheHits)}`);
        online.push(run.ms);
      }
      hub.resetLogs();
      const offline: number[] = [];
      for (let i = 0; i < RUNS; i++) offline.push((await modelfetchPull(ctx, hub, 'bench/cached', cacheDir, ['--offline'])).run.ms);
      const requests = hub.requests().length;
      report.notes.push(`median of ${RUNS} runs each; the online pull asks the hub which commit main is`);
      report.measurements.push({ label: 'pull (complete, online)', value: median(online), unit: 'ms' });
      report.measurements.push({ label: 'pull --offline', value: median(offline), unit: 'ms' });
      report.measurements.push({ label: 'requests during --offline runs', value: requests, unit: 'count' });
      report.measurements.push({ label: 'node -e 0 (process start floor)', value: await nodeStartFloorMs(RUNS), unit: 'ms' });
      report.checks.push(limitCheck('pull whole-process time', median(online), 'ms', '<', 300));
      report.checks.push(limitCheck('requests under --offline', requests, 'count', '≤', 0));
    } finally {
      await hub.close();
    }
  },
};
