import { describe, expect, it } from 'vitest';
import { ModelfetchError } from '../core/errors.js';
import { HttpError } from './http-error.js';
import { upstreamNotFound } from './hf-upstream.js';

describe('upstream not-found answers', () => {
  const repo = { repoType: 'model' as const, repoId: 'org/m' };

  it('classifies by the error reason, whatever the message says', () => {
    // Worded unlike the Hub source's messages on purpose: only the reason may decide.
    const revision = upstreamNotFound(new ModelfetchError('ERR_NOT_FOUND', 'Repository-looking text', { reason: 'revision-not-found' }), repo, 'v9');
    expect(revision).toBeInstanceOf(HttpError);
    expect((revision as HttpError).errorCode).toBe('RevisionNotFound');
    expect((revision as HttpError).message).toBe('Revision v9 not found in org/m');
    const repoMissing = upstreamNotFound(new ModelfetchError('ERR_NOT_FOUND', 'Revision-looking text', { reason: 'repo-not-found' }), repo, 'main');
    expect((repoMissing as HttpError).errorCode).toBe('RepoNotFound');
    // A bare 404 (no reason) answers as a missing repo, as the Hub does for a private one.
    const bare = upstreamNotFound(new ModelfetchError('ERR_NOT_FOUND', 'Revision main of org/m not found'), repo, 'main');
    expect((bare as HttpError).errorCode).toBe('RepoNotFound');
  });

  it('passes other errors through unchanged', () => {
    const refused = new ModelfetchError('ERR_AUTH', 'Revision refused', { status: 403 });
    expect(upstreamNotFound(refused, repo, 'main')).toBe(refused);
  });
});
