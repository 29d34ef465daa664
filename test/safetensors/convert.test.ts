import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RepoPaths } from '../../src/cache/layout.js';
import { removeFromCache } from '../../src/cache/remove.js';
import { scanCache } from '../../src/cache/scan.js';
import { verifyCache } from '../../src/cache/verify.js';
import { isModelfetchError } from '../../src/core/errors.js';
import { pull } from '../../src/pull/index.js';
import { convertSnapshot } from '../../src/safetensors/convert.js';
import { derivedSnapshotId, readDerivedRecord } from '../../src/safetensors/derived.js';
import { DTYPE_BYTES } from '../../src/safetensors/header.js';
import { inspect } from '../../src/safetensors/inspect.js';
import { readLocalHeader } from '../../src/safetensors/local-file.js';
import { runCli } from '../support/cli.js';
import { runProcess } from '../support/process.js';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';
import { interopPython, runPython } from '../support/python.js';
import { buildSafetensors, f32Tensor, shardedModel } from '../support/safetensors.js';
import { testTempDir } from '../support/temp.js';

const python = interopPython();
const model = shardedModel({ shards: 2, rows: 32, cols: 64 });
const shardPaths = [...model.shards.keys()];
/** An F16 tensor (every half bit pattern once) for F16 → BF16. */
const halves = Buffer.alloc(65536 * 2);
for (let h = 0; h < 65536; h++) halves.writeUInt16LE(h, h * 2);
const extraFile = buildSafetensors([{ name: 'all_halves', dtype: 'F16', shape: [256, 256], data: halves }, f32Tensor('scale', [0.5, 1e30])]);

async function writeFolder(dir: string, files: Array<{ path: string; content: Buffer }>): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const file of files) await writeFile(join(dir, file.path), file.content);
}

/**
 * Python's own reading of the converted files: the safetensors package loads each one (numpy for F16,
 * safe_open for BF16, which numpy has no type for); values are compared, bit for bit, with numpy's
 * astype(float16), and for bf16 with a reference rounding computed here from float64 distances.
 */
const PY_CHECK = String.raw`
import json, struct, sys
import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

def raw(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    return {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in header.items() if k != "__metadata__"}, header.get("__metadata__")

def as_f32(dtype, b):
    if dtype == "F32": return np.frombuffer(b, "<f4")
    if dtype == "F16": return np.frombuffer(b, "<f2").astype(np.float32)
    if dtype == "BF16": return (np.frombuffer(b, "<u2").astype(np.uint32) << 16).view(np.float32)
    raise ValueError(dtype)

def ref_bf16(x):
    u = x.view(np.uint32)
    sign = (u & 0x80000000) >> 16
    mag = u & 0x7FFFFFFF
    lo = mag & 0xFFFF0000
    hi = lo + 0x10000
    a = mag.view(np.float32).astype(np.float64)
    flo = lo.view(np.float32).astype(np.float64)
    fhi = np.where(hi >= 0x7F800000, 2.0 ** 128, hi.view(np.float32).astype(np.float64))
    with np.errstate(invalid="ignore"):
        dlo, dhi = a - flo, fhi - a
        up = (dhi < dlo) | ((dhi == dlo) & (((lo >> 16) & 1) == 1))
    out = (np.where(up, hi, lo) >> 16) | sign
    return np.where(np.isnan(x), 0x7FC0, out).astype(np.uint16)

report = {"files": 0, "tensors": 0, "mismatches": [], "metadata": []}
for src, dst, target in json.loads(sys.argv[1]):
    before, _ = raw(src)
    after, meta = raw(dst)
    report["metadata"].append(meta)
    report["files"] += 1
    if target == "F16":
        loaded = load_file(dst)
    else:
        with safe_open(dst, framework="numpy") as f:
            assert sorted(f.keys()) == sorted(after.keys())
            for k in f.keys():
                s = f.get_slice(k)
                assert s.get_dtype() == after[k][0] and list(s.get_shape()) == after[k][1], k
            loaded = {k: f.get_tensor(k) for k in f.keys() if after[k][0] != "BF16"}
    for name, (dtype, shape, b) in before.items():
        report["tensors"] += 1
        odtype, oshape, ob = after[name]
        if oshape != shape: report["mismatches"].append([name, "shape"])
        if dtype not in ("F32", "F16", "BF16") or odtype == dtype:
            if ob != b: report["mismatches"].append([name, "copied bytes differ"])
            continue
        x = as_f32(dtype, b)
        if target == "F16":
            want = x.astype(np.float16)
            got = loaded[name].reshape(-1)
            nan = np.isnan(want)
            bad = (~nan & (got.view(np.uint16) != want.view(np.uint16))) | (nan & ~np.isnan(got))
        else:
            want = ref_bf16(x)
            got = np.frombuffer(ob, "<u2")
            bad = got != want
        if bad.any():
            i = int(np.argmax(bad))
            report["mismatches"].append([name, float(x[i]), int(got.view(np.uint16)[i]), int(want.view(np.uint16)[i])])
print(json.dumps(report))
`;

