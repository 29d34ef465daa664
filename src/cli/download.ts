import { join } from 'node:path';
import { Option, type Command } from 'commander';
import type { CliIo } from './main.js';
import { createProgressRenderer, progressModeFor } from './progress.js';
import { pullUntilInterrupted, toOptions, type PullFlags } from './pull.js';
import { examples } from './examples.js';
import { progressBarsDisabled } from '../core/hf-env.js';
import { usageError } from './units.js';

/**
 * `modelfetch download`: huggingface_hub's `hf download` arguments and flags, mapped onto `pull`, so a
 * script written for `hf download` runs unchanged. Prints what `hf download` prints on stdout: the
 * snapshot (or local dir) path, or the file's path when exactly one file is asked for.
 */

interface DownloadFlags {
  repoType?: string;
  type?: string;
  revision?: string;
  include?: string[];
  exclude?: string[];
  cacheDir?: string;
  localDir?: string;
  forceDownload?: boolean;
  dryRun?: boolean;
  token?: string;
  maxWorkers?: string;
  quiet?: boolean;
  format?: string;
  json?: boolean;
  truncate?: boolean;
  resumeDownload?: boolean;
  localDirUseSymlinks?: string;
}

const REPO_TYPE_PREFIXES: Record<string, string> = { models: 'model', datasets: 'dataset', spaces: 'space' };

/** `hf://datasets/org/name`, `spaces/org/name` and `org/name` as hf reads them: the repo id and the type its prefix implies. */
export function parseHfRepoId(raw: string): { repoId: string; repoType?: string } {
  const bare = raw.startsWith('hf://') ? raw.slice('hf://'.length) : raw;
  const parts = bare.split('/');
  const prefixType = parts.length === 3 ? REPO_TYPE_PREFIXES[parts[0] ?? ''] : undefined;
  return prefixType ? { repoId: parts.slice(1).join('/'), repoType: prefixType } : { repoId: bare };
}

/** Notes on stderr for flags that `hf download` has and modelfetch has no use for. */
function notesFor(flags: DownloadFlags): string[] {
  const notes: string[] = [];
  if (flags.maxWorkers !== undefined) notes.push(`--max-workers ${flags.maxWorkers} is ignored: modelfetch sizes its own connection budget (--connections on pull sets it).`);
  if (flags.resumeDownload) notes.push('--resume-download is ignored: downloads always resume.');
  if (flags.localDirUseSymlinks !== undefined) notes.push('--local-dir-use-symlinks is ignored: --local-dir always holds real files.');
  if (flags.truncate === false) notes.push('--no-truncate is ignored: download prints no tables.');
  if (flags.forceDownload && !flags.localDir) notes.push('--force-download re-downloads nothing in the cache: cached files are verified, and a damaged one is fetched again.');
  return notes;
}

function toPullFlags(flags: DownloadFlags, repoType: string, quiet: boolean): PullFlags {
  return {
    repoType,
    quiet,
    ...(flags.include && { include: flags.include }),
    ...(flags.exclude && { exclude: flags.exclude }),
    ...(flags.cacheDir && { cacheDir: flags.cacheDir }),
    ...(flags.localDir && { localDir: flags.localDir }),
    ...(flags.token && { token: flags.token }),
    ...(flags.forceDownload && { forceDownload: true }),
  };
}

/** The line(s) `hf download` prints in its human format: a check mark and the path (green on a terminal, as hf colours it). */
function describeDownloaded(path: string, colour: boolean): string {
  const mark = colour ? '\u001b[32m✓ Downloaded\u001b[0m' : '✓ Downloaded';
  return `${mark}\n  path: ${path}\n`;
}

export function registerDownloadCommand(program: Command, io: CliIo): void {
  program
    .command('download')
    .description("Download as hf download does: its arguments and flags, mapped onto pull; prints the snapshot, local dir or file path")
    .addHelpText('after', examples(['modelfetch download org/name                        # like hf download org/name', 'modelfetch download org/name config.json            # prints the file path', 'modelfetch download org/name --local-dir ./model --quiet']))
    .argument('<repo_id>', 'org/name, or datasets/org/name, spaces/org/name, hf://…')
    .argument('[filenames...]', 'only these files (repo-relative paths)')
    .addOption(new Option('--repo-type <type>', 'model, dataset or space').choices(['model', 'dataset', 'space']))
    .addOption(new Option('--type <type>', 'same as --repo-type').choices(['model', 'dataset', 'space']))
    .option('--revision <rev>', 'branch, tag or commit (default main)')
    .option('--include <glob...>', 'only files matching these globs')
    .option('--exclude <glob...>', 'skip files matching these globs')
    .option('--cache-dir <dir>', 'hub cache root (default: HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub)')
    .option('--local-dir <dir>', 'write real files into DIR instead of the cache')
    .option('--force-download', 'with --local-dir: replace files edited since they were downloaded')
    .option('--no-force-download', 'the default')
    .option('--dry-run', 'not supported: use `modelfetch pull --check`')
    .option('--no-dry-run', 'the default')
    .option('--token <token>', 'access token (default: HF_TOKEN, HF_TOKEN_PATH, HF_HOME/token)')
    .option('--max-workers <n>', 'accepted and ignored, with a note (modelfetch sizes its own connections)')
    .option('-q, --quiet', 'print only the path')
    .addOption(new Option('--format <format>', 'auto, human or quiet').choices(['auto', 'human', 'agent', 'json', 'quiet']))
    .option('--json', 'not supported: use `modelfetch pull --json`')
    .option('--no-truncate', 'accepted and ignored')
    .addOption(new Option('--resume-download', 'accepted and ignored (always resumes)').hideHelp())
    .addOption(new Option('--local-dir-use-symlinks <value>', 'accepted and ignored').hideHelp())
    .action(async (rawRepo: string, filenames: string[], flags: DownloadFlags) => {
      if (flags.dryRun) throw usageError('download --dry-run is not supported', 'Run `modelfetch pull REPO --check` to see whether anything is missing without downloading.');
      if (flags.json || flags.format === 'json') throw usageError('download --json is not supported', 'Run `modelfetch pull REPO --json` for a JSON result.');
      const { repoId, repoType: prefixType } = parseHfRepoId(rawRepo);
      const repoType = flags.repoType ?? flags.type ?? prefixType ?? 'model';
      const quiet = flags.quiet === true || flags.format === 'quiet';
      for (const note of notesFor(flags)) io.stderr.write(`modelfetch: note: ${note}\n`);
      const options = toOptions(repoId, filenames, toPullFlags(flags, repoType, quiet), io);
      if (flags.revision) options.revision = flags.revision;
      const renderer = createProgressRenderer(io.stderr, progressModeFor(io.stderr, quiet || progressBarsDisabled(io.env)));
      if (!quiet) {
        options.onProgress = renderer.onProgress;
        options.transfer = { ...options.transfer, onRetry: renderer.onRetry, onRateLimitWait: renderer.onRateLimitWait };
        options.onWarning = (message) => renderer.above(`modelfetch: warning: ${message}`);
      }
      const result = await pullUntilInterrupted(options, renderer);
      // One file asked for by name: hf prints that file's path rather than the folder's.
      const only = filenames.length === 1 && !flags.include && !flags.exclude ? filenames[0] : undefined;
      const path = only === undefined ? result.path : join(result.path, only);
      io.stdout.write(quiet ? `${path}\n` : describeDownloaded(path, io.stdout.isTTY === true && !io.env.NO_COLOR));
    });
}
