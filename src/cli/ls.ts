import type { Command } from 'commander';
import { ModelfetchError } from '../core/errors.js';
import { RepoPaths } from '../cache/layout.js';
import { scanCache, type CacheScan, type ScannedRepo } from '../cache/scan.js';
import { readDerivedRecord } from '../safetensors/derived.js';
import type { RepoType } from '../core/types.js';
import type { CliIo } from './main.js';
import { formatBytes } from '../core/format-bytes.js';
import { formatAge, parseRepoType, renderTable } from './units.js';
import { examples } from './examples.js';

/** `modelfetch ls [REPO] [--json]`: what is in the cache. */
export function registerLsCommand(program: Command, io: CliIo): void {
  program
    .command('ls')
    .description('List cached repos (or one repo\'s revisions and files) with sizes and last use')
    .addHelpText('after', examples(['modelfetch ls                         # every cached repo, its size and last use', 'modelfetch ls org/name --json          # one repo\'s revisions and files, for scripts']))
    .argument('[repo]', 'org/name: show its revisions and files')
    .option('--cache-dir <dir>', 'hub cache folder (default: HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub)')
    .option('--repo-type <type>', 'model, dataset or space', parseRepoType)
    .option('--json', 'machine-readable output')
    .action(async (repo: string | undefined, opts: { cacheDir?: string; repoType?: RepoType; json?: boolean }) => {
      const scan = await scanCache({ env: io.env, repos: repo ? [repo] : [], ...(opts.cacheDir && { cacheDir: opts.cacheDir }), ...(opts.repoType && { repoType: opts.repoType }) });
      if (repo && scan.repos.length === 0) {
        throw new ModelfetchError('ERR_NOT_FOUND', `${repo} is not in the cache ${scan.root}`, { hint: 'Run `modelfetch ls` to see what is cached; use --repo-type for datasets and spaces.' });
      }
      if (opts.json) {
        io.stdout.write(`${JSON.stringify(scan, null, 2)}\n`);
        return;
      }
      io.stdout.write(repo ? renderRepo(scan.repos, await derivedLabels(scan)) : renderCache(scan));
      if (scan.issues.length > 0) {
        io.stderr.write(`${scan.issues.length} odd entr${scan.issues.length === 1 ? 'y' : 'ies'} in the cache:\n`);
        for (const issue of scan.issues) io.stderr.write(`  ${issue.kind}: ${issue.path} (${issue.detail})\n`);
        io.stderr.write('  `modelfetch verify` checks them; `modelfetch verify --fix` repairs what it can.\n');
      }
    });
}

function renderCache(scan: CacheScan): string {
  const now = Date.now();
  const rows = scan.repos.map((r) => [r.repoId, r.repoType, String(r.revisions.length), String(r.nbFiles), formatBytes(r.sizeOnDisk), formatAge(Math.max(...r.revisions.map((v) => v.lastUsed), 0), now), Object.keys(r.refs).sort().join(', ')]);
  const table = renderTable(['REPO ID', 'TYPE', 'REVISIONS', 'FILES', 'SIZE', 'LAST USED', 'REFS'], rows, [2, 3, 4]);
  return `${table}\n${scan.repos.length} repo(s), ${formatBytes(scan.sizeOnDisk)} in ${scan.root}\n`;
}

/** "F16 of 0123456789ab" for each revision that is a snapshot derived by `convert`. */
async function derivedLabels(scan: CacheScan): Promise<Map<string, string>> {
  const labels = new Map<string, string>();
  for (const repo of scan.repos) {
    for (const revision of repo.revisions) {
      const record = revision.commit.length === 64 ? await readDerivedRecord(new RepoPaths(scan.root, repo.repoType, repo.repoId), revision.commit) : undefined;
      if (record) labels.set(revision.commit, `${record.dtype} of ${record.derivedFrom.slice(0, 12)}`);
    }
  }
  return labels;
}

function renderRepo(repos: ScannedRepo[], derived: Map<string, string>): string {
  const now = Date.now();
  let out = '';
  for (const repo of repos) {
    out += `${repo.repoType} ${repo.repoId}: ${repo.revisions.length} revision(s), ${formatBytes(repo.sizeOnDisk)} at ${repo.path}\n\n`;
    for (const revision of repo.revisions) {
      const label = derived.get(revision.commit);
      out += `revision ${revision.commit}${revision.refs.length ? ` (${revision.refs.join(', ')})` : ''}${label ? ` [derived: ${label}]` : ''}: ${revision.nbFiles} file(s), ${formatBytes(revision.sizeOnDisk)}, last used ${formatAge(revision.lastUsed, now)}\n`;
      const rows = revision.files.map((f) => [f.path, formatBytes(f.size), f.copy ? '(copy)' : (f.blob?.slice(0, 12) ?? '(broken)')]);
      out += renderTable(['  FILE', 'SIZE', 'BLOB'], rows.map(([p, s, b]) => [`  ${p}`, s!, b!]), [1]);
      out += '\n';
    }
  }
  return out;
}
