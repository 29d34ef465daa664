import { createHash } from 'node:crypto';
import { lstat, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { downloadFileToCacheDir, scanCacheDir, snapshotDownload } from '@huggingface/hub';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { pull, type PullOptions } from '../../src/pull/index.js';
import { runCli } from '../support/cli.js';
import { startFixtureHub, type FixtureHub, type FixtureFileSpec } from '../support/fixture-hub.js';
import { hasTransformers, interopPython, runPython } from '../support/python.js';
import { testTempDir } from '../support/temp.js';

/**
 * The cache works both ways, checked with the real clients: Python huggingface_hub (+ transformers)
 * and @huggingface/hub read what modelfetch wrote, offline, and find the same bytes; modelfetch reads
 * what they wrote without fetching anything again.
 */

const TOKENIZER = {
  version: '1.0',
  truncation: null,
  padding: null,
  added_tokens: [],
  normalizer: null,
  pre_tokenizer: { type: 'Whitespace' },
  post_processor: null,
  decoder: null,
  model: { type: 'WordLevel', vocab: { '[UNK]': 0, hello: 1, world: 2 }, unk_token: '[UNK]' },
};

const files: FixtureFileSpec[] = [
  { path: 'config.json', content: JSON.stringify({ model_type: 'gpt2', n_layer: 2, n_head: 2, n_embd: 8, vocab_size: 3 }) },
  { path: 'tokenizer.json', content: JSON.stringify(TOKENIZER) },
  { path: 'tokenizer_config.json', content: JSON.stringify({ tokenizer_class: 'PreTrainedTokenizerFast', unk_token: '[UNK]' }) },
  { path: 'model.safetensors', size: 1536 * 1024 + 3, lfs: true },
  { path: 'extra/notes.txt', content: 'nested file\n' },
];

const python = interopPython();
const DEAD_ENDPOINT = 'http://127.0.0.1:9';

let hub: FixtureHub;
let dir: string;

beforeAll(async () => {
  hub = await startFixtureHub({ repos: [{ repoId: 'org/tiny-gpt', files }, { repoId: 'org/js-written', files }] });
});
afterAll(() => hub.close());
beforeEach(async () => {
  dir = await testTempDir('mf-interop-');
  hub.resetLogs();
});

const sha256Of = async (path: string) => createHash('sha256').update(await readFile(path)).digest('hex');
const options = (repo: string, extra: Partial<PullOptions> = {}): PullOptions => ({ repo, cacheDir: join(dir, 'hub'), endpoint: hub.endpoint, env: {}, ...extra });

describe.skipIf(!python)('Python huggingface_hub reads a cache written by modelfetch, offline', () => {
  it('finds the same snapshot and bytes, and transformers loads config and tokenizer', async () => {
    const result = await pull(options('org/tiny-gpt'));
    const script = `
import hashlib, json
from huggingface_hub import snapshot_download, hf_hub_download, scan_cache_dir
out = {"snapshot": snapshot_download("org/tiny-gpt"), "files": {}}
for name in ${JSON.stringify(files.map((f) => f.path))}:
    with open(hf_hub_download("org/tiny-gpt", name), "rb") as f:
        out["files"][name] = hashlib.sha256(f.read()).hexdigest()
info = scan_cache_dir()
repo = [r for r in info.repos if r.repo_id == "org/tiny-gpt"][0]
out["scan"] = {"files": repo.nb_files, "revisions": [r.commit_hash for r in repo.revisions], "refs": sorted(repo.refs), "warnings": [str(w) for w in info.warnings]}
print(json.dumps(out))
`;
    const env = { HF_HUB_CACHE: join(dir, 'hub'), HF_HUB_OFFLINE: '1', HF_ENDPOINT: DEAD_ENDPOINT };
    const out = JSON.parse(await runPython(python!, script, env)) as { snapshot: string; files: Record<string, string>; scan: { files: number; revisions: string[]; refs: string[]; warnings: string[] } };
    expect(out.snapshot).toBe(result.path);
    for (const file of files) expect(out.files[file.path]).toBe(await sha256Of(join(result.path, file.path)));
    expect(out.files['model.safetensors']).toBe(hub.file('org/tiny-gpt', 'model.safetensors').sha256);
    expect(out.scan).toEqual({ files: files.length, revisions: [result.commit], refs: ['main'], warnings: [] });

    if (hasTransformers(python!)) {
      const loaded = await runPython(
        python!,
        `
import json
from transformers import AutoConfig, AutoTokenizer
config = AutoConfig.from_pretrained("org/tiny-gpt", local_files_only=True)
tok = AutoTokenizer.from_pretrained("org/tiny-gpt", local_files_only=True)
print(json.dumps({"model_type": config.model_type, "n_layer": config.n_layer, "ids": tok("hello world")["input_ids"]}))
`,
        env,
      );
      expect(JSON.parse(loaded.trim().split('\n').pop()!)).toEqual({ model_type: 'gpt2', n_layer: 2, ids: [1, 2] });
    } else if (process.env.MODELFETCH_REQUIRE_TOOLS === '1') {
      throw new Error('transformers is required (MODELFETCH_REQUIRE_TOOLS=1); run scripts/install-system-deps.sh');
    }
  });

  it('a local dir written by modelfetch is up to date for huggingface_hub: it downloads nothing', async () => {
    const local = join(dir, 'local');
    const run = await runCli(['pull', 'org/tiny-gpt', '--local-dir', local, '--quiet'], { HF_ENDPOINT: hub.endpoint });
    expect(run.code).toBe(0);
    expect(run.stdout.trim()).toBe(local);
    expect((await lstat(join(local, 'model.safetensors'))).isSymbolicLink()).toBe(false);
    const metadata = (await readFile(join(local, '.cache/huggingface/download/model.safetensors.metadata'), 'utf8')).split('\n');
    expect(metadata[0]).toBe(hub.commitOf('org/tiny-gpt'));
    expect(metadata[1]).toBe(hub.file('org/tiny-gpt', 'model.safetensors').sha256);
    expect((await readFile(join(local, '.cache/huggingface/download/extra/notes.txt.metadata'), 'utf8')).split('\n')[1]).toBe(hub.file('org/tiny-gpt', 'extra/notes.txt').gitSha1);

    hub.resetLogs();
    const out = await runPython(python!, `from huggingface_hub import snapshot_download; print(snapshot_download("org/tiny-gpt", local_dir=${JSON.stringify(local)}))`, { HF_ENDPOINT: hub.endpoint });
    expect(out.trim()).toBe(local);
    expect(hub.cdn.requests).toHaveLength(0);
    expect(hub.hub.requests.filter((r) => r.method === 'GET' && r.url.includes('/resolve/'))).toHaveLength(0);

    // And a second modelfetch pull into it is a cache hit.
    const again = await pull({ repo: 'org/tiny-gpt', localDir: local, endpoint: hub.endpoint, env: {} });
    expect(again).toMatchObject({ files: files.length, cacheHits: files.length, downloaded: 0 });
  });

  it('modelfetch reads a local dir written by huggingface_hub without fetching again', async () => {
    const local = join(dir, 'py-local');
    await runPython(python!, `from huggingface_hub import snapshot_download; snapshot_download("org/tiny-gpt", local_dir=${JSON.stringify(local)})`, { HF_ENDPOINT: hub.endpoint });
    hub.resetLogs();
    const result = await pull({ repo: 'org/tiny-gpt', localDir: local, endpoint: hub.endpoint, env: {} });
    expect(result).toMatchObject({ files: files.length, cacheHits: files.length, downloaded: 0 });
    expect(hub.cdn.requests).toHaveLength(0);
  });
});

describe('@huggingface/hub and modelfetch share a cache', () => {
  it('@huggingface/hub scans a cache written by modelfetch and finds every file at the commit', async () => {
    const result = await pull(options('org/tiny-gpt'));
    const info = await scanCacheDir(join(dir, 'hub'));
    const repo = info.repos.find((r) => r.id.name === 'org/tiny-gpt');
    expect(info.warnings).toEqual([]);
    expect(repo?.revisions.map((r) => r.commitOid)).toEqual([result.commit]);
    expect(repo?.revisions[0]?.refs).toEqual(['main']);
    // Its scan lists the top level of a snapshot only.
    const cached = new Map(repo!.revisions[0]!.files.map((f) => [f.path.slice(result.path.length + 1), f.blob.size]));
    for (const file of files.filter((f) => !f.path.includes('/'))) expect(cached.get(file.path)).toBe(hub.file('org/tiny-gpt', file.path).size);
    // Pinned to the commit, its downloader finds every file (nested too) in the cache without the network.
    for (const file of files) {
      const found = await downloadFileToCacheDir({ repo: 'org/tiny-gpt', path: file.path, revision: result.commit, cacheDir: join(dir, 'hub'), hubUrl: DEAD_ENDPOINT });
      expect(found).toBe(join(result.path, file.path));
      expect(await sha256Of(found)).toBe(hub.file('org/tiny-gpt', file.path).sha256);
    }
  });

  it('modelfetch reads a cache written by @huggingface/hub without fetching anything', async () => {
    const cacheDir = join(dir, 'hub');
    const quiet = vi.spyOn(console, 'debug').mockImplementation(() => {});
    const path = await snapshotDownload({ repo: 'org/js-written', cacheDir, hubUrl: hub.endpoint }).finally(() => quiet.mockRestore());
    hub.resetLogs();
    const result = await pull(options('org/js-written'));
    expect(result.path).toBe(path);
    expect(result).toMatchObject({ files: files.length, cacheHits: files.length, downloaded: 0 });
    expect(hub.cdn.requests).toHaveLength(0);
    expect(hub.hub.requests.filter((r) => r.url.includes('/resolve/'))).toHaveLength(0);
  });
});