describe('convert', () => {
  let work: string;
  let source: string;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'mf-convert-'));
    source = join(work, 'source');
    await writeFolder(source, [...model.files, { path: 'extra.safetensors', content: extraFile }]);
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  it('writes a new folder: F32 and BF16 tensors as F16, integers copied, aligned offsets, metadata kept with a note, index and config rewritten', async () => {
    const out = join(work, 'f16');
    const result = await convertSnapshot({ from: source, dtype: 'F16', out });
    expect(result).toMatchObject({ path: out, files: model.files.length + 1, filesConverted: 3, tensorsConverted: 2 * 3 + 1 });
    expect((await readdir(out)).sort()).toEqual([...model.files.map((f) => f.path), 'extra.safetensors'].sort());
    for (const shard of shardPaths) {
      const { header, size } = await readLocalHeader(join(out, shard));
      expect(header.dataStart % 8).toBe(0);
      for (const tensor of header.tensors) {
        expect(tensor.begin % DTYPE_BYTES[tensor.dtype]!).toBe(0);
        const original = model.shards.get(shard)!.find((t) => t.name === tensor.name)!;
        expect(tensor.dtype).toBe(original.dtype === 'I64' ? 'I64' : 'F16');
        expect(tensor.shape).toEqual(original.shape);
      }
      expect(header.metadata).toEqual({ format: 'pt', 'modelfetch.conversion': expect.stringMatching(/^BF16,F32->F16, round to nearest even/) as unknown });
      expect(size).toBe((await readFile(join(out, shard))).length);
    }
    const index = JSON.parse(await readFile(join(out, 'model.safetensors.index.json'), 'utf8')) as { metadata: { total_size: number }; weight_map: Record<string, string> };
    const original = JSON.parse(model.files.find((f) => f.path === 'model.safetensors.index.json')!.content.toString()) as typeof index;
    expect(index.weight_map).toEqual(original.weight_map);
    const f16Bytes = [...model.shards.values()].flat().reduce((n, t) => n + (t.dtype === 'I64' ? t.data.length : (t.data.length / DTYPE_BYTES[t.dtype]!) * 2), 0);
    expect(index.metadata.total_size).toBe(f16Bytes);
    const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8')) as { torch_dtype: string; text_config: { torch_dtype: string; hidden: number }; architectures: string[] };
    expect(config).toEqual({ architectures: ['TinyTts'], torch_dtype: 'float16', text_config: { torch_dtype: 'float16', hidden: 64 } });
    expect(await readFile(join(out, 'README.md'))).toEqual(model.files.find((f) => f.path === 'README.md')!.content);
    // inspect predicted the exact sizes.
    const predicted = await inspect({ target: source });
    const written = await inspect({ target: out });
    expect(written.bytes).toBe(predicted.sizeAfter.F16);
    expect(written.parameters).toBe(predicted.parameters);
  });

  it('leaves --keep tensors and files with nothing to convert as they are', async () => {
    const out = join(work, 'keep');
    const result = await convertSnapshot({ from: source, dtype: 'BF16', out, keep: ['*norm*', '*.bias'] });
    const { header } = await readLocalHeader(join(out, shardPaths[0]!));
    expect(Object.fromEntries(header.tensors.map((t) => [t.name, t.dtype]))).toEqual({ 'model.layers.1.mlp.weight': 'BF16', 'model.layers.1.mlp.bias': 'F32', 'model.layers.1.norm.weight': 'BF16', 'model.position_ids': 'I64' });
    expect(result.tensorsConverted).toBe(2 + 2);
  });

  it('refuses a hostile shard before writing anything', async () => {
    const bad = join(work, 'bad');
    const hostile = buildSafetensors([f32Tensor('w', [1, 2])], undefined, '{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}');
    await writeFolder(bad, [...model.files.filter((f) => f.path !== shardPaths[1]), { path: shardPaths[1]!, content: hostile }]);
    const out = join(work, 'never');
    const error = await convertSnapshot({ from: bad, dtype: 'F16', out }).catch((e: unknown) => e);
    expect(isModelfetchError(error, 'ERR_BAD_SAFETENSORS')).toBe(true);
    expect((error as Error).message).toContain(`${shardPaths[1]} is not a valid safetensors file`);
    expect((await readdir(work)).filter((name) => name.includes('never'))).toEqual([]);
    // An index naming a shard that is not there is refused too.
    await rm(join(bad, shardPaths[1]!));
    expect(isModelfetchError(await convertSnapshot({ from: bad, dtype: 'F16', out }).catch((e: unknown) => e), 'ERR_INCOMPLETE')).toBe(true);
  });

  it.skipIf(!python)('is read by the Python safetensors package; values equal numpy astype(float16) and an independent bf16 rounding', async () => {
    const pairs: Array<[string, string, string]> = [];
    for (const dtype of ['F16', 'BF16'] as const) {
      const out = join(work, `py-${dtype}`);
      await convertSnapshot({ from: source, dtype, out });
      for (const path of [...shardPaths, 'extra.safetensors']) pairs.push([join(source, path), join(out, path), dtype]);
    }
    const report = JSON.parse(await runPythonWithArgs(python!, pairs)) as { files: number; tensors: number; mismatches: unknown[] };
    expect(report.mismatches).toEqual([]);
    expect(report.files).toBe(6);
    expect(report.tensors).toBe(2 * (2 * 3 + 1 + 2));
  });
});

