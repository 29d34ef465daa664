import type { Command } from 'commander';
import { ModelfetchError } from '../core/errors.js';
import { verifyCache, type VerifyOptions, type VerifyProgress, type VerifyReport } from '../cache/verify.js';
import type { RepoType } from '../core/types.js';
import type { CliIo } from './main.js';
import { formatBytes } from '../core/format-bytes.js';
import { parseRepoType } from './units.js';
import { examples } from './examples.js';

/** `modelfetch verify [REPO…] [--fix] [--json]`: re-hash every blob and check every link. */
export function registerVerifyCommand(program: Command, io: CliIo): void {
  program
    .command('verify')
    .description('Re-hash every cached blob against its digest and check every snapshot link; exits non-zero on any problem')
    .addHelpText('after', examples(['modelfetch verify                      # re-hash everything; exit 3 on a bad blob', 'modelfetch verify org/name --fix       # remove bad blobs and pull them again']))
    .argument('[repos...]', 'only these repos (org/name)')
    .option('--cache-dir <dir>', 'hub cache folder (default: HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub)')
    .option('--repo-type <type>', 'model, dataset or space', parseRepoType)
    .option('--fix', 'remove bad blobs and pull them again; remove links that cannot be restored; verify again')
    .option('--endpoint <url>', 'with --fix: hub to pull from (default: HF_ENDPOINT or https://huggingface.co)')
    .option('--token <token>', 'with --fix: access token (default: HF_TOKEN, HF_TOKEN_PATH, HF_HOME/token)')
    .option('--json', 'machine-readable report on stdout')
    .action(async (repos: string[], opts: { cacheDir?: string; repoType?: RepoType; fix?: boolean; endpoint?: string; token?: string; json?: boolean }) => {
      const bar = io.stderr.isTTY && !opts.json ? progressBar(io) : undefined;
      const started = Date.now();
      let report: VerifyReport;
      try {
        const options: VerifyOptions = {
          env: io.env,
          repos,
          ...(opts.cacheDir && { cacheDir: opts.cacheDir }),
          ...(opts.repoType && { repoType: opts.repoType }),
          ...(bar && { onProgress: bar.update }),
        };
        // The puller is loaded only when something may have to be fetched again.
        report = opts.fix ? await (await import('../repair.js')).repairCache({ ...options, ...(opts.endpoint && { endpoint: opts.endpoint }), ...(opts.token && { token: opts.token }) }) : await verifyCache(options);
      } finally {
        bar?.done();
      }
      if (opts.json) io.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else io.stdout.write(renderReport(report, Date.now() - started));
      if (!report.ok) {
        const broken = report.problems.some((p) => p.kind === 'broken');
        throw new ModelfetchError(broken ? 'ERR_INTEGRITY' : 'ERR_INCOMPLETE', `verify found ${report.problems.length || 'unrepaired'} problem(s) in ${report.root}`, {
          hint: opts.fix ? 'What is left needs a look: foreign files are never removed automatically.' : 'Run `modelfetch verify --fix` to remove bad blobs and pull them again.',
        });
      }
    });
}

function renderReport(report: VerifyReport, elapsedMs: number): string {
  let out = '';
  for (const fix of report.fixes) out += `fixed: ${fix.action} ${fix.path}${fix.detail ? ` (${fix.detail})` : ''}\n`;
  for (const problem of report.problems) {
    out += `${problem.kind}: ${problem.path} — ${problem.detail}${problem.expected ? ` (expected ${problem.expected}, found ${problem.found})` : ''}\n`;
  }
  const seconds = (elapsedMs / 1000).toFixed(1);
  out += `${report.ok ? 'OK' : 'FAILED'}: ${report.blobsChecked} blob(s), ${formatBytes(report.bytesChecked)} in ${report.repos} repo(s) checked in ${seconds}s; ${report.problems.length} problem(s)\n`;
  return out;
}

/** One line on stderr, redrawn at most ten times a second. */
function progressBar(io: CliIo): { update: (p: VerifyProgress) => void; done: () => void } {
  let last = 0;
  let drawn = false;
  const draw = (p: VerifyProgress): void => {
    const ratio = p.bytesTotal > 0 ? p.bytesDone / p.bytesTotal : 1;
    const width = 30;
    const filled = Math.round(ratio * width);
    io.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(ratio * 100).toFixed(0).padStart(3)}%  ${formatBytes(p.bytesDone)} / ${formatBytes(p.bytesTotal)}  ${p.filesDone}/${p.filesTotal} blobs\x1b[K`);
    drawn = true;
  };
  return {
    update: (p) => {
      const now = Date.now();
      if (now - last < 100 && p.filesDone < p.filesTotal) return;
      last = now;
      draw(p);
    },
    done: () => {
      if (drawn) io.stderr.write('\r\x1b[K');
    },
  };
}
