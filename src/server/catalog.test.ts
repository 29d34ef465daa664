import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readRef } from '../cache/snapshot.js';
import { ModelfetchError } from '../errors.js';
import { buildCachedRepo, fakeCommit } from '../../test/support/cache-builder.js';
import { CacheView } from './cache-view.js';
import { Catalog, type UpstreamHub } from './catalog.js';
import { HttpError } from './http-error.js';
import type { ListedFile } from './hub-json.js';

const repo = { repoType: 'model' as const, repoId: 'org/m' };
const file: ListedFile = { path: 'a.txt', size: 1, digest: { algorithm: 'git-sha1', hex: 'a'.repeat(40) } };

/** An upstream whose answers the test sets, counting the calls the catalog makes. */
class ScriptedUpstream implements UpstreamHub {
  readonly origin = 'http://upstream.test';
  branch = fakeCommit('v2');
  down = false;
  restricted = false;
  tokens = new Set<string>();
  calls: string[] = [];
  private fail(): void {
    if (this.down) throw new ModelfetchError('ERR_NETWORK', 'connection refused');
  }
  async revisionCommit(_repo: unknown, revision: string): Promise<string> {
    this.calls.push(`revision ${revision}`);
    this.fail();
    return /^[0-9a-f]{40}$/.test(revision) ? revision : this.branch;
  }
  async listFiles(_repo: unknown, commit: string): Promise<ListedFile[]> {
    this.calls.push(`list ${commit}`);
    this.fail();
    return [file];
  }
  async isRestricted(): Promise<boolean> {
    this.calls.push('restricted?');
    this.fail();
    return this.restricted;
  }
  async canRead(_repo: unknown, _revision: string, _path: string | undefined, token: string): Promise<boolean> {
    this.calls.push('check');
    this.fail();
    return this.tokens.has(token);
  }
  async ping(): Promise<boolean> {
    return !this.down;
  }
}

