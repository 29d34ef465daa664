import { ModelfetchError } from './errors.js';
import { assertSafeRevision } from './validate.js';

/* Repo ids and `org/name@rev` references, as the Hub allows them. */

const REPO_PART = /^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/;

/** `org/name` or `name`, as the Hub allows them; `--` and `..` are refused because they break the folder name. */
export function assertRepoId(repoId: string): string {
  const parts = repoId.split('/');
  const ok = parts.length >= 1 && parts.length <= 2 && parts.every((p) => REPO_PART.test(p) && !p.includes('--') && !p.includes('..') && !p.endsWith('.'));
  if (!ok) {
    throw new ModelfetchError('ERR_USAGE', `Invalid repo id ${JSON.stringify(repoId.slice(0, 120))}`, {
      hint: 'Use the form org/name (letters, digits, ".", "_", "-"), for example openai/whisper-tiny.',
    });
  }
  return repoId;
}

/** Splits `org/name@rev` into repo id and revision (undefined when none is given). */
export function parseRepoReference(reference: string): { repoId: string; revision?: string } {
  const at = reference.indexOf('@');
  const repoId = assertRepoId(at === -1 ? reference : reference.slice(0, at));
  if (at === -1) return { repoId };
  const revision = reference.slice(at + 1);
  if (!revision) throw new ModelfetchError('ERR_USAGE', `Empty revision in ${JSON.stringify(reference)}`, { hint: 'Write org/name@main, org/name@v1.0 or org/name@<commit sha>.' });
  return { repoId, revision: assertSafeRevision(revision) };
}
