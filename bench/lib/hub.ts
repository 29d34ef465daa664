import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { startFixtureHub, type FixtureFileSpec, type FixtureHub } from '../../test/support/fixture-hub.js';
import type { Fault } from '../../test/support/fixture-server.js';
import type { BenchContext } from './bench-case.js';
import { lastJson } from './modelfetch-cli.js';
import { assertOk, runMeasured, type RunResult } from './proc.js';

/** The fixture Hub for the pull cases, and the three ways the bench pulls a repo from it. */

/** A Hub whose every response (API, resolve, CDN) is paced like a distant CDN. */
export async function startPacedHub(repoId: string, files: FixtureFileSpec[], pace: Fault): Promise<FixtureHub> {
  const hub = await startFixtureHub({ repos: [{ repoId, files }] });
  if (pace.latencyMs || pace.throttleBytesPerSec) {
    hub.hub.addFault({ fault: pace });
    hub.cdn.addFault({ fault: pace });
  }
  return hub;
}

/** `modelfetch pull` into `cacheDir`; returns the run and its --json result. */
export async function modelfetchPull(ctx: BenchContext, hub: Pick<FixtureHub, 'endpoint'>, repo: string, cacheDir: string, extra: string[] = []): Promise<{ run: RunResult; result: Record<string, unknown> }> {
  const args = ['pull', repo, '--cache-dir', cacheDir, '--endpoint', hub.endpoint, '--json', ...extra];
  const run = assertOk(`modelfetch ${args.join(' ')}`, await ctx.cli.run(args, { env: { ...process.env, HF_HUB_OFFLINE: '' } }));
  const result = lastJson(run.stdout);
  if (!result || result.ok !== true) throw new Error(`modelfetch pull printed no result: ${run.stdout.slice(0, 300)}`);
  return { run, result };
}

/** The peer: @huggingface/hub's snapshotDownload in its own process, against the same Hub. */
export async function hfHubSnapshot(ctx: BenchContext, hub: FixtureHub, repo: string, cacheDir: string): Promise<RunResult> {
  const script = `import { snapshotDownload } from '@huggingface/hub';
process.stdout.write(await snapshotDownload({ repo: ${JSON.stringify(repo)}, cacheDir: ${JSON.stringify(cacheDir)}, hubUrl: ${JSON.stringify(hub.endpoint)} }));`;
  return assertOk('@huggingface/hub snapshotDownload', await runMeasured(process.execPath, ['--input-type=module', '-e', script], { cwd: ctx.root }));
}

/** Counts the regular files under a snapshot folder (links followed) and their total size. */
export async function snapshotTotals(dir: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  for (const entry of await readdir(dir, { recursive: true })) {
    const info = await stat(join(dir, entry));
    if (!info.isFile()) continue;
    files += 1;
    bytes += info.size;
  }
  return { files, bytes };
}
