import type { Command } from 'commander';
import { gcCache, type GcReport } from '../cache/gc.js';
import { ModelfetchError } from '../core/errors.js';
import type { CliIo } from './main.js';
import { formatBytes } from '../core/format-bytes.js';
import { formatAge, parseDuration, parseSize, renderTable } from './units.js';
import { examples } from './examples.js';

/** `modelfetch gc`: remove unused revisions, then least recently used ones down to a size cap. */
export function registerGcCommand(program: Command, io: CliIo): void {
  program
    .command('gc')
    .description('Remove revisions not used for a while, then least recently used ones until the cache fits a size cap')
    .addHelpText('after', examples(['modelfetch gc --unused-for 7d --dry-run   # what a week of disuse would free', 'modelfetch gc --max-size 200G             # trim least recently used revisions to 200 GiB']))
    .option('--unused-for <duration>', 'remove revisions not used within this period (e.g. 7d, 12h)', parseDuration)
    .option('--max-size <size>', 'then remove least recently used revisions until the cache is at most this size (e.g. 200G)', parseSize)
    .option('--keep <repos...>', 'never touch these repos (org/name)')
    .option('--dry-run', 'print the plan, change nothing')
    .option('--cache-dir <dir>', 'hub cache folder (default: HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub)')
    .option('--json', 'machine-readable report')
    .action(async (opts: { unusedFor?: number; maxSize?: number; keep?: string[]; dryRun?: boolean; cacheDir?: string; json?: boolean }) => {
      const report = await gcCache({
        env: io.env,
        ...(opts.cacheDir && { cacheDir: opts.cacheDir }),
        ...(opts.unusedFor !== undefined && { unusedForMs: opts.unusedFor }),
        ...(opts.maxSize !== undefined && { maxSize: opts.maxSize }),
        ...(opts.keep && { keep: opts.keep }),
        ...(opts.dryRun && { dryRun: true }),
      });
      io.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : renderGc(report));
      if (!report.underCap) {
        throw new ModelfetchError('ERR_LOCKED', `The cache is still ${formatBytes(report.sizeAfter)}, over --max-size: what is left is in use or kept`, { hint: 'Run gc again when the pulls or servers holding those revisions are done.' });
      }
    });
}

function renderGc(report: GcReport): string {
  const verb = report.dryRun ? 'Would free' : 'Freed';
  const rows = report.revisions.map((r) => [r.repoId, r.commit.slice(0, 12), r.refs.join(', '), formatAge(r.lastUsed), r.reason, formatBytes(r.bytes)]);
  let out = rows.length ? renderTable(['REPO ID', 'REVISION', 'REFS', 'LAST USED', 'WHY', 'FREES'], rows, [5]) : 'Nothing to remove.\n';
  for (const s of report.skipped.filter((s) => s.reason === 'in-use')) out += `kept (in use): ${s.repoId}@${s.commit.slice(0, 12)}\n`;
  if (report.xetChunks.entries > 0) out += `${verb} ${formatBytes(report.xetChunks.bytes)} of Xet chunk cache (${report.xetChunks.entries} entries)\n`;
  out += `${verb} ${formatBytes(report.bytesFreed)}: ${report.revisions.length} revision(s), ${report.blobs.length} blob(s), ${report.repos.length} repo folder(s); cache ${formatBytes(report.sizeBefore)} -> ${formatBytes(report.sizeAfter)}\n`;
  return out;
}
