import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gcCache } from '../../src/cache/gc.js';
import { scanCache } from '../../src/cache/scan.js';
import { verifyCache } from '../../src/cache/verify.js';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';
import { interopPython, runPython } from '../support/python.js';

const python = interopPython();

/** Python's own view of a cache: huggingface_hub.scan_cache_dir(), reduced to what both sides report. */
const PY_SCAN = `
import json, sys
from huggingface_hub import scan_cache_dir
info = scan_cache_dir(sys.argv[1] if len(sys.argv) > 1 else None)
print(json.dumps({
  "size": info.size_on_disk,
  "warnings": [str(w) for w in info.warnings],
  "repos": sorted([{"id": r.repo_id, "size": r.size_on_disk, "files": r.nb_files,
    "revisions": sorted([{"commit": v.commit_hash, "refs": sorted(v.refs), "files": v.nb_files, "size": v.size_on_disk} for v in r.revisions], key=lambda v: v["commit"])}
    for r in info.repos], key=lambda r: r["id"]),
}))
`;

describe.skipIf(!python)('caches written by Python huggingface_hub', () => {
  let hub: FixtureHub;
  let cacheDir: string;
  beforeAll(async () => {
    const shared = { path: 'model.safetensors', size: 1024 * 1024 + 3, lfs: true };
    hub = await startFixtureHub({
      repos: [
        { repoId: 'org/two-revs', branches: { main: [shared, { path: 'config.json', content: '{"v":2}' }], v1: [shared, { path: 'config.json', content: '{"v":1}' }] } },
        { repoId: 'org/other', files: [{ path: 'README.md', content: '# hi' }] },
      ],
    });
    cacheDir = await mkdtemp(join(tmpdir(), 'mf-pyinterop-'));
    const env = { HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: cacheDir };
    await runPython(python!, 'from huggingface_hub import snapshot_download as s; s("org/two-revs"); s("org/two-revs", revision="v1"); s("org/other")', env);
  });
  afterAll(async () => {
    await hub.close();
    if (cacheDir) await rm(cacheDir, { recursive: true, force: true });
  });

  it('scans them as huggingface_hub does: same repos, revisions, refs, file counts and sizes; verify passes', async () => {
    const py = JSON.parse(await runPython(python!, `${PY_SCAN}`, { HF_HUB_CACHE: cacheDir })) as {
      size: number;
      warnings: string[];
      repos: Array<{ id: string; size: number; files: number; revisions: Array<{ commit: string; refs: string[]; files: number; size: number }> }>;
    };
    const ours = await scanCache({ cacheDir });
    expect(ours.issues).toEqual([]);
    expect(ours.sizeOnDisk).toBe(py.size);
    expect(
      ours.repos.map((r) => ({
        id: r.repoId,
        size: r.sizeOnDisk,
        files: r.nbFiles,
        revisions: r.revisions.map((v) => ({ commit: v.commit, refs: v.refs, files: v.nbFiles, size: v.sizeOnDisk })).sort((a, b) => a.commit.localeCompare(b.commit)),
      })),
    ).toEqual(py.repos);
    const report = await verifyCache({ cacheDir });
    expect(report.problems).toEqual([]);
    expect(report.blobsChecked).toBe(ours.repos.reduce((n, r) => n + r.blobs.length, 0));
    expect(report.bytesChecked).toBe(py.size);
  });

  it('leaves a cache huggingface_hub still reads cleanly after removing a revision that shares a blob', async () => {
    const v1 = hub.commitOf('org/two-revs', 'v1');
    const main = hub.commitOf('org/two-revs', 'main');
    const report = await gcCache({ cacheDir, maxSize: (await scanCache({ cacheDir })).sizeOnDisk - 1, keep: ['org/other'], isInUse: async (_repo, commit) => commit === main });
    expect(report.revisions.map((r) => r.commit)).toEqual([v1]);
    const py = JSON.parse(await runPython(python!, PY_SCAN, { HF_HUB_CACHE: cacheDir })) as { warnings: string[]; repos: Array<{ id: string; revisions: Array<{ commit: string; refs: string[] }> }> };
    expect(py.warnings).toEqual([]);
    expect(py.repos.find((r) => r.id === 'org/two-revs')!.revisions).toMatchObject([{ commit: main, refs: ['main'] }]);
    expect((await verifyCache({ cacheDir })).ok).toBe(true);
  });
});
