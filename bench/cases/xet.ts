import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeChunkHeader } from '../../src/transfer/xet/chunk-codec.js';
import { startFixtureCas, type FixtureCas } from '../../test/support/fixture-cas.js';
import { startFixtureHub } from '../../test/support/fixture-hub.js';
import { GiB, limitCheck, MiB, missingCommands, ratioCheck, seconds, type BenchCase, type BenchContext } from '../lib/bench-case.js';
import { lastJson } from '../lib/modelfetch-cli.js';
import { assertOk, readBytesRead, type RunOptions, type RunResult } from '../lib/proc.js';

/**
 * Case xet: Xet downloads against the fixture CAS on loopback (both unthrottled).
 * - throughput: a Xet file pulled through Xet vs the same file through the bridge (`--no-xet`: the
 *   Hub's redirect to the CDN, plain HTTP) — the reference is modelfetch's own plain path;
 * - dedup: revision B differs from A in 3 % of its bytes, spread through the file (96 edits of 160 KiB
 *   at full size; --quick keeps the edits' length and spacing, so 12 edits in its 64 MiB); xorb bytes
 *   the CAS sends for B after A is cached vs B's size (the plain path sends 100 %), beside the floor
 *   no client can go under: the bytes of B's chunks that A does not have;
 * - resume: kill -9 at about half of the Xet download, run again; xorb bytes over both runs vs the
 *   xorb bytes a clean download needs;
 * - peak RSS of the Xet pulls (VmHWM).
 * Each pull starts with an empty hub cache (and so an empty chunk cache) unless said otherwise.
 *
 * The fixture (random content, and the CAS's xorbs built from it: minutes and gigabytes at full size)
 * is kept under `.bench/xet-fixture/{parameters}/` and reused by the next run with the same parameters.
 */

function editedCopy(a: Buffer, fraction: number, edits: number): Buffer {
  const b = Buffer.from(a);
  const length = Math.floor((a.length * fraction) / edits);
  for (let i = 0; i < edits; i++) {
    const at = Math.floor(((i + 0.5) * a.length) / edits);
    randomBytes(length).copy(b, at);
  }
  return b;
}

/** Decoded bytes of the chunks file `b` uses that file `a` does not (what any client must fetch for b after a). */
function newChunkBytes(cas: FixtureCas, a: string | undefined, b: string | undefined): number {
  const chunksOf = (hash: string | undefined): Array<[string, number]> =>
    (cas.files.get(hash ?? '')?.terms ?? []).flatMap((t) => Array.from({ length: t.chunkEnd - t.chunkStart }, (_, i): [string, number] => [t.xorbHash, t.chunkStart + i]));
  const inA = new Set(chunksOf(a).map(([xorb, index]) => `${xorb}/${index}`));
  let bytes = 0;
  for (const [xorb, index] of new Map(chunksOf(b).map(([x, i]) => [`${x}/${i}`, [x, i] as const])).values()) {
    if (inA.has(`${xorb}/${index}`)) continue;
    const stored = cas.xorbs.get(xorb);
    if (stored) bytes += decodeChunkHeader(stored.data, stored.chunkOffsets[index] as number).uncompressedLength;
  }
  return bytes;
}

/** Writes `make()` to `path` unless a previous run did (written under a temporary name, then renamed). */
async function keptFile(path: string, make: () => Buffer | Promise<Buffer>): Promise<string> {
  if (!(await stat(path).then((s) => s.isFile(), () => false))) {
    await writeFile(`${path}.tmp`, await make());
    await rename(`${path}.tmp`, path);
  }
  return path;
}

/** The case's content (kept across runs) and the folder the fixture CAS keeps its xorbs in. */
async function keptFixture(ctx: BenchContext, big: number, dedupSize: number, edits: number): Promise<{ store: string; big: string; a: string; b: string }> {
  const dir = join(ctx.root, '.bench', 'xet-fixture', `big${big}-dedup${dedupSize}-edits${edits}-3pct-v1`);
  await mkdir(dir, { recursive: true });
  const a = await keptFile(join(dir, 'a.bin'), () => randomBytes(dedupSize));
  return {
    store: join(dir, 'cas'),
    big: await keptFile(join(dir, 'big.bin'), () => randomBytes(big)),
    a,
    b: await keptFile(join(dir, 'b.bin'), async () => editedCopy(await readFile(a), 0.03, edits)),
  };
}

async function pullRun(ctx: BenchContext, endpoint: string, repo: string, cacheDir: string, extra: string[], options: RunOptions = {}): Promise<RunResult> {
  const args = ['pull', repo, '--cache-dir', cacheDir, '--endpoint', endpoint, '--json', ...extra];
  return ctx.cli.run(args, { env: { ...process.env, HF_HUB_OFFLINE: '', HF_HUB_DISABLE_XET: '' }, ...options });
}

