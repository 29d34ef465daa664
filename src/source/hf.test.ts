import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFixtureHub, type FixtureHub } from '../../test/support/fixture-hub.js';
import { startFixtureServer } from '../../test/support/fixture-server.js';
import { isModelfetchError, type ModelfetchError } from '../core/errors.js';
import { fetchRepoVisibility, fetchRevisionCommit, hfResolveUrl, hubError, nextPageUrl, resolveHfSnapshot } from './hf.js';
import { parseRepoReference } from '../core/repo-ref.js';
import { readHfToken, resolveHfEndpoint } from '../core/env.js';
import { testTempDir } from '../../test/support/temp.js';

async function rejection(promise: Promise<unknown>): Promise<ModelfetchError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isModelfetchError(error)) throw new Error(`expected a ModelfetchError, got ${String(error)}`);
  return error;
}

describe('hf source against the fixture hub', () => {
  let hub: FixtureHub;
  beforeAll(async () => {
    hub = await startFixtureHub({
      pageSize: 2,
      repos: [
        {
          repoId: 'org/model',
          branches: {
            main: [
              { path: 'config.json', content: '{"model_type":"bert"}' },
              { path: 'model.safetensors', size: 3000, lfs: true },
              { path: 'sub/dir/tokenizer.json', content: '{}' },
              { path: 'README.md', content: '# hi' },
              { path: 'weird name+%.txt', content: 'x' },
            ],
            'feature/x': [{ path: 'config.json', content: '{"v":2}' }],
          },
        },
        { repoId: 'org/data', repoType: 'dataset', files: [{ path: 'train.csv', content: 'a,b\n' }] },
        { repoId: 'org/gated', gatedToken: 'hf_goodtokenvalue123', files: [{ path: 'w.bin', size: 10, lfs: true }] },
      ],
    });
  });
  afterAll(() => hub.close());

  it('resolves a branch to one commit and lists every file with its digest, across pages', async () => {
    const snapshot = await resolveHfSnapshot({ repoType: 'model', repoId: 'org/model' }, 'main', { endpoint: hub.endpoint });
    const commit = hub.commitOf('org/model');
    expect(snapshot.commit).toBe(commit);
    expect(snapshot.files.map((f) => f.path).sort()).toEqual(['README.md', 'config.json', 'model.safetensors', 'sub/dir/tokenizer.json', 'weird name+%.txt']);
    const lfs = snapshot.files.find((f) => f.path === 'model.safetensors')!;
    expect(lfs.digest).toEqual({ algorithm: 'sha256', hex: hub.file('org/model', 'model.safetensors').sha256 });
    expect(lfs.size).toBe(3000);
    const small = snapshot.files.find((f) => f.path === 'config.json')!;
    expect(small.digest).toEqual({ algorithm: 'git-sha1', hex: hub.file('org/model', 'config.json').gitSha1 });
    // Every URL pins the commit, never the branch.
    for (const file of snapshot.files) expect(file.urls[0]).toContain(`/resolve/${commit}/`);
    expect(snapshot.files.find((f) => f.path === 'weird name+%.txt')!.urls[0]).toMatch(/weird%20name%2B%25\.txt$/);
    // 5 files + 2 folders at 2 per page: 4 tree pages.
    const treeRequests = hub.hub.requests.filter((r) => r.url.includes('/tree/'));
    expect(treeRequests.length).toBe(4);
  });

  it('resolves branches with a slash as one URL segment, and datasets under /datasets/', async () => {
    const snapshot = await resolveHfSnapshot({ repoType: 'model', repoId: 'org/model' }, 'feature/x', { endpoint: hub.endpoint });
    expect(snapshot.commit).toBe(hub.commitOf('org/model', 'feature/x'));
    const data = await resolveHfSnapshot({ repoType: 'dataset', repoId: 'org/data' }, 'main', { endpoint: hub.endpoint });
    expect(data.files[0]!.urls[0]).toBe(`${hub.endpoint}/datasets/org/data/resolve/${hub.commitOf('org/data', 'main', 'dataset')}/train.csv`);
  });

  it('maps X-Error-Code answers to errors with hints', async () => {
    const missing = await rejection(resolveHfSnapshot({ repoType: 'model', repoId: 'org/nope' }, 'main', { endpoint: hub.endpoint }));
    expect(missing.code).toBe('ERR_NOT_FOUND');
    expect(missing.hint).toMatch(/repo name/);
    const badRev = await rejection(resolveHfSnapshot({ repoType: 'model', repoId: 'org/model' }, 'nope', { endpoint: hub.endpoint }));
    expect(badRev.code).toBe('ERR_NOT_FOUND');
    expect(badRev.message).toMatch(/Revision "nope"/);
    const gated = await rejection(resolveHfSnapshot({ repoType: 'model', repoId: 'org/gated' }, 'main', { endpoint: hub.endpoint }));
    expect(gated.code).toBe('ERR_GATED');
    expect(gated.hint).toContain('HF_TOKEN');
    expect(gated.hint).toContain(`${hub.endpoint}/org/gated`);
    const wrong = await rejection(resolveHfSnapshot({ repoType: 'model', repoId: 'org/gated' }, 'main', { endpoint: hub.endpoint, token: 'hf_wrongtokenvalue999' }));
    expect(wrong.code).toBe('ERR_GATED');
    expect(JSON.stringify(wrong.toJSON())).not.toContain('hf_wrongtokenvalue999');
    const ok = await resolveHfSnapshot({ repoType: 'model', repoId: 'org/gated' }, 'main', { endpoint: hub.endpoint, token: 'hf_goodtokenvalue123' });
    expect(ok.files).toHaveLength(1);
  });

  it('says which thing was not found as a reason, not only in the message', async () => {
    const missing = await rejection(resolveHfSnapshot({ repoType: 'model', repoId: 'org/nope' }, 'main', { endpoint: hub.endpoint }));
    expect(missing.reason).toBe('repo-not-found');
    const badRev = await rejection(resolveHfSnapshot({ repoType: 'model', repoId: 'org/model' }, 'nope', { endpoint: hub.endpoint }));
    expect(badRev.reason).toBe('revision-not-found');
    const gated = await rejection(resolveHfSnapshot({ repoType: 'model', repoId: 'org/gated' }, 'main', { endpoint: hub.endpoint }));
    expect(gated.reason).toBe('gated');
    // The visibility check tells a missing revision of a visible repo (its answer) from a hidden repo.
    expect(await fetchRepoVisibility({ repoType: 'model', repoId: 'org/nope' }, 'main', { endpoint: hub.endpoint })).toBe('hidden');
    expect(await fetchRepoVisibility({ repoType: 'model', repoId: 'org/gated' }, 'main', { endpoint: hub.endpoint })).toBe('gated');
    const revision = await rejection(fetchRepoVisibility({ repoType: 'model', repoId: 'org/model' }, 'nope', { endpoint: hub.endpoint }));
    expect(revision.reason).toBe('revision-not-found');
    // Each X-Error-Code gives its reason; a bare 404 names none.
    const context = { repoType: 'model' as const, repoId: 'org/m', endpoint: hub.endpoint, revision: 'main', path: 'a.bin', hadToken: false };
    const reasonOf = (code: string | undefined, status = 404) => hubError({ status, headers: code ? { 'x-error-code': code } : {}, url: hub.endpoint }, context).reason;
    expect([reasonOf('RepoNotFound'), reasonOf('RevisionNotFound'), reasonOf('EntryNotFound'), reasonOf('GatedRepo', 403), reasonOf(undefined), reasonOf(undefined, 401)]).toEqual([
      'repo-not-found',
      'revision-not-found',
      'entry-not-found',
      'gated',
      undefined,
      'repo-not-found',
    ]);
  });

  it('retries a 503 from the API, and gives up with ERR_HTTP when it persists', async () => {
    hub.hub.addFault({ times: 1, match: (req) => (req.url ?? '').includes('/tree/'), fault: { status: 503 } });
    const snapshot = await resolveHfSnapshot({ repoType: 'dataset', repoId: 'org/data' }, 'main', { endpoint: hub.endpoint });
    expect(snapshot.files.map((f) => f.path)).toEqual(['train.csv']);
    hub.hub.addFault({ match: (req) => (req.url ?? '').includes('/revision/'), fault: { status: 500 } });
    try {
      const error = await rejection(resolveHfSnapshot({ repoType: 'dataset', repoId: 'org/data' }, 'main', { endpoint: hub.endpoint }));
      expect(error.code).toBe('ERR_HTTP');
      expect(error.status).toBe(500);
    } finally {
      hub.hub.clearFaults();
    }
  });

  it('skips the revision call when the revision is a commit', async () => {
    hub.resetLogs();
    const commit = hub.commitOf('org/model');
    await resolveHfSnapshot({ repoType: 'model', repoId: 'org/model' }, commit, { endpoint: hub.endpoint });
    expect(hub.hub.requests.some((r) => r.url.includes('/revision/'))).toBe(false);
  });

  it('urls resolve under the endpoint path prefix', () => {
    expect(hfResolveUrl('http://h/mirror', { repoType: 'space', repoId: 'a/b' }, 'refs/pr/1', 'x y/z')).toBe('http://h/mirror/spaces/a/b/resolve/refs%2Fpr%2F1/x%20y/z');
  });
});

