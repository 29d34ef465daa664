import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONVERTED_METADATA_COMMIT } from '../../src/cache/local-dir.js';
import { isModelfetchError } from '../../src/core/errors.js';
import { pull } from '../../src/pull/index.js';
import { readLocalHeader } from '../../src/safetensors/local-file.js';
import { runCli } from '../support/cli.js';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';
import { serveModelScope } from '../support/fixture-modelscope.js';
import { startFixtureServer, type FixtureServer } from '../support/fixture-server.js';
import { interopPython, runPython } from '../support/python.js';
import { buildSafetensors, shardedModel, type ModelFile } from '../support/safetensors.js';

const python = interopPython();
const model = shardedModel({ shards: 2, rows: 32, cols: 64 });
const shardPaths = [...model.shards.keys()];
const upstreamOf = (path: string): Buffer => model.files.find((f) => f.path === path)!.content;
const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');
const metadataOf = async (dir: string, path: string): Promise<string[] | undefined> => (await readFile(join(dir, '.cache', 'huggingface', 'download', `${path}.metadata`), 'utf8').catch(() => undefined))?.split('\n');

/** Two 24 MiB F32 shards: a conversion long enough to be killed in the middle. */
function bigModel(): ModelFile[] {
  const shards = [1, 2].map((s) => ({ path: `model-0000${s}-of-00002.safetensors`, content: buildSafetensors([{ name: `layer.${s}.weight`, dtype: 'F32', shape: [6 * 1024 * 1024], data: Buffer.alloc(24 * 1024 * 1024, s) }], { format: 'pt' }) }));
  const weightMap = Object.fromEntries(shards.map((shard, i) => [`layer.${i + 1}.weight`, shard.path]));
  return [...shards, { path: 'model.safetensors.index.json', content: Buffer.from(JSON.stringify({ metadata: { total_size: 2 * 24 * 1024 * 1024 }, weight_map: weightMap })) }];
}

/** Every converted tensor equals numpy's own astype(float16) of the upstream tensor, bit for bit; the safetensors package loads every file. */
const PY_COMPARE = String.raw`
import json, struct, sys
import numpy as np
from safetensors.numpy import load_file

def upstream_tensors(path):
    # Read by hand: numpy has no bfloat16, so load_file cannot read the upstream BF16 norm.
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__": continue
        b = data[v["data_offsets"][0]:v["data_offsets"][1]]
        if v["dtype"] == "BF16": out[k] = (np.frombuffer(b, "<u2").astype(np.uint32) << 16).view(np.float32)
        elif v["dtype"] == "F32": out[k] = np.frombuffer(b, "<f4")
        else: out[k] = np.frombuffer(b, {"I64": "<i8", "F16": "<f2"}[v["dtype"]])
    return out

bad = []
for upstream, converted in json.loads(sys.argv[1]):
    before, after = upstream_tensors(upstream), load_file(converted)
    for name, x in before.items():
        y = after[name].reshape(-1)
        if x.dtype.kind != "f" or x.dtype == np.float16:
            if not np.array_equal(x, y): bad.append([name, "copied values differ"])
            continue
        want = x.astype(np.float16)
        if y.dtype != np.float16: bad.append([name, str(y.dtype)]); continue
        nan = np.isnan(want)
        if ((~nan & (y.view(np.uint16) != want.view(np.uint16))) | (nan & ~np.isnan(y))).any(): bad.append([name, "values"])
print(json.dumps(bad))
`;

