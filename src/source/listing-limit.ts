import { ModelfetchError } from '../core/errors.js';

/**
 * The most files `pull` accepts in one repo listing. Hugging Face recommends fewer than 100,000
 * files per repo; twice that leaves room for the largest real repos while a hostile or runaway
 * listing stops long before it exhausts memory (a listed file costs one to two KB while pulling: 100,000 files peaked at 194 MB RSS).
 * MODELFETCH_MAX_FILES (or the `maxFiles` option) raises or lowers it.
 */
export const DEFAULT_MAX_FILES = 200_000;

/** The `maxFiles` option, else MODELFETCH_MAX_FILES, else the default; anything but a positive integer is refused. */
export function resolveMaxFiles(option: number | undefined, env: NodeJS.ProcessEnv): number {
  const raw = option ?? env.MODELFETCH_MAX_FILES;
  if (raw === undefined || raw === '') return DEFAULT_MAX_FILES;
  const value = typeof raw === 'number' ? raw : /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new ModelfetchError('ERR_USAGE', `The maximum number of files per repo must be a positive integer, not ${JSON.stringify(String(raw).slice(0, 40))}`, {
      hint: `Set MODELFETCH_MAX_FILES to a number such as ${DEFAULT_MAX_FILES}, or unset it.`,
    });
  }
  return value;
}

/** The error for a listing beyond the limit, raised as soon as the count passes it. */
export function tooManyFiles(repoId: string, maxFiles: number): ModelfetchError {
  return new ModelfetchError('ERR_USAGE', `${repoId} lists more than ${maxFiles} files, the maximum per repo; nothing was written`, {
    hint: `If the repo really is that large, raise the limit with MODELFETCH_MAX_FILES (for example MODELFETCH_MAX_FILES=${maxFiles * 2}); each listed file costs one to two KB of memory while pulling.`,
  });
}
