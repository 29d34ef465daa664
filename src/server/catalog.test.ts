import { beforeEach, describe, expect, it } from 'vitest';
import { readRef } from '../cache/snapshot.js';
import { ModelfetchError } from '../core/errors.js';
import { buildCachedRepo, fakeCommit } from '../../test/support/cache-builder.js';
import { CacheView } from './cache-view.js';
import { Catalog, isUnreachable, publicRepoMatcher, type UpstreamHub, type Visibility } from './catalog.js';
import { HttpError } from './http-error.js';
import type { RepoFile } from '../core/types.js';
import { testTempDir } from '../../test/support/temp.js';

const repo = { repoType: 'model' as const, repoId: 'org/m' };
const file: RepoFile = { path: 'a.txt', size: 1, digest: { algorithm: 'git-sha1', hex: 'a'.repeat(40) } };

/** An upstream whose answers the test sets, counting the calls the catalog makes. */
class ScriptedUpstream implements UpstreamHub {
  readonly origin = 'http://upstream.test';
  branch = fakeCommit('v2');
  down = false;
  visible: Visibility = 'public';
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
  async listFiles(_repo: unknown, commit: string): Promise<RepoFile[]> {
    this.calls.push(`list ${commit}`);
    this.fail();
    return [file];
  }
  async visibility(): Promise<Visibility> {
    this.calls.push('visibility?');
    this.fail();
    return this.visible;
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
    root = await testTempDir('mf-catalog-');
    await buildCachedRepo(root, { repoId: 'org/m', commit: cachedCommit, files: [{ path: 'old.txt', content: Buffer.from('old') }] });
    upstream = new ScriptedUpstream();
    now = 1_000_000;
    catalog = new Catalog({ cache: new CacheView(root), upstream, revalidateAfterMs: 60_000, accessTtlMs: 30_000, now: () => now });
  });


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

  it('counts upstream as down on what the retry policy retries and on a proxy failure, never on an answer', () => {
    const down = [new ModelfetchError('ERR_NETWORK', 'reset'), new ModelfetchError('ERR_STALL', 'stall'), new ModelfetchError('ERR_PROXY', 'proxy refused'), new ModelfetchError('ERR_HTTP', '503', { status: 503 }), new ModelfetchError('ERR_HTTP', '429', { status: 429 })];
    const answers = [new ModelfetchError('ERR_NOT_FOUND', 'missing', { status: 404 }), new ModelfetchError('ERR_AUTH', 'refused', { status: 401 }), new ModelfetchError('ERR_GATED', 'gated', { status: 403 }), new ModelfetchError('ERR_HTTP', '400', { status: 400 }), new Error('not ours')];
    expect(down.map(isUnreachable)).toEqual(down.map(() => true));
    expect(answers.map(isUnreachable)).toEqual(answers.map(() => false));
  });

  it('offline: serves only repos declared or recorded public, and never asks upstream', async () => {
    const offline = new Catalog({ cache: new CacheView(root), revalidateAfterMs: 0, accessTtlMs: 0 });
    // Nothing says org/m is public: it answers as a missing repo would, token or not.
    for (const auth of [{}, { clientToken: 'good' }]) {
      const refused = (await offline.authorize(repo, 'main', 'old.txt', auth).catch((e: unknown) => e)) as HttpError;
      expect(refused.status).toBe(404);
      expect(refused.errorCode).toBe('RepoNotFound');
    }
    const declared = new Catalog({ cache: new CacheView(root), revalidateAfterMs: 0, accessTtlMs: 0, isPublic: publicRepoMatcher(['org/*']) });
    await declared.authorize(repo, 'main', 'old.txt', {});
    expect((await declared.resolve(repo, 'main', {})).commit).toBe(cachedCommit);
    // An online catalog that heard "public" upstream records it, for an offline start.
    await catalog.authorize(repo, 'main', 'a.txt', {});
    await catalog.resolve(repo, 'main', {});
    await offline.authorize(repo, 'main', 'old.txt', {});
    expect(upstream.calls.filter((c) => c === 'visibility?')).toHaveLength(1);
  });

  it('fails closed while upstream cannot answer: no token check, no gating answer, no access', async () => {
    upstream.visible = 'gated';
    upstream.tokens.add('good');
    upstream.down = true;
    for (const auth of [{}, { clientToken: 'good' }]) {
      const refused = (await catalog.authorize(repo, 'main', 'a.txt', auth).catch((e: unknown) => e)) as HttpError;
      expect(refused.status).toBe(503);
      expect(refused.message).toMatch(/cannot be reached.*refused/);
    }
    // Once upstream accepted a token, that token (and only it) is trusted for the access TTL.
    upstream.down = false;
    now += 6_000;
    await catalog.authorize(repo, 'main', 'a.txt', { clientToken: 'good' });
    upstream.down = true;
    now += 6_000;
    await catalog.authorize(repo, 'main', 'a.txt', { clientToken: 'good' });
    expect(((await catalog.authorize(repo, 'main', 'a.txt', { clientToken: 'other' }).catch((e: unknown) => e)) as HttpError).status).toBe(503);
    // Known gated (answered while upstream was up): anonymous clients are told so.
    expect(((await catalog.authorize(repo, 'main', 'a.txt', {}).catch((e: unknown) => e)) as HttpError).status).toBe(401);
  });

  it('a hidden repo answers exactly as a missing one, with or without a refused token', async () => {
    upstream.visible = 'hidden';
    const hidden = (await catalog.authorize(repo, 'main', 'a.txt', {}).catch((e: unknown) => e)) as HttpError;
    const refused = (await catalog.authorize(repo, 'main', 'a.txt', { clientToken: 'bad' }).catch((e: unknown) => e)) as HttpError;
    for (const error of [hidden, refused]) {
      expect(error.status).toBe(404);
      expect(error.errorCode).toBe('RepoNotFound');
    }
    expect(hidden.message).toBe(refused.message);
    // Nothing was resolved or written with the server's token.
    expect(upstream.calls.filter((c) => c.startsWith('revision') || c.startsWith('list'))).toEqual([]);
  });

  it('keeps the in-memory listing map within its bound, least recently used dropped first', async () => {
    const many: RepoFile[] = Array.from({ length: 5_000 }, (_, i) => ({ ...file, path: `f${i}.bin` }));
    upstream.listFiles = async () => many;
    const bounded = new Catalog({ cache: new CacheView(root), upstream, revalidateAfterMs: 60_000, accessTtlMs: 0, listingCacheFiles: 50_000, now: () => now });
    for (let i = 0; i < 100; i++) {
      // A fresh array per commit, as upstream's answers are.
      const listing = many.map((f) => ({ ...f }));
      upstream.listFiles = async () => listing;
      await bounded.resolve(repo, fakeCommit(`c${i}`), {});
      expect(bounded.listingCacheSize().files).toBeLessThanOrEqual(50_000);
    }
    expect(bounded.listingCacheSize()).toEqual({ listings: 10, files: 50_000 });
    // The most recent commit is still known without asking upstream again.
    const asked = upstream.calls.length;
    await bounded.resolve(repo, fakeCommit('c99'), {});
    expect(upstream.calls.length).toBe(asked);
  });

  it('keeps gated repos gated: no token → 401, refused token → 403, accepted token checked once per TTL', async () => {
    upstream.visible = 'gated';
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
    // An offline mirror on the same cache has no record that the repo is public: refused, token or not.
    const offline = new Catalog({ cache: new CacheView(root), revalidateAfterMs: 0, accessTtlMs: 0 });
    expect(((await offline.authorize(repo, 'main', 'a.txt', {}).catch((e: unknown) => e)) as HttpError).status).toBe(404);
    expect(((await offline.authorize(repo, 'main', 'a.txt', { clientToken: 'good' }).catch((e: unknown) => e)) as HttpError).status).toBe(404);
    // A public repo needs no token; once recorded, offline too.
    upstream.visible = 'public';
    now += 61_000;
    await catalog.authorize(repo, 'main', 'a.txt', {});
    await catalog.resolve(repo, 'main', {});
    await offline.authorize(repo, 'main', 'a.txt', {});
    // Gated again upstream: the record is withdrawn.
    upstream.visible = 'gated';
    now += 61_000;
    expect(((await catalog.authorize(repo, 'main', 'a.txt', {}).catch((e: unknown) => e)) as HttpError).status).toBe(401);
    expect(((await offline.authorize(repo, 'main', 'a.txt', {}).catch((e: unknown) => e)) as HttpError).status).toBe(404);
  });
});
