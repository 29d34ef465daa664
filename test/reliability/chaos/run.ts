/**
 * Chaos run (`npm run test:chaos`): random kill -9 points during pulls of a multi-file repo, through
 * a proxy that injects random network faults, with an independent audit of the cache after every
 * kill. Fails (exit 1) when any promise breaks; prints its figures either way.
 *
 *   MODELFETCH_CHAOS_KILLS=200   number of kills (or --kills N)
 *   MODELFETCH_CHAOS_SEED=1      seed for the random choices (or --seed N)
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { auditCache, isClean, type CacheAudit } from '../../support/cache-audit.js';
import { startFaultProxy, type FaultProxy, type ToxicSpec } from '../../support/fault-proxy.js';
import { startChaosHub, type ChaosHub } from './hub.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

const { values } = parseArgs({ options: { kills: { type: 'string' }, seed: { type: 'string' }, verbose: { type: 'boolean' } } });
const KILLS = Number(values.kills ?? process.env.MODELFETCH_CHAOS_KILLS ?? 200);
let seed = Number(values.seed ?? process.env.MODELFETCH_CHAOS_SEED ?? Date.now() % 1_000_000);
const SEED = seed;

/** mulberry32: a seeded PRNG so a failing run can be replayed with --seed. */
function random(): number {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
const between = (lo: number, hi: number): number => Math.floor(lo + random() * (hi - lo));

/** The CLI as a child: the built dist when present (fast start), else the sources through tsx. */
function cliCommand(): string[] {
  const dist = join(ROOT, 'dist/cli/run.js');
  if (process.env.MODELFETCH_CHAOS_SOURCE !== '1' && existsSync(dist)) return [dist];
  return ['--import', 'tsx', join(ROOT, 'src/cli/run.ts')];
}

interface RunOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

function runPull(hub: ChaosHub, origin: string, cacheDir: string, killAfterMs?: number): Promise<RunOutcome> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [...cliCommand(), ...hub.pullArgs(cacheDir)], {
      cwd: ROOT,
      env: { ...process.env, ...hub.env(origin, cacheDir) },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
    const timer = killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      done({ code, signal, stderr });
    });
  });
}

function randomToxic(): ToxicSpec {
  const direction = random() < 0.85 ? 'downstream' : 'upstream';
  const toxicity = 0.2 + random() * 0.6;
  const toxics: Array<ToxicSpec['toxic']> = [
    { type: 'latency', latencyMs: between(1, 40), jitterMs: between(0, 20) },
    { type: 'bandwidth', bytesPerSec: between(2, 40) * 1024 * 1024 },
    { type: 'slicer', averageSize: between(64, 16_384), sizeVariation: between(0, 64), delayMs: between(0, 2) },
    { type: 'limit_data', bytes: between(1, 4) * 1024 * 1024 },
    { type: 'reset_peer', timeoutMs: between(0, 300) },
    { type: 'timeout', timeoutMs: between(0, 1500) },
  ];
  return { direction, toxicity, toxic: pick(toxics) };
}

function describeAudit(audit: CacheAudit): string {
  return JSON.stringify({ badBlobs: audit.badBlobs, danglingLinks: audit.danglingLinks, strayEntries: audit.strayEntries, nonFileBlobs: audit.nonFileBlobs });
}

