import { execFileSync, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateFile } from '../test/support/fixture-server.js';
import { allCases } from './cases/index.js';
import { FeatureMissing, MiB, type BenchContext, type CaseOutcome, type CaseReport } from './lib/bench-case.js';
import { ModelfetchCli } from './lib/modelfetch-cli.js';
import { startFixtureReference, startNginx, type ReferenceServer } from './lib/reference-server.js';
import { renderMarkdown, renderReport } from './lib/report.js';
import { hasTool } from '../test/support/tools.js';

/**
 * `npm run bench [-- --only throttled,resume] [-- --quick] [-- --keep]`: measures the built CLI against
 * reference tools on loopback in one run, prints a table of times, ratios and PASS/FAIL per target,
 * and writes `.bench/results.json`. Env: BENCH_ONLY, BENCH_QUICK=1, BENCH_TMPDIR, BENCH_NO_INSTALL=1 (never apt-get).
 */

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function parseArgs(argv: string[]): { only?: Set<string>; quick: boolean; keep: boolean } {
  let only = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',').filter(Boolean)) : undefined;
  let quick = process.env.BENCH_QUICK === '1';
  let keep = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--quick') quick = true;
    else if (arg === '--keep') keep = true;
    else if (arg === '--only') only = new Set((argv[++i] ?? '').split(',').filter(Boolean));
    else if (arg.startsWith('--only=')) only = new Set(arg.slice(7).split(',').filter(Boolean));
    else if (arg === '--help' || arg === '-h') {
      process.stdout.write(`usage: npm run bench -- [--quick] [--only ${allCases.map((c) => c.id).join(',')}] [--keep]\n`);
      process.exit(0);
    } else throw new Error(`unknown option ${arg} (try --help)`);
  }
  if (only) {
    const unknown = [...only].filter((id) => !allCases.some((c) => c.id === id));
    if (unknown.length) throw new Error(`unknown case ${unknown.join(', ')}; cases: ${allCases.map((c) => c.id).join(', ')}`);
  }
  return { ...(only && { only }), quick, keep };
}

function ensureTools(): Set<string> {
  const wanted = ['aria2c', 'nginx'];
  if (process.env.BENCH_NO_INSTALL !== '1' && wanted.some((t) => !hasTool(t))) {
    // As root this apt-installs them; otherwise it says what is missing and those comparisons skip.
    spawnSync('bash', [join(root, 'scripts/install-system-deps.sh'), ...wanted], { stdio: 'inherit' });
  }
  return new Set(['curl', 'aria2c', 'nginx', 'openssl', 'sha256sum'].filter(hasTool));
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  // Other work on the machine skews every figure: say how busy it was.
  const loadAtStart = loadavg().map((n) => n.toFixed(1)).join(' ');
  const tools = ensureTools();
  const work = await mkdtemp(join(process.env.BENCH_TMPDIR ?? tmpdir(), 'modelfetch-bench-'));
  const dataDir = join(work, 'data');
  await mkdir(dataDir, { recursive: true });
  const throttleRate = 20 * MiB;
  let server: Promise<ReferenceServer> | undefined;
  const generated = new Map<string, Promise<{ path: string; size: number; sha256: string }>>();
  const ctx: BenchContext = {
    root,
    work,
    quick: args.quick,
    cli: new ModelfetchCli(root),
    tools,
    throttleRate,
    outcomes: new Map(),
    log: (message) => process.stderr.write(`  · ${message}\n`),
    reference: () =>
      (server ??= tools.has('nginx')
        ? startNginx(dataDir, join(work, 'nginx'), throttleRate)
        : startFixtureReference(throttleRate)),
    dataFile: (name, size) => {
      let file = generated.get(name);
      if (!file) {
        file = (async () => {
          const path = join(dataDir, name);
          ctx.log(`generating ${name} (${(size / MiB).toFixed(0)} MiB)`);
          const info = await generateFile(path, size);
          (await ctx.reference()).add({ name, path, size, sha256: info.sha256 });
          return { path, size, sha256: info.sha256 };
        })();
        generated.set(name, file);
      }
      return file;
    },
  };

  // Writeback and page cache left by earlier cases (gigabytes of written files) must not be billed
  // to the next: sync, and as root drop the page cache, so every case starts from the same state.
  const dropsCaches = process.getuid?.() === 0;
  const settleMemory = (): void => {
    spawnSync('sync', [], { stdio: 'ignore' });
    if (dropsCaches) spawnSync('sh', ['-c', 'echo 3 > /proc/sys/vm/drop_caches'], { stdio: 'ignore' });
  };

  const began = Date.now();
  const outcomes: CaseOutcome[] = [];
  try {
    for (const bench of allCases) {
      if (args.only && !args.only.has(bench.id)) continue;
      const t0 = Date.now();
      const reason = bench.unavailable(ctx);
      const outcome: CaseOutcome = { id: bench.id, title: bench.title, status: 'ran', notes: [], measurements: [], checks: [], seconds: 0 };
      if (reason) {
        outcome.status = 'skipped';
        outcome.reason = reason;
        process.stderr.write(`${bench.id}: skipped: ${reason}\n`);
      } else {
        process.stderr.write(`${bench.id}: ${bench.title}\n`);
        settleMemory();
        const report: CaseReport = outcome;
        try {
          await bench.run(ctx, report);
        } catch (error) {
          outcome.status = error instanceof FeatureMissing ? 'skipped' : 'failed';
          outcome.reason = error instanceof Error ? error.message : String(error);
          process.stderr.write(`${bench.id}: ${outcome.status}: ${outcome.reason}\n`);
        }
      }
      outcome.seconds = (Date.now() - t0) / 1000;
      outcomes.push(outcome);
      ctx.outcomes.set(bench.id, outcome);
    }
  } finally {
    await (await server?.catch(() => undefined))?.close();
    if (args.keep) process.stderr.write(`kept ${work}\n`);
    else await rm(work, { recursive: true, force: true });
  }

  const load = loadavg().map((n) => n.toFixed(1)).join(' ');
  const machine = `${cpus().length} cores, ${cpus()[0]?.model ?? 'unknown cpu'}, Node ${process.version}, loopback, disk synced${dropsCaches ? ' and page cache dropped' : ''} before each case, ${ctx.tools.has('nginx') ? 'nginx' : 'fixture server'} as reference server, load average at start ${loadAtStart}, at end ${load}`;
  const header = `modelfetch bench ${args.quick ? '(quick: sizes scaled down) ' : ''}— ${new Date().toISOString()} — ${machine}; total ${((Date.now() - began) / 1000).toFixed(0)} s`;
  process.stdout.write(`\n${renderReport(outcomes, header)}`);
  const resultsDir = join(root, '.bench');
  await mkdir(resultsDir, { recursive: true });
  const commit = (() => {
    try {
      return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return undefined;
    }
  })();
  await writeFile(
    join(resultsDir, 'results.json'),
    `${JSON.stringify({ date: new Date().toISOString(), commit, quick: args.quick, machine, tools: [...tools], cases: outcomes }, null, 2)}\n`,
  );
  await writeFile(join(resultsDir, 'results.md'), `${header}\n\n${renderMarkdown(outcomes)}`);
  process.stdout.write(`results: ${join(resultsDir, 'results.json')} and results.md\n`);
  if (outcomes.some((o) => o.status === 'failed')) process.exitCode = 1;
}

await main();
