import type { Command } from 'commander';
import { ModelfetchError } from '../core/errors.js';
import type { PullOptions, PullPlan, PullResult } from '../pull/index.js';
import { checkPullFlags, parseConnections } from '../pull/options.js';
import type { RepoType } from '../core/types.js';
import { abortOnInterrupt, untilInterrupted } from './interrupt.js';
import type { CliIo } from './main.js';
import { formatBytes } from '../core/format-bytes.js';
import { createProgressRenderer, progressModeFor, type ProgressRenderer } from './progress.js';
import { describeConversion } from './convert.js';
import { examples } from './examples.js';
import { hfEnvTimeouts, progressBarsDisabled } from '../core/hf-env.js';
import { resolveHfEndpoint } from '../core/env.js';
import { parsePort, parseWholeNumber, usageError } from './units.js';

/** `modelfetch pull org/name[@rev] [FILES…]`: prints the snapshot path on stdout, progress on stderr. */

export interface PullFlags {
  include?: string[];
  exclude?: string[];
  repoType: string;
  cacheDir?: string;
  localDir?: string;
  connections?: string;
  offline?: boolean;
  check?: boolean;
  endpoint?: string;
  token?: string;
  json?: boolean;
  quiet?: boolean;
  source?: string;
  layout?: string;
  dtype?: string;
  keep?: string[];
  ignoreDiskSpace?: boolean;
  forceDownload?: boolean;
  /** commander's negation of --no-xet: false when given. */
  xet?: boolean;
  swarm?: string;
  swarmPort?: string;
  seedTime?: string;
}

/** Pull options from the command's flags; `download` (hf download's flags) maps onto these too. Checked by the library's own flag checks. */
export function toOptions(repo: string, files: string[], flags: PullFlags, io: CliIo): PullOptions {
  const options: PullOptions = {
    repo,
    repoType: flags.repoType as RepoType,
    ...(flags.source && { source: flags.source as 'hf' | 'modelscope' }),
    ...(flags.layout && { layout: flags.layout as 'hf' | 'modelscope' }),
    env: io.env,
    ...(files.length && { files }),
    ...(flags.include && { include: flags.include }),
    ...(flags.exclude && { exclude: flags.exclude }),
    ...(flags.cacheDir && { cacheDir: flags.cacheDir }),
    ...(flags.localDir && { localDir: flags.localDir }),
    ...(flags.connections !== undefined && { connections: parseConnections(flags.connections) }),
    ...(flags.offline && { offline: true }),
    ...(flags.check && { check: true }),
    ...(flags.endpoint && { endpoint: flags.endpoint }),
    ...(flags.token && { token: flags.token }),
    ...(flags.dtype && { dtype: flags.dtype }),
    ...(flags.keep && { keep: flags.keep }),
    ...(flags.ignoreDiskSpace && { ignoreDiskSpace: true }),
    ...(flags.forceDownload && { forceDownload: true }),
    onWarning: (message) => void io.stderr.write(`modelfetch: warning: ${message}\n`),
    ...(flags.xet === false && { xet: false }),
    onXetFallback: (line) => void io.stderr.write(line),
  };
  checkPullFlags(options);
  const { apiTimeoutMs, stallTimeoutMs } = hfEnvTimeouts(io.env);
  return { ...options, ...(apiTimeoutMs !== undefined && { apiTimeoutMs }), ...(stallTimeoutMs !== undefined && { transfer: { stallTimeoutMs } }) };
}

function describePlan(plan: PullPlan): string {
  if (plan.toFetch === 0) return `${plan.repoId}@${plan.commit.slice(0, 12)}: all ${plan.files} files cached\n`;
  return `${plan.repoId}@${plan.commit.slice(0, 12)}: fetching ${plan.toFetch} of ${plan.files} files (${formatBytes(plan.bytesToFetch)})\n`;
}

function describeResult(result: PullResult): string {
  const seconds = (result.elapsedMs / 1000).toFixed(1);
  return `${result.files} files ready (${result.cacheHits} cached, ${result.downloaded} fetched, ${formatBytes(result.bytesFetched)}) in ${seconds}s\n`;
}

/** Runs the pull, aborted by Ctrl-C, and clears the progress bar however it ends. */
export async function pullUntilInterrupted(options: PullOptions, renderer: ProgressRenderer): Promise<PullResult> {
  const { pull } = await import('../pull/index.js');
  const interrupt = abortOnInterrupt();
  try {
    return await pull({ ...options, signal: interrupt.signal });
  } finally {
    renderer.finish();
    interrupt.dispose();
  }
}

