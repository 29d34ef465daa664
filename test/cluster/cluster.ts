import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FixtureRepoSpec } from '../support/fixture-hub.js';
import type { HubProcessFile, HubProcessMessage } from './hub-process.js';
import type { Netns, NetnsProcess } from './netns.js';

/** The pieces of a cluster run shared by the cluster test and the swarm bench: the Hub, mirrors/agents, pulls, metrics. */

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = join(here, '..', '..');

/** How to start the CLI: from source through tsx (tests) or the build (bench). */
export const sourceCli = [process.execPath, '--import', 'tsx', join(repoRoot, 'src', 'cli', 'run.ts')];
export const builtCli = [process.execPath, join(repoRoot, 'bin', 'modelfetch.js')];
export const HTTP_PORT = 8080;

export interface ClusterHub {
  endpoint: string;
  files: HubProcessFile[];
  /** Body bytes the Hub and its CDN have sent so far (the upstream's bytes out). */
  stats(): Promise<{ hubBytes: number; cdnBytes: number; cdnRequests: number; ranges: string[] }>;
  close(): Promise<void>;
}

function waitFor<T>(process: NetnsProcess, what: string, pick: (message: HubProcessMessage) => T | undefined, timeoutMs = 60_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`${what}: no answer in ${timeoutMs} ms\n${process.output()}`)), timeoutMs);
    const onMessage = (message: HubProcessMessage): void => {
      const value = pick(message);
      if (value === undefined) return;
      clearTimeout(timer);
      process.child.off('message', onMessage);
      resolve(value);
    };
    const fail = (error: Error): void => {
      process.child.off('message', onMessage);
      reject(error);
    };
    process.child.on('message', onMessage);
    void process.exited.then(() => {
      clearTimeout(timer);
      fail(new Error(`${what}: the fixture Hub exited\n${process.output()}`));
    });
  });
}

/** The fixture Hub, in `host`'s namespace on its loopback: only processes in that namespace reach it. */
export async function startClusterHub(net: Netns, host: string, repos: FixtureRepoSpec[]): Promise<ClusterHub> {
  const proc = net.spawn(host, process.execPath, ['--import', 'tsx', join(here, 'hub-process.ts'), JSON.stringify(repos)], { ipc: true });
  const ready = await waitFor(proc, 'fixture Hub start', (m) => ('ready' in m ? m.ready : undefined), 120_000);
  return {
    ...ready,
    async stats() {
      const answer = waitFor(proc, 'fixture Hub stats', (m) => ('stats' in m ? m.stats : undefined));
      proc.child.send('stats');
      return answer;
    },
    async close() {
      if (proc.child.connected) proc.child.send('close');
      await Promise.race([proc.exited, new Promise((resolve) => setTimeout(resolve, 5_000).unref())]);
    },
  };
}

/** Starts `modelfetch serve {args}` in `host`'s namespace and waits until it listens. */
export async function startServeIn(net: Netns, host: string, cli: string[], args: string[], env: NodeJS.ProcessEnv = {}): Promise<NetnsProcess> {
  const proc = net.spawn(host, cli[0]!, [...cli.slice(1), 'serve', '--host', '0.0.0.0', '--port', String(HTTP_PORT), ...args], { env: { PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: process.env.TMPDIR, ...env } });
  const deadline = Date.now() + 60_000;
  while (!/listening on/.test(proc.output())) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) throw new Error(`serve on ${host} exited before listening:\n${proc.output()}`);
    if (Date.now() > deadline) throw new Error(`serve on ${host} did not listen within 60 s:\n${proc.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return proc;
}

/** Starts `modelfetch {args}` in `host`'s namespace (a pull), without waiting. */
export function startCliIn(net: Netns, host: string, cli: string[], args: string[], env: NodeJS.ProcessEnv = {}): NetnsProcess {
  return net.spawn(host, cli[0]!, [...cli.slice(1), ...args], { env: { PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: process.env.TMPDIR, ...env } });
}

/** GET a URL from inside `host`'s namespace (where the cluster's addresses are reachable); `discardBody` returns only its length. */
export async function fetchInside(net: Netns, host: string, url: string, options: { discardBody?: boolean } = {}): Promise<string> {
  const read = options.discardBody ? 'String((await r.arrayBuffer()).byteLength)' : 'await r.text()';
  const script = `fetch(process.argv[1]).then(async (r) => { process.stdout.write(${read}); process.exitCode = r.ok ? 0 : 1; }, (e) => { console.error(String(e)); process.exitCode = 2; })`;
  const proc = net.spawn(host, process.execPath, ['-e', script, url]);
  const { code } = await proc.exited;
  if (code !== 0) throw new Error(`GET ${url} from ${host} failed (${code}): ${proc.output().slice(0, 2000)}`);
  return proc.stdout();
}

/** The value of a Prometheus counter or gauge (summed over its labels), 0 when absent. */
export function metricValue(text: string, name: string): number {
  let total = 0;
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$/.exec(line);
    if (match && match[1] === name) total += Number(match[3]);
  }
  return total;
}

export async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Where a pull into `cacheDir` puts a file of a model repo. */
export function snapshotFile(cacheDir: string, file: HubProcessFile): string {
  return join(cacheDir, `models--${file.repoId.replace('/', '--')}`, 'snapshots', file.commit, file.path);
}