export const xetCase: BenchCase = {
  id: 'xet',
  title: 'Xet: throughput vs the bridge (plain) path, dedup of a 3 %-changed revision, resume after kill -9, peak RSS',
  unavailable: (ctx) => missingCommands(ctx, 'pull') ?? (ctx.cli.help('pull').includes('--no-xet') ? undefined : 'pull has no Xet support (--no-xet)'),
  async run(ctx, report) {
    const big = ctx.quick ? 128 * MiB : 1 * GiB;
    const dedupSize = ctx.quick ? 64 * MiB : 512 * MiB;
    // Each edit invalidates the ~64 KiB chunks it touches and their neighbours; shrinking the edits
    // with the file would measure the chunk size, not the client (96 edits of 20 KiB in 64 MiB leave 19 % new chunks).
    const edits = Math.max(1, Math.round((96 * dedupSize) / (512 * MiB)));
    const fixtureStarted = Date.now();
    const kept = await keptFixture(ctx, big, dedupSize, edits);
    const cas = await startFixtureCas({ store: kept.store });
    const hub = await startFixtureHub({
      cas,
      repos: [
        { repoId: 'bench/xet-big', files: [{ path: 'model.safetensors', fromFile: kept.big, xet: true }] },
        { repoId: 'bench/xet-dedup', branches: { main: [{ path: 'model.safetensors', fromFile: kept.a, xet: true }], b: [{ path: 'model.safetensors', fromFile: kept.b, xet: true }] } },
      ],
    });
    ctx.log(`xet fixture ready in ${seconds(Date.now() - fixtureStarted)} s (kept under ${kept.store})`);
    try {
      const cdnBytes = (): number => hub.cdn.requests.reduce((sum, r) => sum + r.bodyBytes, 0);
      report.notes.push(`fixture CAS and Hub on loopback, unthrottled; ${big / MiB} MiB random file; dedup file ${dedupSize / MiB} MiB, B = A with ${edits} random edits totalling 3 %; reference for throughput: the same CLI with --no-xet (Hub redirect to the CDN, plain HTTP)`);

      // Throughput: Xet vs the bridge, each into an empty cache.
      const plain = assertOk('pull --no-xet', await pullRun(ctx, hub.endpoint, 'bench/xet-big', join(ctx.work, 'x-plain'), ['--no-xet']));
      cas.server.resetLog();
      const xet = assertOk('pull (xet)', await pullRun(ctx, hub.endpoint, 'bench/xet-big', join(ctx.work, 'x-xet'), []));
      const xetJson = lastJson(xet.stdout) ?? {};
      const needed = cas.xorbBytesServed();
      const bySource = xetJson.bytesBySource as { xet?: number } | undefined;
      if (!bySource?.xet) throw new Error(`the Xet pull fetched nothing through Xet: ${xet.stdout.slice(0, 300)}`);
      report.measurements.push({ label: 'pull through the bridge (--no-xet)', value: seconds(plain.ms), unit: 's' });
      report.measurements.push({ label: 'pull through Xet', value: seconds(xet.ms), unit: 's' });
      report.measurements.push({ label: 'xorb bytes for the file', value: needed / 1e6, unit: 'MB' });
      report.checks.push(ratioCheck('Xet time vs bridge time', xet.ms / plain.ms, '≤', 1.1));

      // Resume: kill -9 at about half of the xorb bytes, then run again into the same cache.
      cas.server.resetLog();
      const resumeCache = join(ctx.work, 'x-resume');
      let readAtKill = 0;
      const killed = await pullRun(ctx, hub.endpoint, 'bench/xet-big', resumeCache, [], {
        killWhen: async (pid) => {
          readAtKill = (await readBytesRead(pid)) ?? 0;
          return readAtKill >= needed / 2;
        },
      });
      if (killed.signal !== 'SIGKILL') throw new Error(`the Xet pull ended (${killed.code}) before it could be killed at 50%`);
      const resumed = assertOk('pull (xet, resumed)', await pullRun(ctx, hub.endpoint, 'bench/xet-big', resumeCache, []));
      const resumedBytes = cas.xorbBytesServed();
      report.measurements.push({ label: 'xorb bytes over both runs (kill -9 at ~50 %)', value: resumedBytes / 1e6, unit: 'MB' });
      report.checks.push(ratioCheck('xorb bytes over both runs / xorb bytes needed', resumedBytes / needed, '≤', 1.1));

      // Dedup: A, then B into the same cache; B through the plain path for comparison.
      const dedupCache = join(ctx.work, 'x-dedup');
      const pullA = assertOk('pull A', await pullRun(ctx, hub.endpoint, 'bench/xet-dedup', dedupCache, []));
      cas.server.resetLog();
      const pullB = assertOk('pull B', await pullRun(ctx, hub.endpoint, 'bench/xet-dedup@b', dedupCache, []));
      const bBytes = cas.xorbBytesServed();
      const bJson = lastJson(pullB.stdout) ?? {};
      hub.resetLogs();
      assertOk('pull B --no-xet', await pullRun(ctx, hub.endpoint, 'bench/xet-dedup@b', join(ctx.work, 'x-dedup-plain'), ['--no-xet']));
      const bPlain = cdnBytes();
      report.measurements.push({ label: 'B after A: xorb bytes', value: bBytes / 1e6, unit: 'MB' });
      report.measurements.push({ label: "B after A: bytes of B's chunks that A lacks (the floor)", value: newChunkBytes(cas, hub.file('bench/xet-dedup', 'model.safetensors', 'main').xetHash, hub.file('bench/xet-dedup', 'model.safetensors', 'b').xetHash) / 1e6, unit: 'MB' });
      if (typeof bJson.bytesDeduplicated === 'number') report.measurements.push({ label: 'B after A: bytesDeduplicated', value: bJson.bytesDeduplicated / 1e6, unit: 'MB' });
      report.measurements.push({ label: 'B through the plain path: bytes', value: bPlain / 1e6, unit: 'MB' });
      report.checks.push(ratioCheck('B after A: xorb bytes / file size', bBytes / dedupSize, '≤', 0.1));

      const rss = Math.max(...[xet, resumed, pullA, pullB].map((r) => r.peakRssBytes ?? 0)) / 1e6;
      if (rss > 0) {
        report.measurements.push({ label: 'modelfetch peak RSS (Xet pulls)', value: rss, unit: 'MB' });
        report.checks.push(limitCheck('peak RSS of the Xet pulls', rss, 'MB', '≤', 200));
      }
    } finally {
      await hub.close();
      await cas.close();
    }
  },
};
