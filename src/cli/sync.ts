import type { SyncReport } from '../preload/sync.js';
import type { Command } from 'commander';
import type { CliIo } from './main.js';
import { createProgressRenderer, progressModeFor } from './progress.js';
import { examples } from './examples.js';

export interface SyncFlags {
  lock: string;
  manifest?: string;
  frozen?: boolean;
  check?: boolean;
  verifyKey?: string;
  endpoint?: string;
  token?: string;
  cacheDir?: string;
  ignoreDiskSpace?: boolean;
}

/** Adds the options `sync` and `run` share. */
export function addSyncOptions(command: Command, io: CliIo): Command {
  return command
    .option('--lock <file>', 'lockfile (MODELFETCH_LOCK sets the default)', io.env.MODELFETCH_LOCK || 'modelfetch.lock.json')
    .option('--manifest <file>', 'manifest checked by --frozen (default: modelfetch.yaml beside the lockfile)')
    .option('--frozen', 'fail when the manifest changed since the lockfile was made')
    .option('--verify-key <public>', 'refuse the lockfile unless {lock}.sig is a valid signature by this key')
    .option('--endpoint <url>', 'hub or mirror to fetch from (default HF_ENDPOINT or huggingface.co); the lockfile decides what is accepted')
    .option('--token <token>', 'Hugging Face token (default HF_TOKEN or the token file)')
    .option('--cache-dir <dir>', 'hub cache (default HF_HUB_CACHE, HF_HOME/hub or ~/.cache/huggingface/hub)')
    .option('--ignore-disk-space', 'skip the free-space check made before the first byte');
}

/** Runs syncLockfile for the CLI flags, progress on stderr; returns the cache dir it synced. `onSynced` sees the report (run uses it to hold the synced revisions while its command runs). */
export async function syncFromFlags(flags: SyncFlags, io: CliIo, onSynced?: (cacheDir: string, report: SyncReport) => Promise<void>): Promise<string> {
  const [{ syncLockfile }, { resolveCacheDir }] = await Promise.all([import('../preload/sync.js'), import('../core/env.js')]);
  const cacheDir = flags.cacheDir ?? resolveCacheDir(io.env);
  const renderer = createProgressRenderer(io.stderr, progressModeFor(io.stderr, false));
  const log = (line: string): void => {
    renderer.finish();
    io.stderr.write(`modelfetch: ${line}\n`);
  };
  const report = await syncLockfile({
    lockPath: flags.lock,
    cacheDir,
    env: io.env,
    log,
    onProgress: renderer.onProgress,
    ...(flags.manifest !== undefined && { manifestPath: flags.manifest }),
    ...(flags.frozen && { frozen: true }),
    ...(flags.check && { check: true }),
    ...(flags.verifyKey !== undefined && { verifyKey: flags.verifyKey }),
    ...(flags.endpoint !== undefined && { endpoint: flags.endpoint }),
    ...(flags.token !== undefined && { token: flags.token }),
    ...(flags.ignoreDiskSpace && { ignoreDiskSpace: true }),
  }).finally(renderer.finish);
  log(`${report.files} file${report.files === 1 ? '' : 's'} of ${report.models} model${report.models === 1 ? '' : 's'} in place (${report.fetched} fetched)`);
  await onSynced?.(cacheDir, report);
  return cacheDir;
}

export function registerSyncCommand(program: Command, io: CliIo): void {
  addSyncOptions(program.command('sync').description('Make the cache hold exactly the files the lockfile pins (resumable, verified; no network when all are present)'), io)
    .addHelpText('after', examples(['modelfetch sync                        # fetch what the lockfile pins and the cache lacks', 'modelfetch sync --check --frozen       # health check: exit 8 if anything is missing']))
    .option('--check', 'never download: fail when a file is missing or corrupt (for health checks)')
    .action(async (flags: SyncFlags) => {
      await syncFromFlags(flags, io);
    });
}
