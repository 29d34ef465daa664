import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { hasTool } from '../support/tools.js';

/**
 * A cluster on one machine: one network namespace per host (a mirror, nodes, a bad peer…), each with
 * an `eth0` on a bridge that lives in a namespace of its own, addresses in 10.213.0.0/24 that exist
 * only inside those namespaces (no default route: nothing in them reaches the outside, nothing
 * outside reaches them), and a `tc … tbf` rate limit on both ends of every host's link, so a host
 * sends and receives at most `rateMbit` (the mirror's egress is a real bottleneck).
 *
 * Everything is named `mf-{pid}-…` after the process that made it, and removed by `close()`, by a
 * process-exit hook if `close()` never ran, and by the next run's sweep if this process was killed
 * outright (namespaces whose creator is gone). Processes started inside are killed with their
 * namespace (`ip netns pids`), whoever started them.
 */

const run = promisify(execFile);

export const SUBNET = '10.213.0';

export interface NetnsOptions {
  /** Host names, in order; host i gets 10.213.0.{i+1}. */
  hosts: string[];
  /** Each link's rate, each direction, in Mbit/s. */
  rateMbit: number;
  /** Per-host rates that differ from `rateMbit`. */
  hostRateMbit?: Record<string, number>;
}

export interface NetnsHost {
  readonly name: string;
  /** The namespace (`ip netns exec {ns} …`). */
  readonly ns: string;
  readonly address: string;
}

export interface NetnsProcess {
  readonly child: ChildProcess;
  /** Its exit code, or the signal that ended it. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output(): string;
  stdout(): string;
}

export interface Netns {
  readonly prefix: string;
  readonly hosts: NetnsHost[];
  host(name: string): NetnsHost;
  /** Starts `command args` inside the host's namespace (its own process group); `ipc` adds a Node IPC channel. */
  spawn(host: string, command: string, args: string[], options?: { env?: NodeJS.ProcessEnv; ipc?: boolean }): NetnsProcess;
  /** Bytes the host has sent and received on its link (kernel counters of its eth0). */
  linkBytes(host: string): Promise<{ tx: number; rx: number }>;
  close(): Promise<void>;
}

/** Why the cluster cannot run here (not root, no `ip` or `tc`), or undefined; MODELFETCH_REQUIRE_TOOLS=1 makes a missing tool an error. */
export function netnsUnavailable(): string | undefined {
  if (!hasTool('ip') || !hasTool('tc')) return 'iproute2 (ip, tc) is not installed; run scripts/install-system-deps.sh';
  if (process.getuid?.() !== 0) {
    if (process.env.MODELFETCH_REQUIRE_TOOLS === '1') throw new Error('the cluster test needs root for ip netns (MODELFETCH_REQUIRE_TOOLS=1)');
    return 'network namespaces need root';
  }
  return undefined;
}

function ip(...args: string[]): Promise<unknown> {
  return run('ip', args);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function namespacesNow(): string[] {
  const out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  return out
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter(Boolean);
}

/** Kills every process inside the namespaces and deletes them (their veths go with them). Synchronous, for the exit hook too. */
function removeNamespacesSync(names: string[]): void {
  for (const ns of names) {
    let pids: string[] = [];
    try {
      pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split('\n').filter(Boolean);
    } catch {
      continue; // Already gone.
    }
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // Exited meanwhile.
      }
    }
  }
  for (const ns of names) {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      // Already gone.
    }
  }
}

/** Removes `mf-{pid}-…` namespaces whose creating process is gone (a run killed before its clean-up). */
export function sweepStaleNamespaces(): string[] {
  const stale = namespacesNow().filter((ns) => {
    const owner = /^mf-(\d+)-/.exec(ns);
    return owner !== null && Number(owner[1]) !== process.pid && !pidAlive(Number(owner[1]));
  });
  removeNamespacesSync(stale);
  return stale;
}

let runs = 0;

