import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { hasTool } from '../../test/support/tools.js';
import { ModelScopePaths, resolveModelScopeCache, writeModelScopeMetadata } from './modelscope-layout.js';
import { testTempDir } from '../../test/support/temp.js';

describe('ModelScope layout', () => {
  it('places files the way the modelscope library does', () => {
    expect(resolveModelScopeCache({}, '/home/u')).toBe('/home/u/.cache/modelscope/hub');
    const paths = new ModelScopePaths('/c', 'Qwen/Qwen2.5-0.5B');
    expect(paths.dir).toBe('/c/models/Qwen/Qwen2___5-0___5B');
    expect(paths.metaId).toBe('Qwen/Qwen2___5-0___5B');
    expect(paths.file('a/b.json')).toBe('/c/models/Qwen/Qwen2___5-0___5B/a/b.json');
    expect(() => paths.file('../x')).toThrow();
  });

  describe.skipIf(!hasTool('python3'))('metadata read by Python', () => {
    it('writes .mdl and .msc pickles and .mv text that Python loads as modelscope expects', async () => {
      const root = await testTempDir('mf-ms-');
      const paths = new ModelScopePaths(root, 'org/m.v2');
      await writeModelScopeMetadata(paths, 'master', 'c'.repeat(40), [{ path: 'config.json' }, { path: 'sub/模型.bin', revision: 'd'.repeat(40) }], Date.UTC(2024, 0, 1));
      const script = 'import pickle,sys,json; print(json.dumps([pickle.load(open(sys.argv[1],"rb")), pickle.load(open(sys.argv[2],"rb"))], ensure_ascii=False))';
      const out = execFileSync('python3', ['-c', script, paths.meta, paths.keys], { encoding: 'utf8' });
      expect(JSON.parse(out)).toEqual([
        { id: 'org/m___v2' },
        [
          { Path: 'config.json', Revision: 'c'.repeat(40) },
          { Path: 'sub/模型.bin', Revision: 'd'.repeat(40) },
        ],
      ]);
      expect(await readFile(paths.version, 'utf8')).toBe('Revision:master,CreatedAt:1704067200');
    });
  });
});
