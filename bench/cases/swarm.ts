import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { builtCli, fetchInside, HTTP_PORT, metricValue, sha256Of, snapshotFile, startCliIn, startClusterHub, startServeIn } from '../../test/cluster/cluster.js';
import type { HubProcessFile } from '../../test/cluster/hub-process.js';
import { createNetns, netnsUnavailable, type Netns, type NetnsProcess } from '../../test/cluster/netns.js';
import { FeatureMissing, MiB, missingCommands, ratioCheck, seconds, type BenchCase, type BenchContext, type CaseReport } from '../lib/bench-case.js';
import { median } from '../lib/proc.js';

/**
 * A cluster pulls one model: a mirror and N = 1, 2, 4, 8 nodes, each in its own network namespace,
 * every link (the mirror's too) limited by tbf to the same rate each way. The swarm (an agent per
 * node: `serve --upstream mirror --swarm`, and a local `pull` through it) against the baseline (every
 * node pulls over plain HTTP from the mirror). The mirror is warmed first, so both measure the
 * distribution inside the cluster, not the upstream.
 */

const COUNTS = [1, 2, 4, 8];
/**
 * BENCH_SWARM_MBIT overrides the link rate, BENCH_SWARM_NODES the node counts (e.g. `1,8`). At
 * 64 Mbit/s eight agents and eight pulls sharing one 2-core machine bind on the CPU before the links
 * (the N = 8 run measured the machine, not the swarm); at 32 Mbit/s the links bind, as they would in
 * a cluster where every node has its own CPU.
 */
const DEFAULT_MBIT = 32;

interface Round {
  /** Seconds from the common start to each node's pull exiting. */
  times: number[];
  /** Bytes the mirror sent on its link (kernel counter, headers included). */
  mirrorOut: number;
  /** The machine's CPU busy share over the round (all cores). */
  cpuBusy: number;
  /** Swarm rounds: where each node's agent took its bytes, and why it left the swarm (if it did). */
  agents?: AgentReport[];
}

interface AgentReport {
  node: string;
  /** Seconds from the common start until the agent's blob was last written (its swarm download's end). */
  swarmDone: number | undefined;
  fromWebSeeds: number;
  fromPeers: number;
  /** Bytes the agent fetched over HTTP from the mirror (a file that fell back, or the config). */
  overHttp: number;
  /** The agent's own lines saying why a file left the swarm for HTTP. */
  fallbacks: string[];
}

/** Reads an agent's counters from its /metrics, its fallback lines from its output and when its blob was done. */
async function agentReport(net: Netns, node: string, agent: NetnsProcess, blob: string, start: number): Promise<AgentReport> {
  const metrics = await fetchInside(net, node, `http://127.0.0.1:${HTTP_PORT}/metrics`);
  const written = await stat(blob).then((s) => s.mtimeMs, () => undefined);
  return {
    node,
    swarmDone: written === undefined ? undefined : (written - start) / 1000,
    fromWebSeeds: metricValue(metrics, 'modelfetch_swarm_webseed_bytes_total'),
    fromPeers: metricValue(metrics, 'modelfetch_swarm_peer_bytes_total'),
    overHttp: metricValue(metrics, 'modelfetch_upstream_bytes_total'),
    fallbacks: agent
      .output()
      .split('\n')
      .filter((line) => line.includes('downloading it over HTTP')),
  };
}

async function verifyNodes(dirs: string[], file: HubProcessFile): Promise<void> {
  for (const dir of dirs) {
    const got = await sha256Of(snapshotFile(dir, file));
    if (got !== file.sha256) throw new Error(`${dir}: SHA-256 ${got}, expected ${file.sha256}`);
  }
}

/** The machine's CPU counters (busy and all jiffies, from /proc/stat), to tell a round bound by the links from one bound by the 2 cores. */
async function cpuTicks(): Promise<{ busy: number; total: number }> {
  const fields = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((sum, n) => sum + n, 0);
  // idle and iowait
  return { busy: total - (fields[3] ?? 0) - (fields[4] ?? 0), total };
}

/** Starts one pull per node at the same moment and times each. */
async function pullOnAll(net: Netns, nodes: string[], endpoint: (node: string) => string, repoId: string, cacheDir: (node: string) => string, start: number): Promise<number[]> {
  const pulls = nodes.map((node) => startCliIn(net, node, builtCli, ['pull', repoId, '--cache-dir', cacheDir(node), '--quiet'], { HF_ENDPOINT: endpoint(node) }));
  return Promise.all(
    pulls.map(async (pull, i) => {
      const { code } = await pull.exited;
      if (code !== 0) throw new Error(`pull on ${nodes[i]} exited ${code}: ${pull.output().slice(-2000)}`);
      return (Date.now() - start) / 1000;
    }),
  );
}

