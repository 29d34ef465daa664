import { isModelfetchError, ModelfetchError } from '../core/errors.js';
import type { RepoFile } from '../core/types.js';
import type { CheckedPull } from './options.js';
import { isUnreachable } from './resolve-listing.js';

/** Errors in terms of the command that ran: the `modelfetch pull` line that fixes what is missing. */

/** The `modelfetch pull` command line that fetches this selection (for hints): the same repo, revision, files and filters. */
export function pullCommandLine({ options, repoId, revision, revisionGiven }: CheckedPull): string {
  if (options.fixCommand) return options.fixCommand;
  const quote = (text: string): string => (/^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, "'\\''")}'`);
  const words = ['modelfetch', 'pull', `${options.repo.startsWith('ms://') ? 'ms://' : ''}${repoId}${revisionGiven ? `@${revision}` : ''}`, ...(options.files ?? [])];
  for (const glob of options.include ?? []) words.push('--include', glob);
  for (const glob of options.exclude ?? []) words.push('--exclude', glob);
  if (options.repoType && options.repoType !== 'model') words.push('--repo-type', options.repoType);
  if (options.localDir) words.push('--local-dir', options.localDir);
  else if (options.cacheDir) words.push('--cache-dir', options.cacheDir);
  return words.map(quote).join(' ');
}

/**
 * The engine's hints speak of URLs and `get`'s flags; a pull's user gave a repo. Errors from the
 * download phase get a hint in terms of the command that ran (`--endpoint`, `--token`, rerun to resume).
 */
export function withPullHint(error: unknown, fix: string): unknown {
  if (!isModelfetchError(error)) return error;
  let hint: string | undefined;
  if (isUnreachable(error) || error.code === 'ERR_HTTP') hint = `Check the network and --endpoint (or HF_ENDPOINT), then run \`${fix}\` again: finished files and ranges are kept.`;
  else if (error.code === 'ERR_NOT_FOUND') hint = 'The endpoint does not serve this file at this commit: check --endpoint (or HF_ENDPOINT).';
  else if (error.code === 'ERR_AUTH' || error.code === 'ERR_GATED') hint = 'Set HF_TOKEN (or --token) to a token that can read this repo; a gated repo also needs its terms accepted on its page.';
  if (hint === undefined) return error;
  const { code, message, expected, found, url, status } = error;
  return new ModelfetchError(code, message, { hint, cause: error, ...(expected !== undefined && { expected }), ...(found !== undefined && { found }), ...(url !== undefined && { url }), ...(status !== undefined && { status }) });
}

/** `--check` or offline, and files are absent: which are missing and which were there but corrupt (now removed), and the command that fetches them. */
export function notInCache(pull: CheckedPull, commit: string, selected: number, absent: RepoFile[], foundBefore: Set<string>): ModelfetchError {
  const { options } = pull;
  const names = absent.map((f) => f.path);
  const corrupt = names.filter((path) => foundBefore.has(path));
  const gone = names.filter((path) => !foundBefore.has(path));
  const list = (paths: string[]): string => `${paths.slice(0, 5).join(', ')}${paths.length > 5 ? ', …' : ''}`;
  const what = [...(gone.length ? [`${gone.length} missing (${list(gone)})`] : []), ...(corrupt.length ? [`${corrupt.length} corrupt, now removed (${list(corrupt)})`] : [])].join(', ');
  const fix = pullCommandLine(pull);
  return new ModelfetchError(options.check ? 'ERR_INCOMPLETE' : 'ERR_OFFLINE', `${names.length} of ${selected} files of ${pull.repoId}@${commit.slice(0, 12)} are not in the cache: ${what}`, {
    hint: options.check
      ? `Run \`${fix}\` to fetch them${corrupt.length ? ' again; `modelfetch verify --fix` also repairs the rest of the cache' : ''}.`
      : `Run \`${fix}\` once with network access (HF_HUB_OFFLINE unset${options.fixCommand ? '' : ', no --offline'}) to fetch them.`,
    expected: selected,
    found: selected - names.length,
  });
}