describe('hostile listings', () => {
  const commit = 'a'.repeat(40);
  async function serveListing(entries: unknown[], link?: (origin: string) => string) {
    const server = await startFixtureServer();
    server.route('/api/models/org/evil/tree/', (_req, res) => {
      res.setHeader('Content-Type', 'application/json');
      if (link) res.setHeader('Link', link(server.origin));
      res.end(JSON.stringify(entries));
    });
    return server;
  }

  it.each([
    [{ type: 'file', path: '../x', oid: 'b'.repeat(40), size: 1 }, 'ERR_UNSAFE_PATH'],
    [{ type: 'file', path: '/etc/passwd', oid: 'b'.repeat(40), size: 1 }, 'ERR_UNSAFE_PATH'],
    [{ type: 'file', path: 'ok.bin', oid: 'b'.repeat(40), size: 1, lfs: { oid: 'ZZZ', size: 1 } }, 'ERR_INVALID_DIGEST'],
    [{ type: 'file', path: 'ok.txt', oid: '../../x', size: 1 }, 'ERR_INVALID_DIGEST'],
    [{ type: 'file', path: 'ok.txt', oid: 'b'.repeat(40), size: -5 }, 'ERR_BAD_RESPONSE'],
    [{ type: 'file', path: 'ok.txt', oid: 'b'.repeat(40), size: 1.5 }, 'ERR_BAD_RESPONSE'],
  ])('refuses %j', async (entry, code) => {
    const server = await serveListing([entry]);
    try {
      const error = await rejection(resolveHfSnapshot({ repoType: 'model', repoId: 'org/evil' }, commit, { endpoint: server.origin }));
      expect(error.code).toBe(code);
    } finally {
      await server.close();
    }
  });

  it('follows an API redirect on the endpoint, refuses one to another origin, and sends that origin nothing', async () => {
    const elsewhere = await startFixtureServer();
    const server = await startFixtureServer();
    server.route('/api/models/org/moved/', (_req, res) => {
      res.writeHead(307, { Location: '/api/models/org/model/revision/main' });
      res.end();
    });
    server.route('/api/models/org/model/revision/main', (_req, res) => {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ sha: commit }));
    });
    server.route('/api/models/org/away/', (_req, res) => {
      res.writeHead(302, { Location: `${elsewhere.origin}/api/models/org/model/revision/main` });
      res.end();
    });
    try {
      const options = { endpoint: server.origin, token: 'hf_secretsecret123' };
      expect(await fetchRevisionCommit({ repoType: 'model', repoId: 'org/moved' }, 'main', options)).toBe(commit);
      const error = await rejection(fetchRevisionCommit({ repoType: 'model', repoId: 'org/away' }, 'main', options));
      expect(error.code).toBe('ERR_REDIRECT');
      expect(elsewhere.requests).toHaveLength(0);
    } finally {
      await Promise.all([server.close(), elsewhere.close()]);
    }
  });

  it('refuses an endless JSON body that never said its length', async () => {
    const server = await startFixtureServer();
    server.route('/api/models/org/endless/', (req, res) => {
      res.setHeader('Content-Type', 'application/json');
      const chunk = Buffer.alloc(1024 * 1024, 0x20);
      const pump = (): void => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once('drain', pump);
      };
      req.socket.on('close', () => res.destroy());
      pump();
    });
    try {
      const error = await rejection(fetchRevisionCommit({ repoType: 'model', repoId: 'org/endless' }, 'main', { endpoint: server.origin }));
      expect(error.code).toBe('ERR_BAD_RESPONSE');
      expect(error.message).toMatch(/more than \d+ bytes of JSON/);
    } finally {
      await server.close();
    }
  });

  it('names the cause when the hub cannot be reached', async () => {
    const server = await startFixtureServer();
    const origin = server.origin;
    await server.close();
    const error = await rejection(fetchRevisionCommit({ repoType: 'model', repoId: 'org/model' }, 'main', { endpoint: origin }));
    expect(error.code).toBe('ERR_NETWORK');
    expect(error.message).toMatch(/ECONNREFUSED/);
  });

  it('does not follow a next page to another origin (the token stays home)', async () => {
    const elsewhere = await startFixtureServer();
    const server = await serveListing([], () => `<${elsewhere.origin}/api/models/org/evil/tree/x?cursor=1>; rel="next"`);
    try {
      const error = await rejection(resolveHfSnapshot({ repoType: 'model', repoId: 'org/evil' }, commit, { endpoint: server.origin, token: 'hf_secretsecret123' }));
      expect(error.code).toBe('ERR_REDIRECT');
      expect(elsewhere.requests).toHaveLength(0);
    } finally {
      await Promise.all([server.close(), elsewhere.close()]);
    }
  });
});

