import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { listTree, pathsInfo, repoInfo, treeFileEntry } from './hub-json.js';
import type { RepoFile } from '../core/types.js';

const gitSha1 = (data: Buffer): string => createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');
const small = (path: string, text: string): RepoFile => ({ path, size: Buffer.byteLength(text), digest: { algorithm: 'git-sha1', hex: gitSha1(Buffer.from(text)) } });

describe('hub-json', () => {
  it('gives LFS files the git id of their pointer file, as git and the Hub do', () => {
    const sha256 = 'a'.repeat(64);
    const entry = treeFileEntry({ path: 'w.bin', size: 12345, digest: { algorithm: 'sha256', hex: sha256 } });
    const pointer = `version https://git-lfs.github.com/spec/v1\noid sha256:${sha256}\nsize 12345\n`;
    expect(entry).toEqual({ type: 'file', oid: gitSha1(Buffer.from(pointer)), size: 12345, path: 'w.bin', lfs: { oid: sha256, size: 12345, pointerSize: pointer.length } });
  });

  it('computes folder ids equal to git write-tree', () => {
    const files = [small('config.json', '{}\n'), small('sub/a.txt', 'a\n'), small('sub/deeper/b.txt', 'b\n'), small('sub-file', 'x\n')];
    const tree = listTree(files, '', true)!;
    expect(tree.map((e) => `${e.type}:${e.path}`)).toEqual(['directory:sub', 'directory:sub/deeper', 'file:sub/deeper/b.txt', 'file:sub/a.txt', 'file:config.json', 'file:sub-file']);
    let git = true;
    try {
      execFileSync('git', ['--version'], { stdio: 'ignore' });
    } catch {
      git = false;
    }
    if (!git) return;
    const dir = mkdtempSync(join(tmpdir(), 'mf-tree-'));
    try {
      const run = (...args: string[]): string => execFileSync('git', args, { cwd: dir, encoding: 'utf8' }).trim();
      run('init', '-q');
      for (const [path, text] of [['config.json', '{}\n'], ['sub/a.txt', 'a\n'], ['sub/deeper/b.txt', 'b\n'], ['sub-file', 'x\n']] as const) {
        mkdirSync(join(dir, path, '..'), { recursive: true });
        writeFileSync(join(dir, path), text);
      }
      run('add', '.');
      const root = run('write-tree');
      const sub = run('rev-parse', `${root}:sub`);
      expect(tree.find((e) => e.path === 'sub')!.oid).toBe(sub);
      expect(listTree(files, 'sub', false)!.map((e) => e.path)).toEqual(['sub/deeper', 'sub/a.txt']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('answers paths-info for files and folders and skips unknown paths', () => {
    const files = [small('a/b.txt', 'b'), small('c.txt', 'c')];
    expect(pathsInfo(files, ['c.txt', 'a', 'nope']).map((e) => `${e.type}:${e.path}`)).toEqual(['file:c.txt', 'directory:a']);
    expect(listTree(files, 'missing', false)).toBeUndefined();
  });

  it('lists siblings with sizes and lfs info in repo info', () => {
    const info = repoInfo({ repoType: 'model', repoId: 'org/m', commit: 'c'.repeat(40), files: [small('x', 'x'), { path: 'w', size: 3, digest: { algorithm: 'sha256', hex: 'b'.repeat(64) } }] });
    expect(info).toMatchObject({ id: 'org/m', sha: 'c'.repeat(40), siblings: [{ rfilename: 'x', size: 1 }, { rfilename: 'w', size: 3, lfs: { sha256: 'b'.repeat(64), size: 3 } }] });
  });
});
