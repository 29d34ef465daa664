import { describe, expect, it } from 'vitest';
import { parseRoute } from './route.js';

describe('parseRoute', () => {
  it('maps the Hub endpoints for models, datasets and spaces, with one- and two-part repo ids', () => {
    expect(parseRoute('GET', '/api/models/org/name')).toEqual({ kind: 'info', repoType: 'model', repoId: 'org/name', revision: 'main' });
    expect(parseRoute('GET', '/api/models/gpt2')).toEqual({ kind: 'info', repoType: 'model', repoId: 'gpt2', revision: 'main' });
    expect(parseRoute('GET', '/api/datasets/org/d/revision/v1.0')).toEqual({ kind: 'info', repoType: 'dataset', repoId: 'org/d', revision: 'v1.0' });
    expect(parseRoute('GET', '/api/models/gpt2/revision/main')).toEqual({ kind: 'info', repoType: 'model', repoId: 'gpt2', revision: 'main' });
    expect(parseRoute('GET', '/api/spaces/org/s/tree/main/sub/dir')).toEqual({ kind: 'tree', repoType: 'space', repoId: 'org/s', revision: 'main', path: 'sub/dir' });
    expect(parseRoute('GET', '/api/models/org/name/tree/main')).toEqual({ kind: 'tree', repoType: 'model', repoId: 'org/name', revision: 'main', path: '' });
    expect(parseRoute('POST', '/api/models/org/name/paths-info/main')).toEqual({ kind: 'paths-info', repoType: 'model', repoId: 'org/name', revision: 'main' });
    expect(parseRoute('GET', '/org/name/resolve/main/a/b.bin')).toEqual({ kind: 'resolve', repoType: 'model', repoId: 'org/name', revision: 'main', path: 'a/b.bin' });
    expect(parseRoute('GET', '/gpt2/resolve/main/config.json')).toEqual({ kind: 'resolve', repoType: 'model', repoId: 'gpt2', revision: 'main', path: 'config.json' });
    expect(parseRoute('GET', '/datasets/org/d/resolve/main/x.csv')).toMatchObject({ kind: 'resolve', repoType: 'dataset', repoId: 'org/d' });
    expect(parseRoute('GET', '/spaces/org/s/resolve/main/app.py')).toMatchObject({ kind: 'resolve', repoType: 'space', repoId: 'org/s' });
    expect(parseRoute('GET', '/')).toEqual({ kind: 'status-page' });
    expect(parseRoute('GET', '/healthz')).toEqual({ kind: 'health' });
    expect(parseRoute('GET', '/api/_status')).toEqual({ kind: 'status-json' });
  });

  it('decodes an encoded revision (refs/pr/1) and file names with spaces', () => {
    expect(parseRoute('GET', '/org/name/resolve/refs%2Fpr%2F1/my%20file.txt')).toMatchObject({ revision: 'refs/pr/1', path: 'my file.txt' });
    expect(parseRoute('GET', '/api/models/org/name/revision/refs%2Fpr%2F1')).toMatchObject({ kind: 'info', revision: 'refs/pr/1' });
  });

  it('refuses every way of naming something outside the repository', () => {
    const refused = [
      '/org/name/resolve/main/../../../etc/passwd',
      '/org/name/resolve/main/a/%2e%2e/%2e%2e/secret',
      '/org/name/resolve/main/%2E%2E%2Fetc%2Fpasswd',
      '/org/name/resolve/main/a%2fb',
      '/org/name/resolve/main/a%5cb',
      '/org/name/resolve/main/a\\b',
      '/org/name/resolve/main/a//b',
      '/org/name/resolve/main/./a',
      '/org/name/resolve/..%2F..%2F/a',
      '/org/name/resolve/main/a%00b',
      '/org/name/resolve/main/%zz',
      '/api/models/org/..%2f..%2fetc/revision/main',
      '/api/models/org/name/tree/main/%2e%2e',
      '/%2e%2e/name/resolve/main/a',
    ];
    for (const path of refused) {
      expect(() => parseRoute('GET', path), path).toThrow(/Refusing request path/);
    }
  });

  it('answers not-found for what it does not serve', () => {
    expect(parseRoute('GET', '/api/whoami-v2')).toEqual({ kind: 'not-found' });
    expect(parseRoute('GET', '/org/name/blob/main/x')).toEqual({ kind: 'not-found' });
    expect(parseRoute('GET', '/api/models/org/name/paths-info/main')).toEqual({ kind: 'not-found' });
  });
});

describe('swarm routes', () => {
  const commit = 'c'.repeat(40);
  const digest = 'd'.repeat(64);
  it('parses announce, torrents (one- and two-part repo ids, nested paths) and blobs by digest', () => {
    expect(parseRoute('GET', '/api/swarm/announce')).toEqual({ kind: 'swarm-announce' });
    expect(parseRoute('GET', `/api/swarm/models/org/name/${commit}/sub/model.safetensors.torrent`)).toEqual({ kind: 'swarm-torrent', repoType: 'model', repoId: 'org/name', commit, path: 'sub/model.safetensors' });
    expect(parseRoute('GET', `/api/swarm/datasets/name/${commit}/a.bin.torrent`)).toEqual({ kind: 'swarm-torrent', repoType: 'dataset', repoId: 'name', commit, path: 'a.bin' });
    expect(parseRoute('GET', `/api/swarm/blobs/models/org/name/${commit}/${digest}`)).toEqual({ kind: 'swarm-blob', repoType: 'model', repoId: 'org/name', commit, digest });
  });

  it('refuses branches, paths without .torrent, bad digests and unsafe paths', () => {
    expect(parseRoute('GET', '/api/swarm/models/org/name/main/a.bin.torrent').kind).toBe('not-found');
    expect(parseRoute('GET', `/api/swarm/models/org/name/${commit}/a.bin`).kind).toBe('not-found');
    expect(parseRoute('GET', `/api/swarm/models/org/name/${commit}/.torrent`).kind).toBe('not-found');
    expect(parseRoute('GET', `/api/swarm/blobs/models/org/name/${commit}/${'D'.repeat(64)}`).kind).toBe('not-found');
    expect(parseRoute('GET', `/api/swarm/blobs/models/org/name/${commit}/${digest}/x`).kind).toBe('not-found');
    expect(() => parseRoute('GET', `/api/swarm/models/org/name/${commit}/%2e%2e/x.torrent`)).toThrow(expect.objectContaining({ code: 'ERR_UNSAFE_PATH' }));
  });
});