describe('configuration', () => {
  it('reads the token from the flag, HF_TOKEN, HF_TOKEN_PATH, then HF_HOME/token', async () => {
    const dir = await testTempDir('mf-token-');
    await writeFile(join(dir, 'token'), 'hf_fromhomefile123\n');
    await writeFile(join(dir, 'other'), 'hf_frompathfile123\n');
    expect(await readHfToken('hf_flag', { HF_TOKEN: 'hf_env' })).toBe('hf_flag');
    expect(await readHfToken(undefined, { HF_TOKEN: 'hf_env', HF_HOME: dir })).toBe('hf_env');
    expect(await readHfToken(undefined, { HF_TOKEN_PATH: join(dir, 'other'), HF_HOME: dir })).toBe('hf_frompathfile123');
    expect(await readHfToken(undefined, { HF_HOME: dir })).toBe('hf_fromhomefile123');
    expect(await readHfToken(undefined, { HF_HOME: join(dir, 'none') })).toBeUndefined();
  });

  it('normalises endpoints and repo references', () => {
    expect(resolveHfEndpoint(undefined, {})).toBe('https://huggingface.co');
    expect(resolveHfEndpoint(undefined, { HF_ENDPOINT: 'https://hf-mirror.com/' })).toBe('https://hf-mirror.com');
    expect(resolveHfEndpoint('http://127.0.0.1:9/prefix/', {})).toBe('http://127.0.0.1:9/prefix');
    expect(() => resolveHfEndpoint('ftp://x', {})).toThrow(/Invalid hub endpoint/);
    expect(() => resolveHfEndpoint('https://user:pw@x', {})).toThrow(/Invalid hub endpoint/);
    expect(parseRepoReference('org/name@refs/pr/1')).toEqual({ repoId: 'org/name', revision: 'refs/pr/1' });
    expect(parseRepoReference('gpt2')).toEqual({ repoId: 'gpt2' });
    expect(() => parseRepoReference('org/name@')).toThrow(/Empty revision/);
    expect(() => parseRepoReference('../x')).toThrow(/Invalid repo id/);
  });

  it('parses Link headers', () => {
    expect(nextPageUrl('<https://h/api?cursor=2>; rel="next"', 'https://h/x')).toBe('https://h/api?cursor=2');
    expect(nextPageUrl('</api?c=3>; rel="next", <https://h/p>; rel="prev"', 'https://h/x')).toBe('https://h/api?c=3');
    expect(nextPageUrl('<https://h/p>; rel="prev"', 'https://h/x')).toBeUndefined();
  });
});