describe('Catalog', () => {
  let root: string;
  let upstream: ScriptedUpstream;
  let now: number;
  let catalog: Catalog;
  const cachedCommit = fakeCommit('v1');

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'mf-catalog-'));
    await buildCachedRepo(root, { repoId: 'org/m', commit: cachedCommit, files: [{ path: 'old.txt', content: Buffer.from('old') }] });
    upstream = new ScriptedUpstream();
    now = 1_000_000;
    catalog = new Catalog({ cache: new CacheView(root), upstream, revalidateAfterMs: 60_000, accessTtlMs: 30_000, now: () => now });
  });

  afterEach(async () => rm(root, { recursive: true, force: true }));

  it('asks upstream where a branch points, updates refs/, and asks again only after the revalidation time', async () => {
    const first = await catalog.resolve(repo, 'main', {});
    expect(first.commit).toBe(upstream.branch);
    expect(first.files).toEqual([file]);
    expect(await readRef(new CacheView(root).repo('model', 'org/m'), 'main')).toBe(upstream.branch);
    await catalog.resolve(repo, 'main', {});
    expect(upstream.calls).toEqual([`revision main`, `list ${upstream.branch}`]);
    now += 61_000;
    await catalog.resolve(repo, 'main', {});
    // The branch is asked again; the commit's listing is immutable and kept.
    expect(upstream.calls).toEqual([`revision main`, `list ${upstream.branch}`, 'revision main']);
  });

  it('serves branches from refs/ when upstream is unreachable, and fails clearly for what is not cached', async () => {
    upstream.down = true;
    const resolved = await catalog.resolve(repo, 'main', {});
    expect(resolved.commit).toBe(cachedCommit);
    expect(resolved.files.map((f) => f.path)).toEqual(['old.txt']);
    const missing = await catalog.resolve({ repoType: 'model', repoId: 'org/other' }, 'main', {}).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(HttpError);
    expect((missing as HttpError).status).toBe(502);
    expect((missing as HttpError).message).toMatch(/unreachable/);
    // Found down once, upstream is left alone for a few seconds rather than retried per request.
    const asked = upstream.calls.length;
    await catalog.resolve(repo, 'main', {});
    expect(upstream.calls.length).toBe(asked);
    upstream.down = false;
    now += 6_000;
    expect((await catalog.resolve(repo, 'main', {})).commit).toBe(upstream.branch);
  });

  it('asks about gating while the revision resolves, once, and records nothing for a repo that does not exist', async () => {
    let answerRevision: (() => void) | undefined;
    const revisionCommit = upstream.revisionCommit.bind(upstream);
    upstream.revisionCommit = async (r, revision) => {
      await new Promise<void>((resolve) => (answerRevision = resolve));
      return revisionCommit(r, revision);
    };
    catalog.prefetchRestricted(repo, 'main');
    const resolving = catalog.resolve(repo, 'main', {});
    await new Promise((resolve) => setTimeout(resolve, 10));
    // The revision is still unanswered, and the gating question is already out.
    expect(upstream.calls).toEqual(['restricted?']);
    answerRevision?.();
    const resolved = await resolving;
    await catalog.authorize(repo, resolved.commit, 'a.txt', {});
    expect(upstream.calls.filter((c) => c === 'restricted?')).toHaveLength(1);
    // A prefetch for a repo that then fails to resolve leaves the cache untouched.
    upstream.revisionCommit = async () => {
      throw new ModelfetchError('ERR_NOT_FOUND', 'Repository not found');
    };
    const ghost = { repoType: 'model' as const, repoId: 'org/ghost' };
    catalog.prefetchRestricted(ghost, 'main');
    expect(await catalog.resolve(ghost, 'main', {}).catch((e: unknown) => e)).toBeInstanceOf(Error);
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(await new CacheView(root).repoExists(new CacheView(root).repo('model', 'org/ghost'))).toBe(false);
  });

  it('offline: never asks upstream', async () => {
    const offline = new Catalog({ cache: new CacheView(root), revalidateAfterMs: 0, accessTtlMs: 0 });
    expect((await offline.resolve(repo, 'main', {})).commit).toBe(cachedCommit);
    await offline.authorize(repo, 'main', 'old.txt', {});
    expect(upstream.calls).toEqual([]);
  });

  it('keeps gated repos gated: no token → 401, refused token → 403, accepted token checked once per TTL', async () => {
    upstream.restricted = true;
    upstream.tokens.add('good');
    const noToken = await catalog.authorize(repo, 'main', 'a.txt', {}).catch((e: unknown) => e);
    expect((noToken as HttpError).status).toBe(401);
    expect((noToken as HttpError).errorCode).toBe('GatedRepo');
    const bad = await catalog.authorize(repo, 'main', 'a.txt', { clientToken: 'bad' }).catch((e: unknown) => e);
    expect((bad as HttpError).status).toBe(403);
    await catalog.authorize(repo, 'main', 'a.txt', { clientToken: 'good' });
    await catalog.authorize(repo, 'main', 'a.txt', { clientToken: 'good' });
    expect(upstream.calls.filter((c) => c === 'check')).toHaveLength(2);
    now += 31_000;
    await catalog.authorize(repo, 'main', 'a.txt', { clientToken: 'good' });
    expect(upstream.calls.filter((c) => c === 'check')).toHaveLength(3);
    // An offline mirror on the same cache remembers the repo is gated and cannot check tokens.
    const offline = new Catalog({ cache: new CacheView(root), revalidateAfterMs: 0, accessTtlMs: 0 });
    expect(((await offline.authorize(repo, 'main', 'a.txt', {}).catch((e: unknown) => e)) as HttpError).status).toBe(401);
    expect(((await offline.authorize(repo, 'main', 'a.txt', { clientToken: 'good' }).catch((e: unknown) => e)) as HttpError).status).toBe(403);
    // A public repo needs no token.
    upstream.restricted = false;
    now += 61_000;
    await catalog.authorize(repo, 'main', 'a.txt', {});
    await offline.authorize(repo, 'main', 'a.txt', {});
  });
});
