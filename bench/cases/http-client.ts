import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MiB, ratioCheck, seconds, type BenchCase, type BenchContext } from '../lib/bench-case.js';
import { assertOk, median, runMeasured } from '../lib/proc.js';

/**
 * Is the hand-written plain-http client (src/transfer/fast-http.ts) worth keeping? The same files,
 * over the same plain http, through the engine with `fastHttp: true` and with `fastHttp: false`
 * (undici, the client https always uses), at a few sizes and connection counts: wall time, CPU
 * time and peak RSS of a child that only runs `transferFile` from dist/, verified by SHA-256.
 */

interface ChildResult {
  ms: number;
  cpuMs: number;
  sha256: string;
}

/**
 * The child: one verified transfer; prints its own time and CPU so node's start-up is not billed.
 * A file, not `node -e`: `--input-type` would be inherited by the engine's hash worker.
 */
const CHILD = `
const [module, url, tempPath, size, sha256, connections, fast] = process.argv.slice(2);
const { transferFile } = await import(module);
const began = performance.now();
const cpu = process.cpuUsage();
const result = await transferFile(
  { urls: [url], tempPath, identity: 'bench:' + sha256, size: Number(size), digest: { algorithm: 'sha256', hex: sha256 } },
  { connections: Number(connections), fastHttp: fast === 'fast' },
);
const used = process.cpuUsage(cpu);
process.stdout.write(JSON.stringify({ ms: performance.now() - began, cpuMs: (used.user + used.system) / 1000, sha256: result.digest.hex }));
`;

async function transferOnce(ctx: BenchContext, url: string, file: { size: number; sha256: string }, connections: number, client: 'fast' | 'undici'): Promise<ChildResult & { rss: number }> {
  const tempPath = join(ctx.work, `http-client-${client}.part`);
  const module = join(ctx.root, 'dist/transfer/index.js');
  const script = join(ctx.work, 'http-client-child.mjs');
  await writeFile(script, CHILD);
  const run = assertOk(`transfer via ${client}`, await runMeasured(process.execPath, [script, module, url, tempPath, String(file.size), file.sha256, String(connections), client]));
  await rm(tempPath, { force: true });
  const result = JSON.parse(run.stdout) as ChildResult;
  if (result.sha256 !== file.sha256) throw new Error(`the ${client} client delivered other bytes than were served`);
  return { ...result, rss: run.peakRssBytes ?? 0 };
}

export const httpClientCase: BenchCase = {
  id: 'http-client',
  title: 'Plain-http client: the engine through fast-http vs through undici (same files, same server)',
  unavailable: () => undefined,
  async run(ctx, report) {
    const sizes = ctx.quick ? [64 * MiB] : [64 * MiB, 512 * MiB];
    const connectionCounts = ctx.quick ? [4] : [1, 8];
    const runs = 3;
    const server = await ctx.reference();
    report.notes.push(`${server.kind} on loopback, median of ${runs} runs each; time and CPU measured inside the child around transferFile (verified, fsynced)`);
    const ratios: number[] = [];
    for (const size of sizes) {
      const name = `http-client-${size / MiB}.bin`;
      const file = await ctx.dataFile(name, size);
      const url = server.url(name, false);
      for (const connections of connectionCounts) {
        const samples = { fast: [] as Array<ChildResult & { rss: number }>, undici: [] as Array<ChildResult & { rss: number }> };
        for (let i = 0; i < runs; i++) {
          // Alternate so that a busy moment on the machine lands on both.
          for (const client of i % 2 === 0 ? (['fast', 'undici'] as const) : (['undici', 'fast'] as const)) {
            samples[client].push(await transferOnce(ctx, url, file, connections, client));
          }
        }
        const flags = `${size / MiB} MiB, connections ${connections}`;
        const stat = (client: 'fast' | 'undici') => ({
          ms: median(samples[client].map((s) => s.ms)),
          cpu: median(samples[client].map((s) => s.cpuMs)),
          rss: median(samples[client].map((s) => s.rss)),
        });
        const fast = stat('fast');
        const undici = stat('undici');
        ratios.push(undici.ms / fast.ms);
        report.measurements.push({ label: `${flags}: fast-http time`, value: seconds(fast.ms), unit: 's' });
        report.measurements.push({ label: `${flags}: undici time`, value: seconds(undici.ms), unit: 's' });
        report.measurements.push({ label: `${flags}: fast-http CPU`, value: seconds(fast.cpu), unit: 's' });
        report.measurements.push({ label: `${flags}: undici CPU`, value: seconds(undici.cpu), unit: 's' });
        report.measurements.push({ label: `${flags}: fast-http peak RSS`, value: fast.rss / 1e6, unit: 'MB' });
        report.measurements.push({ label: `${flags}: undici peak RSS`, value: undici.rss / 1e6, unit: 'MB' });
        report.notes.push(`${flags}: undici takes ${(undici.ms / fast.ms).toFixed(2)}x fast-http's time and ${(undici.cpu / fast.cpu).toFixed(2)}x its CPU`);
      }
    }
    // Informational: the decision to keep fast-http asks for ≥ 15 % less time (or clearly less CPU/RSS).
    report.checks.push(ratioCheck('undici time / fast-http time (median over sizes and connections)', median(ratios), '≥', 1.15));
  },
};
