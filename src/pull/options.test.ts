import { describe, expect, it } from 'vitest';
import { ModelfetchError } from '../core/errors.js';
import type { RepoType } from '../core/types.js';
import { checkPullOptions, parseConnections, type PullOptions } from './options.js';

/** Every option of `pull` is checked here once, with the messages the CLI shows for the same flags. */

function refusal(options: PullOptions): ModelfetchError {
  try {
    checkPullOptions({ env: {}, ...options });
  } catch (error) {
    if (error instanceof ModelfetchError) return error;
    throw error;
  }
  throw new Error(`accepted ${JSON.stringify(options)}`);
}

describe('checkPullOptions', () => {
  it('refuses each bad flag with one usage message', () => {
    expect(refusal({ repo: 'org/x', cacheDir: '/a', localDir: '/b' })).toMatchObject({ code: 'ERR_USAGE', message: '--cache-dir and --local-dir exclude each other' });
    expect(refusal({ repo: 'org/x', connections: 0 })).toMatchObject({ code: 'ERR_USAGE', message: 'Invalid --connections "0"', hint: 'Use a whole number from 1 to 256.' });
    expect(refusal({ repo: 'org/x', repoType: 'modell' as RepoType })).toMatchObject({ code: 'ERR_USAGE', message: 'Unknown --repo-type "modell"' });
    expect(refusal({ repo: 'org/x', dtype: 'f8' })).toMatchObject({ code: 'ERR_USAGE', message: 'Unknown --dtype "f8"' });
    expect(refusal({ repo: 'ms://org/x', repoType: 'dataset' })).toMatchObject({ code: 'ERR_USAGE', message: 'ModelScope pulls are models only' });
    expect(refusal({ repo: 'ms://org/x', dtype: 'bf16' }).message).toMatch(/^--dtype cannot convert inside a ModelScope cache: the modelscope library would take/);
    expect(checkPullOptions({ repo: 'org/x', dtype: 'bf16', localDir: '/b', env: {} }).repoId).toBe('org/x');
    expect(checkPullOptions({ repo: 'ms://org/x', dtype: 'bf16', localDir: '/b', env: {} }).modelscope).toBe(true);
    expect(checkPullOptions({ repo: 'ms://org/x', dtype: 'bf16', layout: 'hf', env: {} }).modelscopeLayout).toBe(false);
    expect(refusal({ repo: 'org/x@main', listing: [] }).message).toBe('A pinned listing needs a commit as revision, not "main"');
    expect(refusal({ repo: 'org/x', files: ['../etc/passwd'] }).code).toBe('ERR_UNSAFE_PATH');
    expect(refusal({ repo: '../x' }).code).toBe('ERR_USAGE');
  });

  it('parses the reference once: repo id, revision, source and defaults', () => {
    expect(checkPullOptions({ repo: 'org/x@v1', env: {} })).toMatchObject({ repoId: 'org/x', revision: 'v1', revisionGiven: true, repoType: 'model', modelscope: false, offline: false, requested: [] });
    expect(checkPullOptions({ repo: 'org/x', env: { HF_HUB_OFFLINE: '1' }, files: ['./a/b.json'] })).toMatchObject({ revision: 'main', revisionGiven: false, offline: true, requested: ['a/b.json'] });
    expect(checkPullOptions({ repo: 'ms://org/x', env: {} })).toMatchObject({ repoId: 'org/x', revision: 'master', modelscope: true, modelscopeLayout: true });
    expect(checkPullOptions({ repo: 'ms://org/x', layout: 'hf', env: {} }).modelscopeLayout).toBe(false);
  });

  it('takes --connections as the CLI gives it (text) and as a library caller does (a number)', () => {
    expect(parseConnections('8')).toBe(8);
    expect(parseConnections(256)).toBe(256);
    expect(() => parseConnections('abc')).toThrow('Invalid --connections "abc"');
    expect(() => parseConnections(1.5)).toThrow('Invalid --connections "1.5"');
  });
});