async function main(): Promise<number> {
  const started = Date.now();
  const hub = await startChaosHub();
  const proxy: FaultProxy = await startFaultProxy({ port: hub.port });
  const cacheDir = await mkdtemp(join(tmpdir(), 'mf-chaos-'));
  const figures = { kills: 0, killsSurvived: 0, completedBeforeKill: 0, failedRuns: 0, serverFaults: 0, corruptAccepted: 0, auditFailures: 0, wipes: 0 };
  let neededBytes = hub.totalBytes; // bytes a perfect client would have fetched (one full pull per wipe)
  const exitCodes = new Map<string, number>();
  const problems: string[] = [];

  console.log(`chaos: until ${KILLS} kills, seed ${SEED}, repo of ${hub.files.length} files / ${(hub.totalBytes / 1048576).toFixed(1)} MiB, cache ${cacheDir}`);
  // Kill points fall within the time a pull takes: 100–2500 ms at first, then up to 1.5× the median
  // of the runs that completed, so kills keep landing in real work however fast pulls get.
  const completedMs: number[] = [];
  const killPoint = (): number => {
    if (completedMs.length < 3) return between(100, 2500);
    const sorted = [...completedMs].sort((a, b) => a - b);
    return between(50, Math.max(300, Math.round(1.5 * (sorted[Math.floor(sorted.length / 2)] ?? 0))));
  };
  // Runs until KILLS children were killed (some finish or fail before their kill point).
  for (let i = 0; figures.kills < KILLS && i < KILLS * 3; i++) {
    proxy.clearToxics();
    for (let n = between(0, 3); n > 0; n--) proxy.addToxic({ ...randomToxic(), name: `t${n}` });
    if (random() < 0.1) {
      hub.corruptOnce();
      figures.serverFaults += 1;
    }
    const ranAt = Date.now();
    const outcome = await runPull(hub, proxy.origin, cacheDir, killPoint());
    if (outcome.code === 0) completedMs.push(Date.now() - ranAt);
    proxy.resetAll();
    const key = outcome.signal ?? String(outcome.code);
    exitCodes.set(key, (exitCodes.get(key) ?? 0) + 1);
    if (outcome.signal === 'SIGKILL') figures.kills += 1;
    else if (outcome.code === 0) figures.completedBeforeKill += 1;
    else figures.failedRuns += 1;
    if (values.verbose && outcome.code !== 0 && outcome.signal === null) console.log(`  run ${i}: exit ${outcome.code}: ${outcome.stderr.trim().split('\n')[0]}`);

    const audit = await auditCache(cacheDir);
    if (!isClean(audit)) {
      figures.auditFailures += 1;
      figures.corruptAccepted += audit.badBlobs.length + audit.strayEntries.length;
      problems.push(`after run ${i}: ${describeAudit(audit)}`);
    } else if (outcome.signal === 'SIGKILL') {
      figures.killsSurvived += 1;
    }
    // A successful pull must have produced exactly the repo.
    if (outcome.code === 0) {
      const wrong = await hub.compareSnapshot(cacheDir);
      if (wrong.length > 0) {
        figures.corruptAccepted += wrong.length;
        problems.push(`run ${i} exited 0 but: ${wrong.join(', ')}`);
      }
    }
    // Keep work for the next child: once the repo is whole, drop some or all of it.
    if (outcome.code === 0 || random() < 0.05) {
      neededBytes += await hub.dropSome(cacheDir, random);
      figures.wipes += 1;
    }
    if ((i + 1) % 20 === 0) console.log(`  ${i + 1} runs, ${figures.kills}/${KILLS} kills, ${proxy.faultsInjected()} proxy faults, ${Math.round((Date.now() - started) / 1000)} s`);
  }

  // The final pull, with no faults, must complete and leave a clean, exact cache.
  proxy.clearToxics();
  const final = await runPull(hub, proxy.origin, cacheDir);
  const finalAudit = await auditCache(cacheDir);
  const finalWrong = await hub.compareSnapshot(cacheDir);
  const verify = await hub.verifyCommand(cacheDir, (args) => runCli(args, hub, proxy.origin, cacheDir));
  if (final.code !== 0) problems.push(`final pull exited ${final.code}: ${final.stderr.trim()}`);
  if (!isClean(finalAudit)) problems.push(`final audit: ${describeAudit(finalAudit)}`);
  if (finalWrong.length > 0) problems.push(`final snapshot: ${finalWrong.join(', ')}`);
  if (verify !== undefined && verify !== 0) problems.push(`modelfetch verify exited ${verify}`);
  figures.corruptAccepted += finalWrong.length + finalAudit.badBlobs.length;

  const served = hub.bodyBytesServed();
  const report = {
    seed: SEED,
    runs: figures.kills + figures.completedBeforeKill + figures.failedRuns,
    kills: figures.kills,
    killsSurvived: figures.killsSurvived,
    runsCompletedBeforeKill: figures.completedBeforeKill,
    runsFailedCleanly: figures.failedRuns,
    exitCodes: Object.fromEntries(exitCodes),
    proxyFaultsInjected: proxy.faultsInjected(),
    proxyFaultsByType: proxy.counters.applied,
    serverCorruptions: figures.serverFaults,
    bytesServed: served,
    bytesNeeded: neededBytes,
    bytesRefetched: Math.max(0, served - neededBytes),
    corruptFilesAccepted: figures.corruptAccepted,
    auditFailures: figures.auditFailures,
    verifyExit: verify ?? 'not available (own re-hash only)',
    finalPull: final.code === 0 ? 'ok' : `exit ${final.code}`,
    seconds: Math.round((Date.now() - started) / 1000),
  };
  console.log(JSON.stringify(report, null, 2));
  for (const p of problems.slice(0, 20)) console.error(`PROBLEM ${p}`);
  await proxy.close();
  await hub.close();
  if (problems.length === 0) await rm(cacheDir, { recursive: true, force: true });
  return problems.length === 0 && figures.corruptAccepted === 0 ? 0 : 1;
}

function runCli(args: string[], hub: ChaosHub, origin: string, cacheDir: string): Promise<number> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [...cliCommand(), ...args], { cwd: ROOT, env: { ...process.env, ...hub.env(origin, cacheDir) }, stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('exit', (code) => done(code ?? 1));
  });
}

// Exit explicitly: a toxic's timer or a killed child's half-open connection must not keep the soak hanging after its verdict.
process.exit(await main());
