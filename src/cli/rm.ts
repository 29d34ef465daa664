import type { Command } from 'commander';
import { removeFromCache } from '../cache/remove.js';
import { ModelfetchError } from '../errors.js';
import type { RepoType } from '../source/types.js';
import type { CliIo } from './main.js';
import { formatBytes } from '../format-bytes.js';
import { parseRepoType } from './units.js';

/** `modelfetch rm REPO[@rev]`: remove a repo, or one revision and the blobs only it used. */
export function registerRmCommand(program: Command, io: CliIo): void {
  program
    .command('rm')
    .description('Remove a cached repo, or one revision of it (blobs only when no other revision uses them)')
    .argument('<repo>', 'org/name, or org/name@revision (a ref or a commit)')
    .option('--repo-type <type>', 'model, dataset or space', parseRepoType)
    .option('--cache-dir <dir>', 'hub cache folder (default: HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub)')
    .option('--yes', 'remove a whole repo without asking (required when not on a terminal)')
    .option('--dry-run', 'print what would go, change nothing')
    .option('--json', 'machine-readable report')
    .action(async (target: string, opts: { repoType?: RepoType; cacheDir?: string; yes?: boolean; dryRun?: boolean; json?: boolean }) => {
      const at = target.indexOf('@');
      const repoId = at === -1 ? target : target.slice(0, at);
      const revision = at === -1 ? undefined : target.slice(at + 1);
      if (revision === undefined && !opts.yes && !opts.dryRun) {
        throw new ModelfetchError('ERR_USAGE', `Removing all of ${repoId} needs --yes`, { hint: `Run \`modelfetch rm ${repoId} --yes\`, or \`--dry-run\` to see what would go.` });
      }
      const report = await removeFromCache({
        env: io.env,
        repoId,
        ...(revision !== undefined && { revision }),
        ...(opts.repoType && { repoType: opts.repoType }),
        ...(opts.cacheDir && { cacheDir: opts.cacheDir }),
        ...(opts.dryRun && { dryRun: true }),
      });
      if (opts.json) {
        io.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        return;
      }
      const what = report.wholeRepo ? `${report.repoType} ${report.repoId}` : `${report.repoId}@${report.commits.map((c) => c.slice(0, 12)).join(', ')}`;
      io.stdout.write(`${report.dryRun ? 'Would remove' : 'Removed'} ${what}: ${report.commits.length} revision(s), ${report.blobs} blob(s), ${formatBytes(report.bytesFreed)}\n`);
    });
}
