import { readFile, writeFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commitTempFile, nodeCommitFs, type CommitFs } from './atomic.js';
import { testTempDir } from '../../test/support/temp.js';

function recordingFs(calls: string[], overrides: Partial<CommitFs> = {}): CommitFs {
  const wrap = <K extends keyof CommitFs>(name: K): CommitFs[K] => {
    const impl = (overrides[name] ?? nodeCommitFs[name]) as (...args: string[]) => Promise<unknown>;
    return (async (...args: string[]) => {
      calls.push(name);
      return impl(...args);
    }) as unknown as CommitFs[K];
  };
  return { fsyncFile: wrap('fsyncFile'), link: wrap('link'), rename: wrap('rename'), unlink: wrap('unlink'), exists: wrap('exists'), fsyncDir: wrap('fsyncDir') };
}

describe('commitTempFile', () => {
  it('syncs the data, links into place without overwrite, then syncs the directory', async () => {
    const dir = await testTempDir('mf-atomic-');
    await writeFile(join(dir, 't'), 'data');
    const calls: string[] = [];
    expect(await commitTempFile(join(dir, 't'), join(dir, 'final'), recordingFs(calls))).toBe('committed');
    expect(calls).toEqual(['fsyncFile', 'link', 'unlink', 'fsyncDir']);
    expect(await readFile(join(dir, 'final'), 'utf8')).toBe('data');
    expect(await readdir(dir)).toEqual(['final']);
  });

  it('never overwrites an existing target and drops the temp file', async () => {
    const dir = await testTempDir('mf-atomic-');
    await writeFile(join(dir, 't'), 'new');
    await writeFile(join(dir, 'final'), 'old');
    expect(await commitTempFile(join(dir, 't'), join(dir, 'final'))).toBe('exists');
    expect(await readFile(join(dir, 'final'), 'utf8')).toBe('old');
    expect(await readdir(dir)).toEqual(['final']);
  });

  it('falls back to rename where hard links are unsupported', async () => {
    const dir = await testTempDir('mf-atomic-');
    await writeFile(join(dir, 't'), 'data');
    const calls: string[] = [];
    const noLinks = recordingFs(calls, { link: async () => Promise.reject(Object.assign(new Error('no links'), { code: 'EPERM' })) });
    expect(await commitTempFile(join(dir, 't'), join(dir, 'final'), noLinks)).toBe('committed');
    expect(calls).toEqual(['fsyncFile', 'link', 'exists', 'rename', 'fsyncDir']);
    expect(await readFile(join(dir, 'final'), 'utf8')).toBe('data');
  });

  it('reports a full disk as ERR_NO_SPACE', async () => {
    const full = recordingFs([], { fsyncFile: async () => Promise.reject(Object.assign(new Error('nospc'), { code: 'ENOSPC' })) });
    await expect(commitTempFile('/nonexistent/t', '/nonexistent/f', full)).rejects.toMatchObject({ code: 'ERR_NO_SPACE' });
  });
});