async function round(ctx: BenchContext, net: Netns, file: HubProcessFile, n: number, swarm: boolean): Promise<Round> {
  const nodes = Array.from({ length: n }, (_, i) => `node${i + 1}`);
  const mirrorUrl = `http://${net.host('mirror').address}:${HTTP_PORT}`;
  const dir = (node: string, what: string): string => join(ctx.work, 'swarm', `${swarm ? 'swarm' : 'http'}-${n}`, node, what);
  const agents: NetnsProcess[] = [];
  try {
    if (swarm) {
      for (const node of nodes) agents.push(await startServeIn(net, node, builtCli, ['--upstream', mirrorUrl, '--swarm', '--swarm-port', '6881', '--cache-dir', dir(node, 'agent')]));
    }
    const before = (await net.linkBytes('mirror')).tx;
    const cpuBefore = await cpuTicks();
    const start = Date.now();
    const times = await pullOnAll(net, nodes, () => (swarm ? `http://127.0.0.1:${HTTP_PORT}` : mirrorUrl), file.repoId, (node) => dir(node, 'hf'), start);
    const cpuAfter = await cpuTicks();
    const cpuBusy = (cpuAfter.busy - cpuBefore.busy) / Math.max(1, cpuAfter.total - cpuBefore.total);
    const mirrorOut = (await net.linkBytes('mirror')).tx - before;
    const blob = (node: string): string => join(dir(node, 'agent'), `models--${file.repoId.replace('/', '--')}`, 'blobs', file.sha256);
    const reports = swarm ? await Promise.all(nodes.map((node, i) => agentReport(net, node, agents[i]!, blob(node), start))) : undefined;
    await verifyNodes(
      nodes.map((node) => dir(node, 'hf')),
      file,
    );
    ctx.log(`${swarm ? 'swarm' : 'http '} N=${n}: nodes ${times.map((t) => t.toFixed(1)).join(' ')} s; mirror out ${(mirrorOut / file.size).toFixed(2)} × model; CPU busy ${(cpuBusy * 100).toFixed(0)} %`);
    return { times, mirrorOut, cpuBusy, ...(reports && { agents: reports }) };
  } finally {
    for (const agent of agents) agent.child.kill('SIGKILL');
    await Promise.all(agents.map((agent) => agent.exited));
    await rm(join(ctx.work, 'swarm', `${swarm ? 'swarm' : 'http'}-${n}`), { recursive: true, force: true });
  }
}

function record(report: CaseReport, label: string, n: number, result: Round, size: number): void {
  report.measurements.push({ label: `${label} N=${n}: slowest node`, value: seconds(Math.max(...result.times) * 1000), unit: 's' });
  report.measurements.push({ label: `${label} N=${n}: median node`, value: seconds(median(result.times) * 1000), unit: 's' });
  report.measurements.push({ label: `${label} N=${n}: bytes out of the mirror`, value: result.mirrorOut / 1e6, unit: 'MB' });
  report.notes.push(`${label} N=${n}: per-node times ${result.times.map((t) => t.toFixed(1)).join(', ')} s; mirror out ${(result.mirrorOut / size).toFixed(2)} × model; machine CPU busy ${(result.cpuBusy * 100).toFixed(0)} % over the round`);
  if (!result.agents) return;
  // The swarm's part of each node's time, and the rest (the agent's SHA-256 and commit, then the local pull's copy).
  report.notes.push(`${label} N=${n}: per-node swarm download done at (agent blob written): ${result.agents.map((a) => (a.swarmDone === undefined ? '?' : a.swarmDone.toFixed(1))).join(', ')} s`);
  const mb = (bytes: number): string => (bytes / 1e6).toFixed(0);
  // So a slow node names its reason: how much came from the mirror (web seed, HTTP) and from peers.
  report.notes.push(`${label} N=${n}: per-node MB from web seed / peers / HTTP: ${result.agents.map((a) => `${a.node} ${mb(a.fromWebSeeds)}/${mb(a.fromPeers)}/${mb(a.overHttp)}`).join(', ')}`);
  for (const agent of result.agents) for (const line of agent.fallbacks) report.notes.push(`${label} N=${n}: ${agent.node}: ${line.trim()}`);
}

