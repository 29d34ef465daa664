import { join } from 'node:path';
import { fakeCommit } from '../../test/support/cache-builder.js';
import { GiB, MiB, missingCommands, ratioCheck, seconds, type BenchCase } from '../lib/bench-case.js';
import { buildLargeCachedRepo } from '../lib/large-cache.js';
import { assertOk, runMeasured } from '../lib/proc.js';
import { startServe } from '../lib/serve-process.js';
import { startPlainNodeServer } from '../lib/plain-node-server.js';

const CLIENTS = 8;

/** Wall time for `CLIENTS` curls fetching `url` at once, each checked for the full size. */
async function fetchConcurrently(url: string, size: number): Promise<number> {
  const began = process.hrtime.bigint();
  const runs = await Promise.all(
    Array.from({ length: CLIENTS }, () => runMeasured('curl', ['-s', '-f', '-o', '/dev/null', '-w', '%{size_download}', url])),
  );
  const ms = Number(process.hrtime.bigint() - began) / 1e6;
  for (const run of runs) {
    assertOk(`curl ${url}`, run);
    if (Number(run.stdout) !== size) throw new Error(`a client got ${run.stdout} bytes from ${url}, expected ${size}`);
  }
  return ms;
}

/** Case 7: a cached 2 GiB blob to 8 concurrent clients: `modelfetch serve` vs nginx over the same file. */
export const servingCase: BenchCase = {
  id: 'serving',
  title: `Serving a cached blob to ${CLIENTS} concurrent clients: modelfetch serve vs nginx, same file, same disk`,
  unavailable: (ctx) => missingCommands(ctx, 'serve') ?? (ctx.tools.has('nginx') && ctx.tools.has('curl') ? undefined : 'nginx or curl not installed'),
  async run(ctx, report) {
    const size = ctx.quick ? 256 * MiB : 2 * GiB;
    const server = await ctx.reference();
    const cacheDir = join(ctx.work, 'data', 'serve-cache');
    const commit = fakeCommit('serving');
    ctx.log(`building a cache with one ${size / MiB} MiB file`);
    const { repo, blobs } = await buildLargeCachedRepo(cacheDir, 'bench/serving', commit, [{ path: 'model.safetensors', size }]);
    const blob = blobs[0]!;
    const serve = await startServe(ctx.cli, cacheDir);
    const plainNode = await startPlainNodeServer(join(cacheDir, repo.folder, 'blobs', blob.sha256));
    try {
      const viaServe = `${serve.origin}/bench/serving/resolve/main/model.safetensors`;
      const viaNginx = server.url(`serve-cache/${repo.folder}/blobs/${blob.sha256}`, false);
      // Warm both once (page cache, connection setup) so the timed runs compare serving, not disk.
      await fetchConcurrently(viaNginx, size);
      const nginxMs = await fetchConcurrently(viaNginx, size);
      const serveMs = await fetchConcurrently(viaServe, size);
      const plainMs = await fetchConcurrently(plainNode.url, size);
      const plainRate = (CLIENTS * size) / 1e6 / (plainMs / 1000);
      const nginxRate = (CLIENTS * size) / 1e6 / (nginxMs / 1000);
      const serveRate = (CLIENTS * size) / 1e6 / (serveMs / 1000);
      report.notes.push(`${size / MiB} MiB blob, ${CLIENTS} concurrent curl clients to /dev/null`);
      report.measurements.push({ label: 'nginx (sendfile)', value: seconds(nginxMs), unit: 's' });
      report.measurements.push({ label: 'nginx aggregate', value: nginxRate, unit: 'MB/s' });
      report.measurements.push({ label: 'modelfetch serve', value: seconds(serveMs), unit: 's' });
      report.measurements.push({ label: 'modelfetch serve aggregate', value: serveRate, unit: 'MB/s' });
      report.measurements.push({ label: 'plain Node server (read stream piped to the response)', value: plainRate, unit: 'MB/s' });
      report.notes.push(`a plain Node server over the same file reaches ${(plainRate / nginxRate).toFixed(2)}x nginx: Node has no sendfile, so every byte is copied into user space and out again; modelfetch serve reaches ${(serveRate / plainRate).toFixed(2)}x that plain server`);
      report.checks.push(ratioCheck('aggregate throughput vs nginx', serveRate / nginxRate, '≥', 0.9));
    } finally {
      await plainNode.close();
      await serve.close();
    }
  },
};