export async function createNetns(options: NetnsOptions): Promise<Netns> {
  sweepStaleNamespaces();
  const prefix = `mf-${process.pid}-${runs++}`;
  const hubNs = `${prefix}-sw`;
  const hosts: NetnsHost[] = options.hosts.map((name, i) => ({ name, ns: `${prefix}-${name}`, address: `${SUBNET}.${i + 1}` }));
  const created: string[] = [];
  const children = new Set<ChildProcess>();
  let closed = false;
  const removeAll = (): void => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null && child.pid) safeKillGroup(child.pid);
    removeNamespacesSync(created);
  };
  const onExit = (): void => removeAll();
  const onSignal = (signal: NodeJS.Signals): void => {
    removeAll();
    process.off('exit', onExit);
    process.kill(process.pid, signal);
  };
  process.once('exit', onExit);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const addNs = async (ns: string): Promise<void> => {
    await ip('netns', 'add', ns);
    created.push(ns);
    await ip('-n', ns, 'link', 'set', 'lo', 'up');
  };
  const tbf = (ns: string, dev: string, mbit: number): Promise<unknown> =>
    // burst: at least one 64 KiB GSO segment plus a few ms at the rate; latency bounds the queue.
    run('tc', ['-n', ns, 'qdisc', 'add', 'dev', dev, 'root', 'tbf', 'rate', `${mbit}mbit`, 'burst', `${Math.max(128, Math.ceil((mbit * 1000) / 8 / 200))}kb`, 'latency', '100ms']);

  try {
    await addNs(hubNs);
    await ip('-n', hubNs, 'link', 'add', 'br0', 'type', 'bridge');
    await ip('-n', hubNs, 'link', 'set', 'br0', 'up');
    for (const [i, host] of hosts.entries()) {
      await addNs(host.ns);
      const port = `p${i}`;
      await ip('-n', hubNs, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.ns);
      await ip('-n', hubNs, 'link', 'set', port, 'master', 'br0', 'up');
      await ip('-n', host.ns, 'addr', 'add', `${host.address}/24`, 'dev', 'eth0');
      await ip('-n', host.ns, 'link', 'set', 'eth0', 'up');
      const mbit = options.hostRateMbit?.[host.name] ?? options.rateMbit;
      await tbf(host.ns, 'eth0', mbit); // what the host sends
      await tbf(hubNs, port, mbit); // what the host receives
    }
  } catch (error) {
    removeAll();
    process.off('exit', onExit);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    throw error;
  }

  const byName = (name: string): NetnsHost => {
    const host = hosts.find((h) => h.name === name);
    if (!host) throw new Error(`no host ${name} in this cluster`);
    return host;
  };

  return {
    prefix,
    hosts,
    host: byName,
    spawn(name, command, args, spawnOptions = {}) {
      if (closed) throw new Error('the cluster is closed');
      const child = spawn('ip', ['netns', 'exec', byName(name).ns, command, ...args], {
        env: spawnOptions.env ?? process.env,
        stdio: spawnOptions.ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      children.add(child);
      let output = '';
      let stdout = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        stdout += chunk.toString();
      });
      child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.on('close', (code, signal) => {
          children.delete(child);
          resolve({ code, signal });
        }),
      );
      return { child, exited, output: () => output, stdout: () => stdout };
    },
    async linkBytes(name) {
      const { stdout } = await run('ip', ['-n', byName(name).ns, '-j', '-s', 'link', 'show', 'dev', 'eth0']);
      const [link] = JSON.parse(stdout) as { stats64: { tx: { bytes: number }; rx: { bytes: number } } }[];
      return { tx: link!.stats64.tx.bytes, rx: link!.stats64.rx.bytes };
    },
    async close() {
      if (closed) return;
      closed = true;
      const waits = [...children].map((child) => new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(undefined) : child.once('close', resolve))));
      removeAll();
      await Promise.race([Promise.all(waits), new Promise((resolve) => setTimeout(resolve, 5_000).unref())]);
      process.off('exit', onExit);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

function safeKillGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}
