import { lstat, mkdtemp, readdir, readlink, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sha256File } from '../bench/lib/downloads.js';
import { lastJson, ModelfetchCli } from '../bench/lib/modelfetch-cli.js';
import { assertOk } from '../bench/lib/proc.js';
import { startFixtureHub, type FixtureFileSpec } from '../test/support/fixture-hub.js';
import { generateFile, servedPath, startFixtureServer, type Fault, type FixtureServer } from '../test/support/fixture-server.js';

/**
 * `npm start`: a self-contained tour on loopback. A local server plays a distant CDN (every connection
 * throttled, every request delayed). Phase 1: one file comes down over one connection and then with
 * modelfetch's defaults, and both copies are checked. Phase 2: a fixture Hub serves a repo shaped like a
 * text-to-speech model; `modelfetch pull` puts it into a fresh Hugging Face cache, a second pull is a
 * cache hit, and the snapshot's tree is printed. Everything lives in a temp dir that is removed.
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

/** A repo shaped like a text-to-speech model: configs, a tokenizer, voices, checkpoints from KB to hundreds of MB. */
function ttsRepo(): FixtureFileSpec[] {
  const sized = (path: string, size: number): FixtureFileSpec => ({ path, size: Math.max(1024, Math.round(size * scale)) });
  return [
    { path: 'config.json', content: JSON.stringify({ model_type: 'tts', sample_rate: 24000, hidden_size: 1024, num_layers: 24, vocoder: 'hifigan' }, null, 2) },
    { path: 'README.md', content: '# demo/tts-model\n\nA generated repo shaped like a text-to-speech model.\n' },
    sized('tokenizer/tokenizer.json', 2 * MiB),
    sized('tokenizer/vocab.json', 200 * 1024),
    sized('voices/af_heart.pt', 512 * 1024),
    sized('voices/am_adam.pt', 512 * 1024),
    sized('voices/bf_emma.pt', 512 * 1024),
    sized('voices/bm_george.pt', 512 * 1024),
    sized('mel_stats.pth', 4 * 1024),
    sized('speakers.pth', 8 * MiB),
    sized('dvae.pth', 96 * MiB),
    sized('model.safetensors', 320 * MiB),
  ];
}

/** `tree`, with sizes and where each snapshot link points. */
async function printTree(dir: string, indent = ''): Promise<void> {
  const entries = (await readdir(dir)).sort();
  for (const [i, name] of entries.entries()) {
    const path = join(dir, name);
    const last = i === entries.length - 1;
    const info = await lstat(path);
    const branch = `${indent}${last ? '└── ' : '├── '}${name}`;
    if (info.isDirectory()) {
      say(`${branch}/`);
      await printTree(path, `${indent}${last ? '    ' : '│   '}`);
    } else if (info.isSymbolicLink()) {
      say(`${branch} (${formatSize((await stat(path)).size)}) -> ${(await readlink(path)).replace(/([0-9a-f]{12})[0-9a-f]{28,}$/, '$1…')}`);
    } else {
      say(`${branch} (${formatSize(info.size)})`);
    }
  }
}

function formatSize(bytes: number): string {
  if (bytes >= MiB) return `${(bytes / MiB).toFixed(1)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes} B`;
}

async function phaseTwo(work: string): Promise<void> {
  const files = ttsRepo();
  const hub = await startFixtureHub({ repos: [{ repoId: 'demo/tts-model', files }] });
  try {
    hub.hub.addFault({ fault: CDN });
    hub.cdn.addFault({ fault: CDN });
    const bytes = files.reduce((sum, f) => sum + hub.file('demo/tts-model', f.path).size, 0);
    say(`Phase 2 — pull a ${files.length}-file text-to-speech repo (${formatSize(bytes)}) from a fixture Hub, same CDN pace, into a fresh Hugging Face cache`);
    const cacheDir = join(work, 'hf-cache');
    const args = ['pull', 'demo/tts-model', '--cache-dir', cacheDir, '--endpoint', hub.endpoint];
    say(`$ HF_HUB_CACHE=${cacheDir} modelfetch pull demo/tts-model`);
    const first = assertOk('modelfetch pull', await cli.run(args, { inherit: true }));
    say(`$ modelfetch pull demo/tts-model --json   # again`);
    const second = assertOk('modelfetch pull (again)', await cli.run([...args, '--json']));
    const result = lastJson(second.stdout) ?? {};
    say(`first pull:  ${secs(first.ms)} (${(bytes / MiB / (first.ms / 1000)).toFixed(0)} MiB/s)`);
    say(`second pull: cache hit — ${String(result.cacheHits)} of ${String(result.files)} files cached, ${String(result.bytesFetched)} bytes fetched, ${Number(result.elapsedMs).toFixed(0)} ms in modelfetch (${second.ms.toFixed(0)} ms whole process, TypeScript compiled on the fly)`);
    const snapshot = join(cacheDir, 'models--demo--tts-model', 'snapshots', hub.commitOf('demo/tts-model'));
    say(`snapshot ${snapshot.slice(work.length + 1)}:`);
    await printTree(snapshot);
  } finally {
    await hub.close();
  }
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
    if (cli.has('pull')) {
      await phaseTwo(work);
      say();
    }
    say('demo finished');
  } finally {
    await cleanup();
  }
}

await main();