async function runPythonWithArgs(python: string, pairs: Array<[string, string, string]>): Promise<string> {
  const run = await runProcess(python, ['-c', PY_CHECK, JSON.stringify(pairs)], { PATH: process.env.PATH, HOME: process.env.HOME });
  if (run.code !== 0) throw new Error(`python exited ${run.code}: ${run.stderr.slice(-3000)}`);
  return run.stdout;
}

describe('a derived snapshot in the cache', () => {
  let hub: FixtureHub;
  let cacheDir: string;
  beforeAll(async () => {
    hub = await startFixtureHub({ repos: [{ repoId: 'org/tts', files: model.files.map((f) => ({ path: f.path, content: f.content, lfs: f.path.endsWith('.safetensors') })) }] });
    cacheDir = await mkdtemp(join(tmpdir(), 'mf-derived-'));
  });
  afterAll(async () => {
    await hub.close();
    await rm(cacheDir, { recursive: true, force: true });
  });

  it('pull --dtype writes it beside the upstream commit under an id that cannot be a commit; ls/verify see it, rm removes only its own blobs', async () => {
    const commit = hub.commitOf('org/tts');
    const repo = new RepoPaths(cacheDir, 'model', 'org/tts');
    const result = await pull({ repo: 'org/tts', endpoint: hub.endpoint, cacheDir, env: {}, dtype: 'f16' });
    const id = derivedSnapshotId(commit, 'F16');
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    expect(result.path).toBe(repo.snapshotDir(id));
    expect(result.converted).toMatchObject({ derivedId: id, reused: false, filesConverted: 2 });
    expect(await readDerivedRecord(repo, id)).toMatchObject({ derivedFrom: commit, dtype: 'F16' });
    const again = await pull({ repo: `org/tts@${commit}`, cacheDir, env: {}, dtype: 'f16' });
    expect(again.converted).toMatchObject({ reused: true, path: result.path });

    const scan = await scanCache({ cacheDir });
    expect(scan.issues).toEqual([]);
    const revisions = scan.repos[0]!.revisions;
    expect(revisions.map((r) => [r.commit, r.refs]).sort()).toEqual([[commit, ['main']], [id, []]].sort());
    const upstream = revisions.find((r) => r.commit === commit)!;
    const derived = revisions.find((r) => r.commit === id)!;
    expect(derived.files.find((f) => f.path === 'README.md')!.blob).toBe(upstream.files.find((f) => f.path === 'README.md')!.blob);
    expect(derived.files.find((f) => f.path === shardPaths[0])!.blob).not.toBe(upstream.files.find((f) => f.path === shardPaths[0])!.blob);
    expect((await verifyCache({ cacheDir })).problems).toEqual([]);

    if (python) {
      const py = JSON.parse(
        await runPython(
          python,
          `
import json, sys
from huggingface_hub import scan_cache_dir, snapshot_download, try_to_load_from_cache
info = scan_cache_dir()
print(json.dumps({"warnings": [str(w) for w in info.warnings],
  "revisions": sorted([[v.commit_hash, sorted(v.refs)] for r in info.repos for v in r.revisions]),
  "snapshot": snapshot_download("org/tts", local_files_only=True),
  "config": try_to_load_from_cache("org/tts", "config.json")}))
`,
          { HF_HUB_CACHE: cacheDir, HF_HUB_OFFLINE: '1' },
        ),
      ) as { warnings: string[]; revisions: Array<[string, string[]]>; snapshot: string; config: string };
      expect(py.warnings).toEqual([]);
      expect(py.revisions).toEqual([[commit, ['main']], [id, []]].sort());
      // huggingface_hub resolves the model to the upstream commit, never to the derived snapshot.
      expect(py.snapshot).toBe(repo.snapshotDir(commit));
      expect(py.config).toBe(join(repo.snapshotDir(commit), 'config.json'));
    }

    const removed = await removeFromCache({ cacheDir, repoId: 'org/tts', revision: id.slice(0, 12) });
    expect(removed).toMatchObject({ commits: [id], blobs: 4 });
    const after = await scanCache({ cacheDir });
    expect(after.repos[0]!.revisions.map((r) => r.commit)).toEqual([commit]);
    expect((await verifyCache({ cacheDir })).problems).toEqual([]);
  });

  it('convert org/name and pull --dtype from the CLI print the derived snapshot, ls labels it; a plain folder needs --out', async () => {
    const run = await runCli(['convert', 'org/tts', '--dtype', 'bf16', '--cache-dir', cacheDir], { HF_ENDPOINT: hub.endpoint });
    expect(run.stderr).toMatch(/converted 4 tensors in 2 file\(s\) to BF16/);
    expect(run.code).toBe(0);
    expect(run.stdout.trim()).toBe(new RepoPaths(cacheDir, 'model', 'org/tts').snapshotDir(derivedSnapshotId(hub.commitOf('org/tts'), 'BF16')));
    const pulled = await runCli(['pull', 'org/tts', '--dtype', 'f16', '--quiet', '--cache-dir', cacheDir], { HF_ENDPOINT: hub.endpoint });
    expect(pulled.code).toBe(0);
    expect(pulled.stdout.trim()).toBe(new RepoPaths(cacheDir, 'model', 'org/tts').snapshotDir(derivedSnapshotId(hub.commitOf('org/tts'), 'F16')));
    const ls = await runCli(['ls', 'org/tts', '--cache-dir', cacheDir], {});
    expect(ls.stdout).toContain(`revision ${derivedSnapshotId(hub.commitOf('org/tts'), 'BF16')} [derived: BF16 of ${hub.commitOf('org/tts').slice(0, 12)}]`);
    expect(ls.stdout).toContain(`revision ${hub.commitOf('org/tts')} (main): `);
    const plain = await testTempDir('mf-plain-');
    const refused = await runCli(['convert', plain, '--dtype', 'f16'], {});
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/is not a snapshot in a hub cache \[ERR_USAGE\]\n {2}Give --out DIR/);
  });
});
