import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { limitCheck, missingCommands, type BenchCase } from '../lib/bench-case.js';
import { startPacedHub } from '../lib/hub.js';
import { assertOk, median, nodeStartFloorMs } from '../lib/proc.js';

const RUNS = 7;

/** Case 10: `sync` of a 20-file lockfile whose files are all present: whole-process time, and no request. */
export const syncCase: BenchCase = {
  id: 'sync',
  title: 'sync of a 20-file lockfile whose files are all present (whole process)',
  unavailable: (ctx) => missingCommands(ctx, 'lock', 'sync'),
  async run(ctx, report) {
    const files = Array.from({ length: 20 }, (_, i) => ({ path: i < 16 ? `conf/part-${i}.json` : `weights-${i}.bin`, size: i < 16 ? 1_500 + i * 300 : 3 * 1024 * 1024 }));
    const hub = await startPacedHub('bench/synced', files, {});
    try {
      const dir = join(ctx.work, 'sync');
      const manifest = join(ctx.work, 'sync-modelfetch.yaml');
      const lock = join(ctx.work, 'sync-modelfetch.lock.json');
      const cacheDir = join(dir, 'hub');
      await writeFile(manifest, 'version: 1\nmodels:\n  - repo: bench/synced\n');
      const env = { ...process.env, HF_HUB_OFFLINE: '' };
      assertOk('modelfetch lock', await ctx.cli.run(['lock', '--manifest', manifest, '--out', lock, '--endpoint', hub.endpoint], { env }));
      const sync = ['sync', '--lock', lock, '--manifest', manifest, '--endpoint', hub.endpoint, '--cache-dir', cacheDir];
      assertOk('modelfetch sync (filling)', await ctx.cli.run(sync, { env }));
      hub.resetLogs();
      const times: number[] = [];
      for (let i = 0; i < RUNS; i++) times.push(assertOk('modelfetch sync', await ctx.cli.run(sync, { env })).ms);
      const requests = hub.requests().length;
      report.notes.push(`median of ${RUNS} runs; all 20 files present and stamped`);
      report.measurements.push({ label: 'sync (all present)', value: median(times), unit: 'ms' });
      report.measurements.push({ label: 'requests during those runs', value: requests, unit: 'count' });
      report.measurements.push({ label: 'node -e 0 (process start floor)', value: await nodeStartFloorMs(RUNS), unit: 'ms' });
      report.checks.push(limitCheck('sync whole-process time', median(times), 'ms', '<', 300));
    } finally {
      await hub.close();
    }
  },
};