export function registerPullCommand(program: Command, io: CliIo): void {
  program
    .command('pull')
    .description('Pull a Hugging Face repo into the standard cache, verified and ready offline; prints the snapshot path')
    .addHelpText('after', examples(['MODEL_DIR=$(modelfetch pull org/name --quiet)               # the snapshot path, for the app', 'modelfetch pull org/name --include \'*.json\' \'*.safetensors\'  # only some files', 'modelfetch pull org/name --local-dir ./model                 # real files in a folder']))
    .argument('<repo>', 'org/name, optionally @branch, @tag or @commit; ms://org/name[@rev] for ModelScope')
    .argument('[files...]', 'only these files (repo-relative paths)')
    .option('--include <glob...>', 'only files matching these globs (a glob without "/" matches the file name at any depth)')
    .option('--exclude <glob...>', 'skip files matching these globs')
    .option('--repo-type <type>', 'model, dataset or space', 'model')
    .option('--cache-dir <dir>', 'hub cache root (default: HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub)')
    .option('--local-dir <dir>', 'write real files into DIR instead of the cache (huggingface_hub local_dir layout)')
    .option('--connections <n>', 'connection budget per host')
    .option('--offline', 'make no request; everything must be cached (also HF_HUB_OFFLINE=1)')
    .option('--check', 'download nothing; exit non-zero (ERR_INCOMPLETE) if something is missing')
    .option('--endpoint <url>', 'hub endpoint (default: HF_ENDPOINT or https://huggingface.co; for ModelScope MODELSCOPE_DOMAIN or https://www.modelscope.cn)')
    .option('--token <token>', 'access token (default: HF_TOKEN, HF_TOKEN_PATH, HF_HOME/token; for ModelScope MODELSCOPE_API_TOKEN)')
    .option('--source <source>', 'hf (default) or modelscope (implied by ms://)')
    .option('--layout <layout>', 'ModelScope only: modelscope (default, MODELSCOPE_CACHE) or hf (the hub cache)')
    .option('--dtype <dtype>', 'then convert the safetensors weights to f16 or bf16 into a derived snapshot (see convert) and print its path; with --local-dir, in place there')
    .option('--keep <glob...>', 'with --dtype: leave tensors whose names match as they are')
    .option('--ignore-disk-space', 'skip the free-space check made before the first byte')
    .option('--force-download', 'with --local-dir: replace files edited since they were downloaded (kept, with a warning, otherwise)')
    .option('--no-xet', 'fetch Xet-backed Hub files through the plain path (also HF_HUB_DISABLE_XET=1)')
    .option('--swarm <url>', 'a `serve --swarm` mirror: it is the endpoint, and files it has torrents for come from peers too (seeded while this runs)')
    .option('--swarm-port <port>', 'with --swarm: TCP port peers reach this process on (default: any free port)')
    .option('--seed-time <seconds>', 'with --swarm: keep seeding this long after the pull (default 0: leave at once)')
    .option('--json', 'print one JSON object with the result')
    .option('--quiet', 'print only the path')
    .action(async (repo: string, files: string[], flags: PullFlags) => {
      const options = toOptions(repo, files, flags, io);
      const swarm = flags.swarm === undefined ? undefined : await joinSwarm(flags, options, io);
      const chatty = !flags.quiet && !flags.json;
      const renderer = createProgressRenderer(io.stderr, progressModeFor(io.stderr, !chatty || progressBarsDisabled(io.env)));
      if (chatty) {
        options.onPlan = (plan) => void io.stderr.write(describePlan(plan));
        options.onProgress = renderer.onProgress;
        if (swarm) options.onSwarmProgress = renderer.onProgress;
        options.transfer = { ...options.transfer, onRetry: renderer.onRetry, onRateLimitWait: renderer.onRateLimitWait };
        options.onWarning = (message) => renderer.above(`modelfetch: warning: ${message}`);
      }
      let result: PullResult;
      try {
        result = await pullUntilInterrupted(options, renderer);
        await swarm?.linger();
      } catch (error) {
        if (flags.json && error instanceof ModelfetchError) io.stdout.write(`${JSON.stringify({ ok: false, error: error.toJSON() })}\n`);
        throw error;
      } finally {
        await swarm?.session.close();
      }
      if (flags.json) {
        io.stdout.write(`${JSON.stringify({ ok: true, ...result })}\n`);
        return;
      }
      if (chatty) io.stderr.write(describeResult(result) + (result.converted ? describeConversion(result.converted) : ''));
      io.stdout.write(`${result.path}\n`);
    });
}

/**
 * `pull --swarm URL`: the mirror is the endpoint (listings, torrents and the HTTP fallback all come
 * from it, and the token goes only there); an --endpoint naming another origin is refused, and
 * HF_ENDPOINT is overridden. Seeding lasts while the process runs, plus --seed-time.
 */
async function joinSwarm(flags: PullFlags, options: PullOptions, io: CliIo): Promise<{ session: import('../transfer/swarm/session.js').SwarmSession; linger(): Promise<void> }> {
  const mirror = resolveHfEndpoint(flags.swarm, {});
  if (flags.endpoint !== undefined && resolveHfEndpoint(flags.endpoint, {}) !== mirror) throw usageError(`--swarm ${mirror} and --endpoint ${flags.endpoint} name different servers`, 'With --swarm the mirror is the endpoint: drop --endpoint.');
  if (flags.localDir) throw usageError('--swarm fills the hub cache (peers are seeded from its blobs), not a --local-dir', 'Drop --local-dir, or pull without --swarm.');
  if (options.source === 'modelscope' || options.repo.startsWith('ms://')) throw usageError('--swarm works with a modelfetch mirror of the Hub, not ModelScope', 'Drop --swarm.');
  const port = flags.swarmPort === undefined ? 0 : parsePort(flags.swarmPort, '--swarm-port');
  const seedSeconds = flags.seedTime === undefined ? 0 : parseWholeNumber(flags.seedTime, '--seed-time', 0, 7 * 24 * 3600);
  options.endpoint = mirror;
  const { SwarmSession } = await import('../transfer/swarm/session.js');
  const session = new SwarmSession({ port, log: (line) => void io.stderr.write(`modelfetch: ${line}\n`) });
  options.swarm = session;
  return {
    session,
    linger: async () => {
      if (seedSeconds === 0 || session.seedCount() === 0) return;
      io.stderr.write(`modelfetch: seeding for ${seedSeconds} s (Ctrl-C stops)\n`);
      await untilInterrupted(seedSeconds * 1000);
    },
  };
}
