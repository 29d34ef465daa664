import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RepoPaths } from '../../../src/cache/layout.js';
import { startFixtureHub } from '../../support/fixture-hub.js';

/** The repo the chaos run pulls, on a fixture hub whose LFS bytes also come through the hub (so through the proxy). */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const CHAOS_REPO = 'chaos/model';

const FILES = [
  { path: 'model-00001-of-00002.safetensors', size: 6 * 1024 * 1024 },
  { path: 'model-00002-of-00002.safetensors', size: 4 * 1024 * 1024 + 12_345 },
  { path: 'tokenizer.json', size: 1536 * 1024 },
  { path: 'sub/dir/vocab.txt', size: 300_000, lfs: false },
  { path: 'config.json', content: '{"architectures":["Chaos"],"hidden_size":8}' },
  { path: 'README.md', content: '# chaos\n' },
];

export interface ChaosHub {
  readonly port: number;
  readonly files: Array<{ path: string; size: number; sha256: string; blob: string }>;
  readonly totalBytes: number;
  env(origin: string, cacheDir: string): Record<string, string>;
  pullArgs(cacheDir: string): string[];
  /** Corrupts one byte of the next LFS body the hub sends. */
  corruptOnce(): void;
  /** Paths of the snapshot whose content is missing or wrong. */
  compareSnapshot(cacheDir: string): Promise<string[]>;
  /** Removes some files (blob and snapshot entry), or the whole repo folder, so the next pull has work; returns the complete-blob bytes removed. */
  dropSome(cacheDir: string, random: () => number): Promise<number>;
  /** Runs `modelfetch verify` when the command exists; undefined otherwise. */
  verifyCommand(cacheDir: string, run: (args: string[]) => Promise<number>): Promise<number | undefined>;
  bodyBytesServed(): number;
  close(): Promise<void>;
}

export async function startChaosHub(): Promise<ChaosHub> {
  const hub = await startFixtureHub({ repos: [{ repoId: CHAOS_REPO, files: FILES }], lfsRedirect: 'relative' });
  const commit = hub.commitOf(CHAOS_REPO);
  const files = FILES.map((spec) => {
    const file = hub.file(CHAOS_REPO, spec.path);
    return { path: file.path, size: file.size, sha256: file.sha256, blob: file.lfs ? file.sha256 : file.gitSha1 };
  });
  const paths = (cacheDir: string): RepoPaths => new RepoPaths(cacheDir, 'model', CHAOS_REPO);
  return {
    port: hub.hub.port,
    files,
    totalBytes: files.reduce((sum, f) => sum + f.size, 0),
    env: (origin, cacheDir) => ({ HF_ENDPOINT: origin, HF_HUB_CACHE: cacheDir, HF_TOKEN: '' }),
    pullArgs: (cacheDir) => ['pull', CHAOS_REPO, '--cache-dir', cacheDir, '--quiet'],
    corruptOnce: () => {
      const at = Math.floor(Math.random() * 1024 * 1024);
      hub.hub.addFault({ times: 1, match: (req) => (req.url ?? '').includes('/cdn-relative/'), fault: { corruptOffsets: [at] } });
    },
    compareSnapshot: async (cacheDir) => {
      const wrong: string[] = [];
      for (const file of files) {
        const bytes = await readFile(paths(cacheDir).snapshotFile(commit, file.path)).catch(() => undefined);
        if (!bytes) wrong.push(`${file.path} missing`);
        else if (createHash('sha256').update(bytes).digest('hex') !== file.sha256) wrong.push(`${file.path} has wrong bytes`);
      }
      return wrong;
    },
    dropSome: async (cacheDir, random) => {
      // Counts only complete blobs that really go: those bytes a perfect client must fetch again.
      const repo = paths(cacheDir);
      const wipe = random() < 0.3;
      let dropped = 0;
      for (const file of files) {
        if (!wipe && random() < 0.5) continue;
        const blob = join(repo.blobsDir, file.blob);
        dropped += await stat(blob).then((s) => s.size, () => 0);
        await rm(repo.snapshotFile(commit, file.path), { force: true });
        await rm(blob, { force: true });
      }
      if (wipe) await rm(repo.dir, { recursive: true, force: true });
      return dropped;
    },
    verifyCommand: async (cacheDir, run) => (existsSync(join(ROOT, 'src/cli/verify.ts')) ? run(['verify', '--cache-dir', cacheDir]) : undefined),
    bodyBytesServed: () => hub.hub.bodyBytesServed() + hub.cdn.bodyBytesServed(),
    close: () => hub.close(),
  };
}