describe('pull --local-dir --dtype: converted in place', () => {
  let hub: FixtureHub;
  let work: string;
  beforeAll(async () => {
    hub = await startFixtureHub({
      repos: [
        { repoId: 'org/tts', files: model.files.map((f) => ({ path: f.path, content: f.content, lfs: f.path.endsWith('.safetensors') })) },
        { repoId: 'org/big', files: bigModel().map((f) => ({ ...f, lfs: f.path.endsWith('.safetensors') })) },
      ],
    });
    work = await mkdtemp(join(tmpdir(), 'mf-convert-local-'));
  });
  afterAll(async () => {
    await hub.close();
    await rm(work, { recursive: true, force: true });
  });

  it('leaves f16 files, a rewritten index and config.json, and metadata that names no commit for what it converted; the same command again does nothing', async () => {
    const dir = join(work, 'm');
    const commit = hub.commitOf('org/tts');
    const result = await pull({ repo: 'org/tts', endpoint: hub.endpoint, localDir: dir, env: {}, dtype: 'f16' });
    expect(result.path).toBe(dir);
    expect(result.converted).toMatchObject({ reused: false, filesConverted: 2, dtype: 'F16' });
    // Bytes of the weights: before, the upstream files; after, the files on disk now.
    const weights = model.files.filter((f) => f.path.endsWith('.safetensors')).map((f) => f.path);
    const upstreamBytes = weights.reduce((n, path) => n + upstreamOf(path).length, 0);
    const bytesOnDisk = async (): Promise<number> => (await Promise.all(weights.map(async (path) => (await stat(join(dir, path))).size))).reduce((n, size) => n + size, 0);
    expect(result.converted).toMatchObject({ bytesBefore: upstreamBytes, bytesAfter: await bytesOnDisk(), tensorsConverted: expect.any(Number) });
    expect(result.converted!.tensorsConverted).toBeGreaterThan(0);
    expect(result.converted!.bytesAfter).toBeLessThan(upstreamBytes);
    for (const path of shardPaths) {
      const { header } = await readLocalHeader(join(dir, path));
      expect(header.tensors.map((t) => t.dtype).filter((d) => d !== 'I64')).toEqual(header.tensors.filter((t) => t.dtype !== 'I64').map(() => 'F16'));
      expect(header.metadata?.['modelfetch.conversion']).toMatch(/->F16/);
      const bytes = await readFile(join(dir, path));
      // huggingface_hub's metadata: no commit, and the etag is the converted bytes' own SHA-256.
      expect(await metadataOf(dir, path)).toEqual([CONVERTED_METADATA_COMMIT, sha256(bytes), expect.stringMatching(/^\d+(\.\d+)?$/), '']);
    }
    const index = JSON.parse(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8')) as { metadata: { total_size: number } };
    const original = JSON.parse(upstreamOf('model.safetensors.index.json').toString()) as { metadata: { total_size: number } };
    expect(index.metadata.total_size).toBeLessThan(original.metadata.total_size);
    expect(JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'))).toMatchObject({ torch_dtype: 'float16', text_config: { torch_dtype: 'float16' } });
    expect((await metadataOf(dir, 'config.json'))?.[0]).toBe(CONVERTED_METADATA_COMMIT);
    // A file with nothing to convert stays the upstream file, and its metadata says so.
    expect(await readFile(join(dir, 'README.md'))).toEqual(upstreamOf('README.md'));
    expect((await metadataOf(dir, 'README.md'))?.[0]).toBe(commit);

    if (python) {
      const upstreamDir = join(work, 'upstream');
      await mkdir(upstreamDir, { recursive: true });
      for (const path of shardPaths) await writeFile(join(upstreamDir, path), upstreamOf(path));
      const pairs = shardPaths.map((path) => [join(upstreamDir, path), join(dir, path)]);
      expect(JSON.parse(await runPython(python, `import sys; sys.argv = ["x", ${JSON.stringify(JSON.stringify(pairs))}]\n${PY_COMPARE}`, {}))).toEqual([]);
    }

    const before = await Promise.all(shardPaths.map(async (path) => (await stat(join(dir, path))).mtimeMs));
    hub.resetLogs();
    const again = await pull({ repo: 'org/tts', endpoint: hub.endpoint, localDir: dir, env: {}, dtype: 'f16' });
    expect(again.converted).toMatchObject({ reused: true, filesConverted: 0, tensorsConverted: 0, bytesBefore: upstreamBytes, bytesAfter: await bytesOnDisk() });
    expect(again).toMatchObject({ downloaded: 0, bytesFetched: 0 });
    expect(hub.requests().filter((r) => !r.url.startsWith('/api/'))).toEqual([]);
    expect(await Promise.all(shardPaths.map(async (path) => (await stat(join(dir, path))).mtimeMs))).toEqual(before);
  });

  it('the CLI prints the folder, and says when the files were already converted', async () => {
    const dir = join(work, 'cli');
    await pull({ repo: 'org/tts', endpoint: hub.endpoint, localDir: dir, env: {}, dtype: 'f16' });
    const cli = await runCli(['pull', 'org/tts', '--local-dir', dir, '--dtype', 'f16'], { HF_ENDPOINT: hub.endpoint });
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toBe(`${dir}\n`);
    expect(cli.stderr).toContain(`already F16 in ${dir}\n`);
  });

  it('huggingface_hub does not take a converted file for the upstream one: hf_hub_download re-downloads it', async () => {
    const dir = join(work, 'hf');
    const commit = hub.commitOf('org/tts');
    await pull({ repo: 'org/tts', endpoint: hub.endpoint, localDir: dir, env: {}, dtype: 'f16' });
    const converted = await readFile(join(dir, shardPaths[0]!));
    expect(converted.length).toBeLessThan(upstreamOf(shardPaths[0]!).length);
    if (!python) return;
    const out = await runPython(
      python,
      `
import json
from huggingface_hub import hf_hub_download
path = hf_hub_download("org/tts", ${JSON.stringify(shardPaths[0])}, local_dir=${JSON.stringify(dir)}, revision=${JSON.stringify(commit)})
print(json.dumps({"path": path}))
`,
      { HF_ENDPOINT: hub.endpoint, HF_HOME: join(work, 'hf-home') },
    );
    // (Its dry_run is no witness here: in a local dir it says will_download=False whenever the file exists.)
    const answer = JSON.parse(out.trim().split('\n').at(-1)!) as { path: string };
    expect(answer.path).toBe(join(dir, shardPaths[0]!));
    // It fetched the upstream file again, over the converted one, and recorded the commit.
    expect(sha256(await readFile(join(dir, shardPaths[0]!)))).toBe(sha256(upstreamOf(shardPaths[0]!)));
    expect((await metadataOf(dir, shardPaths[0]!))?.slice(0, 2)).toEqual([commit, sha256(upstreamOf(shardPaths[0]!))]);
    // The same pull --dtype then converts that file again, and only that one.
    const again = await pull({ repo: 'org/tts', endpoint: hub.endpoint, localDir: dir, env: {}, dtype: 'f16' });
    expect(again).toMatchObject({ downloaded: 0, converted: { filesConverted: 1 } });
    expect((await metadataOf(dir, shardPaths[0]!))?.[0]).toBe(CONVERTED_METADATA_COMMIT);
  });

  it('does not convert a file edited since it was downloaded (it would be noted as a conversion of the upstream file): a clear error, nothing converted', async () => {
    const dir = join(work, 'edited');
    await pull({ repo: 'org/tts', endpoint: hub.endpoint, localDir: dir, env: {} });
    const edited = Buffer.from(upstreamOf(shardPaths[1]!));
    edited.writeUInt8(edited.readUInt8(edited.length - 1) ^ 1, edited.length - 1);
    await new Promise((resolve) => setTimeout(resolve, 1100)); // past huggingface_hub's 1 s mtime slack
    await writeFile(join(dir, shardPaths[1]!), edited);
    const warnings: string[] = [];
    const error = await pull({ repo: 'org/tts', endpoint: hub.endpoint, localDir: dir, env: {}, dtype: 'f16', onWarning: (w) => warnings.push(w) }).catch((e: unknown) => e);
    expect(warnings.join('\n')).toContain(`${shardPaths[1]} was changed since it was downloaded`);
    expect(isModelfetchError(error, 'ERR_USAGE')).toBe(true);
    expect((error as Error).message).toContain(`${shardPaths[1]} in ${dir} was changed since it was downloaded, so --dtype does not convert it`);
    expect(await readFile(join(dir, shardPaths[0]!))).toEqual(upstreamOf(shardPaths[0]!));
    expect(await readFile(join(dir, shardPaths[1]!))).toEqual(edited);
  });

  it('a plain pull (no --dtype) brings the upstream files back; --dtype bf16 after f16 converts from upstream again', async () => {
    const dir = join(work, 'switch');
    await pull({ repo: 'org/tts', endpoint: hub.endpoint, localDir: dir, env: {}, dtype: 'f16' });
    const plain = await pull({ repo: 'org/tts', endpoint: hub.endpoint, localDir: dir, env: {} });
    expect(plain.downloaded).toBe(4); // two shards, the index, config.json
    for (const file of model.files) expect(sha256(await readFile(join(dir, file.path)))).toBe(sha256(file.content));
    await pull({ repo: 'org/tts', endpoint: hub.endpoint, localDir: dir, env: {}, dtype: 'f16' });
    const bf16 = await pull({ repo: 'org/tts', endpoint: hub.endpoint, localDir: dir, env: {}, dtype: 'bf16' });
    expect(bf16).toMatchObject({ downloaded: 4, converted: { filesConverted: 2, dtype: 'BF16' } });
    const { header } = await readLocalHeader(join(dir, shardPaths[1]!));
    expect(header.tensors.map((t) => t.dtype)).toEqual(['BF16', 'BF16', 'BF16']);
  });

  it('a conversion killed in the middle leaves every file whole (the original or the converted one); the next run finishes it', async () => {
    const dir = join(work, 'killed');
    const runTs = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'run.ts');
    const child = spawn(process.execPath, ['--import', 'tsx', runTs, 'pull', 'org/big', '--local-dir', dir, '--dtype', 'f16', '--quiet'], { env: { PATH: process.env.PATH, HOME: process.env.HOME, HF_ENDPOINT: hub.endpoint }, stdio: 'ignore' });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const partial = join(dir, '.cache', 'huggingface', 'modelfetch', 'partial');
    let killedMidway = false;
    for (let i = 0; i < 3000 && child.exitCode === null; i++) {
      const temps = (await readdir(partial).catch(() => [] as string[])).filter((n) => n.startsWith('convert-'));
      const sizes = await Promise.all(temps.map(async (n) => (await stat(join(partial, n)).catch(() => undefined))?.size ?? 0));
      if (sizes.some((size) => size > 0)) {
        child.kill('SIGKILL');
        killedMidway = true;
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await exited;
    expect(killedMidway).toBe(true);
    const files = bigModel();
    for (const file of files.filter((f) => f.path.endsWith('.safetensors'))) {
      const bytes = await readFile(join(dir, file.path));
      if (bytes.equals(file.content)) continue;
      // Not the original: then the whole converted file, and metadata that does not call it upstream.
      const { header, size } = await readLocalHeader(join(dir, file.path));
      expect(header.tensors.map((t) => t.dtype)).toEqual(['F16']);
      expect(size).toBe(bytes.length);
      expect((await metadataOf(dir, file.path))?.[0]).not.toBe(hub.commitOf('org/big'));
    }
    const rerun = await runCli(['pull', 'org/big', '--local-dir', dir, '--dtype', 'f16', '--json'], { HF_ENDPOINT: hub.endpoint });
    expect(rerun.code, rerun.stderr).toBe(0);
    expect((JSON.parse(rerun.stdout) as { downloaded: number }).downloaded).toBe(0);
    for (const file of files.filter((f) => f.path.endsWith('.safetensors'))) {
      const { header, size } = await readLocalHeader(join(dir, file.path));
      expect(header.tensors.map((t) => t.dtype)).toEqual(['F16']);
      expect(size - header.dataStart).toBe(12 * 1024 * 1024);
    }
    // The killed run's temp file is gone too.
    expect((await readdir(partial)).filter((n) => n.startsWith('convert-'))).toEqual([]);
  });
});

describe('pull ms://… --dtype', () => {
  const commit = 'e'.repeat(40);
  let server: FixtureServer;
  let work: string;
  beforeAll(async () => {
    server = await startFixtureServer();
    serveModelScope(server, [{ repoId: 'org/tts', commit, files: model.files.map((f) => ({ path: f.path, content: f.content })) }]);
    work = await mkdtemp(join(tmpdir(), 'mf-convert-ms-'));
  });
  afterAll(async () => {
    await server.close();
    await rm(work, { recursive: true, force: true });
  });

  it('refuses the modelscope layout with the reason; converts in place in a --local-dir, and into a derived snapshot with --layout hf', async () => {
    const env = { MODELSCOPE_DOMAIN: server.origin, MODELSCOPE_CACHE: join(work, 'ms') };
    const refused = await pull({ repo: 'ms://org/tts', env, dtype: 'f16' }).catch((e: unknown) => e);
    expect(isModelfetchError(refused, 'ERR_USAGE')).toBe(true);
    expect((refused as Error).message).toMatch(/modelscope library would take the converted files for the upstream ones/);
    expect(await readdir(join(work)).catch(() => [])).toEqual([]);
    const dir = join(work, 'local');
    const result = await pull({ repo: 'ms://org/tts', env, localDir: dir, dtype: 'f16' });
    expect(result.converted).toMatchObject({ filesConverted: 2 });
    const { header } = await readLocalHeader(join(dir, shardPaths[1]!));
    expect(header.tensors.map((t) => t.dtype)).toEqual(['F16', 'F16', 'F16']);
    const hubCache = join(work, 'hub');
    const derived = await pull({ repo: 'ms://org/tts', env, layout: 'hf', cacheDir: hubCache, dtype: 'f16' });
    expect(derived.converted).toMatchObject({ filesConverted: 2, derivedId: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(derived.path.startsWith(join(hubCache, 'models--org--tts', 'snapshots'))).toBe(true);
    expect((await readLocalHeader(join(derived.path, shardPaths[1]!))).header.tensors.map((t) => t.dtype)).toEqual(['F16', 'F16', 'F16']);
  });
});