export const swarmCase: BenchCase = {
  id: 'swarm',
  title: 'A cluster pulls one model: N nodes through a swarm (agents, mirror as web seed) vs every node over HTTP from the mirror, all links tbf-limited',
  unavailable: (ctx) => {
    try {
      return netnsUnavailable() ?? missingCommands(ctx, 'serve', 'pull');
    } catch (error) {
      return (error as Error).message;
    }
  },
  async run(ctx, report) {
    const mbit = Number(process.env.BENCH_SWARM_MBIT ?? DEFAULT_MBIT);
    const size = ctx.quick ? 64 * MiB : 256 * MiB;
    const counts = process.env.BENCH_SWARM_NODES ? process.env.BENCH_SWARM_NODES.split(',').map(Number) : COUNTS;
    const agentBuilt = ctx.cli.hasOption('serve', '--swarm-port');
    const net = await createNetns({ hosts: ['mirror', ...Array.from({ length: Math.max(...counts) }, (_, i) => `node${i + 1}`)], rateMbit: mbit });
    try {
      ctx.log(`generating ${size / MiB} MiB in the fixture Hub`);
      const hub = await startClusterHub(net, 'mirror', [{ repoId: 'bench/swarm', files: [{ path: 'config.json', content: '{"model_type":"llama"}' }, { path: 'model.safetensors', size }] }]);
      try {
        const file = hub.files.find((f) => f.path === 'model.safetensors')!;
        const mirrorDir = join(ctx.work, 'swarm', 'mirror');
        await startServeIn(net, 'mirror', builtCli, ['--upstream', hub.endpoint, '--swarm', '--public', 'bench/*', '--cache-dir', mirrorDir]);
        // Warm: the mirror fetches the model from the Hub once, on its own loopback (no tbf there).
        await fetchInside(net, 'mirror', `http://127.0.0.1:${HTTP_PORT}/bench/swarm/resolve/main/${file.path}`, { discardBody: true });
        report.notes.push(
          `${size / MiB} MiB model (one safetensors file in 4 MiB pieces, and a config), mirror warmed from the fixture Hub first; every link (mirror and nodes) tbf ${mbit} Mbit/s each way (BENCH_SWARM_MBIT): at N = 8 the swarm moves ${mbit} MB/s in total (each node receives ${(mbit / 8).toFixed(0)} MB/s and sends as much, every byte SHA-1- and SHA-256-checked and copied to the local pull); on an idle 2-core machine the links bind at this rate, on a busy one the CPU does (see the load average)`,
        );
        report.notes.push(`baseline: pull with HF_ENDPOINT=mirror on each node; swarm: serve --upstream mirror --swarm --swarm-port 6881 on each node, pull with HF_ENDPOINT=http://127.0.0.1:${HTTP_PORT}; times from a common start to each pull's exit`);
        const baseline = new Map<number, Round>();
        const swarm = new Map<number, Round>();
        // BENCH_SWARM_BASELINE=0 skips the HTTP rounds (most of the run's time) when only the swarm is studied.
        const withBaseline = process.env.BENCH_SWARM_BASELINE !== '0';
        for (const n of counts) {
          if (withBaseline) {
            baseline.set(n, await round(ctx, net, file, n, false));
            record(report, 'http', n, baseline.get(n)!, size);
          }
          if (agentBuilt) {
            swarm.set(n, await round(ctx, net, file, n, true));
            record(report, 'swarm', n, swarm.get(n)!, size);
          }
        }
        if (!agentBuilt) throw new FeatureMissing('the node agent (serve --swarm-port) is not built: baseline rows only');
        const top = Math.max(...counts);
        const slowest = (r: Round): number => Math.max(...r.times);
        report.checks.push(ratioCheck(`N=${top} bytes out of the mirror / model size`, swarm.get(top)!.mirrorOut / size, '≤', 1.5));
        const single = swarm.get(1);
        if (single) report.checks.push(ratioCheck(`N=${top} slowest node / N=1 time (swarm)`, slowest(swarm.get(top)!) / slowest(single), '≤', 1.5));
        const http = baseline.get(top);
        if (http) report.checks.push(ratioCheck(`N=${top} baseline slowest / swarm slowest`, slowest(http) / slowest(swarm.get(top)!), '≥', 3));
        else report.notes.push('BENCH_SWARM_BASELINE=0: no baseline rounds, so no baseline check');
      } finally {
        await hub.close();
      }
    } finally {
      await net.close();
    }
  },
};
