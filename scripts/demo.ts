import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sha256File } from '../bench/lib/downloads.js';
import { ModelfetchCli } from '../bench/lib/modelfetch-cli.js';
import { assertOk } from '../bench/lib/proc.js';
import { generateFile, servedPath, startFixtureServer, type Fault, type FixtureServer } from '../test/support/fixture-server.js';

/**
 * `npm start`: a self-contained tour on loopback. A local server plays a distant CDN (every connection
 * throttled, every request delayed); one file comes down over one connection and then with
 * modelfetch's defaults, and both copies are checked. Everything lives in a temp dir that is removed.
 * MODELFETCH_DEMO_SCALE (default 1) scales every file size, not the CDN's pace, down for a quick run
 * (the test uses 0.02).
 */

const MiB = 1024 * 1024;
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const scale = Math.min(1, Math.max(0.001, Number(process.env.MODELFETCH_DEMO_SCALE ?? '1') || 1));
/** A distant CDN: ~8 MiB/s per connection (≈ 67 Mbit/s) and 40 ms before each response starts. */
const CDN: Fault = { throttleBytesPerSec: 8 * MiB, latencyMs: 40 };
const cli = new ModelfetchCli(root, true);

const say = (line = ''): void => void process.stdout.write(`${line}\n`);
const secs = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

async function phaseOne(server: FixtureServer, work: string): Promise<void> {
  const size = Math.round(128 * MiB * scale);
  say(`Phase 1 — one ${(size / MiB).toFixed(0)} MiB file from a throttled CDN (${(CDN.throttleBytesPerSec! / MiB).toFixed(1)} MiB/s per connection, ${CDN.latencyMs} ms latency)`);
  const source = join(work, 'weights.bin');
  const info = await generateFile(source, size);
  server.setFile('/cdn/weights.bin', servedPath(source, info));
  server.addFault({ match: (req) => (req.url ?? '').startsWith('/cdn/'), fault: CDN });
  const url = `${server.origin}/cdn/weights.bin`;

  const oneOut = join(work, 'one-connection.bin');
  const manyOut = join(work, 'modelfetch.bin');
  say(`$ modelfetch get ${url} --connections 1`);
  const one = assertOk('modelfetch get --connections 1', await cli.run(cli.getArgs(url, oneOut, ['--connections', '1']), { inherit: true }));
  say(`$ modelfetch get ${url}`);
  const many = assertOk('modelfetch get', await cli.run(cli.getArgs(url, manyOut), { inherit: true }));

  for (const [name, path] of [['one connection', oneOut], ['modelfetch', manyOut]] as const) {
    const digest = await sha256File(path);
    if (digest !== info.sha256) throw new Error(`the ${name} copy has SHA-256 ${digest}, expected ${info.sha256}`);
  }
  say(`one connection:       ${secs(one.ms)}`);
  say(`modelfetch defaults:  ${secs(many.ms)}`);
  say(`speed-up: ${(one.ms / many.ms).toFixed(1)}x — both copies verified (sha256 ${info.sha256.slice(0, 16)}…)`);
}

async function main(): Promise<void> {
  if (!cli.has('get')) {
    say('modelfetch get is not part of this build yet: nothing to demonstrate.');
    return;
  }
  const work = await mkdtemp(join(tmpdir(), 'modelfetch-demo-'));
  const server = await startFixtureServer();
  const cleanup = async (): Promise<void> => {
    await server.close();
    await rm(work, { recursive: true, force: true });
  };
  process.once('SIGINT', () => void cleanup().finally(() => process.exit(130)));
  try {
    say(`modelfetch demo — everything on 127.0.0.1, data in ${work} (removed at the end)`);
    say();
    await phaseOne(server, work);
    say();
    say('demo finished');
  } finally {
    await cleanup();
  }
}

await main();
