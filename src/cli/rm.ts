import type { Command } from 'commander';
import { removeFromCache, type RemoveReport } from '../cache/remove.js';
import { ModelfetchError } from '../core/errors.js';
import type { RepoType } from '../core/types.js';
import type { CliIo } from './main.js';
import { formatBytes } from '../core/format-bytes.js';
import { parseRepoType } from './units.js';
import { examples } from './examples.js';

/** `modelfetch rm REPO[@rev]`: remove a repo, or one revision and the blobs only it used. */
export function registerRmCommand(program: Command, io: CliIo): void {
  program
    .command('rm')
    .description('Remove a cached repo, or one revision of it (blobs only when no other revision uses them)')
    .addHelpText('after', examples(['modelfetch rm org/name --dry-run       # what would go, and how much it frees', 'modelfetch rm org/name@0123abcd        # one revision; blobs other revisions use stay', 'modelfetch rm org/name --yes           # a whole repo, without the prompt (scripts)']))
    .argument('<repo>', 'org/name, or org/name@revision (a ref or a commit)')
    .option('--repo-type <type>', 'model, dataset or space', parseRepoType)
    .option('--cache-dir <dir>', 'hub cache folder (default: HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub)')
    .option('--yes', 'remove a whole repo without asking (needed when stdin is not a terminal; on a terminal rm asks first)')
    .option('--dry-run', 'print what would go, change nothing')
    .option('--json', 'machine-readable report')
    .action(async (target: string, opts: { repoType?: RepoType; cacheDir?: string; yes?: boolean; dryRun?: boolean; json?: boolean }) => {
      const at = target.indexOf('@');
      const repoId = at === -1 ? target : target.slice(0, at);
      const revision = at === -1 ? undefined : target.slice(at + 1);
      const request = {
        env: io.env,
        repoId,
        ...(revision !== undefined && { revision }),
        ...(opts.repoType && { repoType: opts.repoType }),
        ...(opts.cacheDir && { cacheDir: opts.cacheDir }),
      };
      if (revision === undefined && !opts.yes && !opts.dryRun) {
        if (!io.stdin?.isTTY) {
          throw new ModelfetchError('ERR_USAGE', `Removing all of ${repoId} needs --yes when stdin is not a terminal`, { hint: `Run \`modelfetch rm ${repoId} --yes\`, or \`modelfetch rm ${repoId} --dry-run\` to see what would go.` });
        }
        const plan = await removeFromCache({ ...request, dryRun: true });
        const revisions = plan.commits.map((c) => c.slice(0, 12)).join(', ');
        const confirmed = await confirm(io, `Remove ${plan.repoType} ${plan.repoId} from ${plan.root}: ${describeRemoval(plan)} (revisions ${revisions})?`);
        if (!confirmed) {
          io.stderr.write('Nothing removed.\n');
          return;
        }
      }
      const report = await removeFromCache({ ...request, ...(opts.dryRun && { dryRun: true }) });
      if (opts.json) {
        io.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        return;
      }
      const what = report.wholeRepo ? `${report.repoType} ${report.repoId}` : `${report.repoId}@${report.commits.map((c) => c.slice(0, 12)).join(', ')}`;
      io.stdout.write(`${report.dryRun ? 'Would remove' : 'Removed'} ${what}: ${describeRemoval(report)}\n`);
    });
}

function describeRemoval(report: RemoveReport): string {
  return `${report.commits.length} revision(s), ${report.blobs} blob(s), ${formatBytes(report.bytesFreed)}`;
}

/** Asks on the terminal; only "y" or "yes" confirms (an empty answer, Ctrl-D or anything else does not). */
async function confirm(io: CliIo, question: string): Promise<boolean> {
  const { createInterface } = await import('node:readline');
  const input = io.stdin;
  if (!input) return false;
  const prompt = createInterface({ input, output: io.stderr, terminal: true });
  try {
    const answer = await new Promise<string>((resolve) => {
      prompt.once('close', () => resolve(''));
      prompt.question(`${question} [y/N] `, resolve);
    });
    return /^\s*y(es)?\s*$/i.test(answer);
  } finally {
    prompt.close();
  }
}
