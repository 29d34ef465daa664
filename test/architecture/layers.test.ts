import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { upwardImports, upwardImportsOf } from './layers.js';

const srcRoot = fileURLToPath(new URL('../../src/', import.meta.url));

describe('src/ imports only downward (DESIGN.md, "Where the next capabilities land")', () => {
  it('no file under src/ imports from its own line or above', () => {
    expect(upwardImports(srcRoot)).toEqual([]);
  });

  it('catches an upward import, a sibling import, a dynamic import and an unplaced folder', () => {
    expect(upwardImportsOf('cache/scan.ts', "import type { X } from '../source/types.js';")).toEqual([
      { file: 'cache/scan.ts', imports: 'source/types.ts', reason: 'source is above cache' },
    ]);
    expect(upwardImportsOf('preload/sync.ts', "const s = await import('../server/route.js');")).toEqual([
      { file: 'preload/sync.ts', imports: 'server/route.ts', reason: 'server is on the same line as preload' },
    ]);
    expect(upwardImportsOf('transfer/xet/xet-download.ts', "import { f } from '../../pull/index.js';")[0]?.reason).toBe('pull is above transfer');
    expect(upwardImportsOf('gadgets/x.ts', "import { a } from '../core/errors.js';")[0]?.reason).toBe('gadgets is not placed in the layer order');
    expect(upwardImportsOf('core/x.ts', "import { a } from '../../test/support/temp.js';")[0]?.reason).toBe('imports from outside src/');
  });

  it('allows imports within a folder and from lower lines', () => {
    expect(upwardImportsOf('transfer/xet/xet-download.ts', "import { a } from '../http.js';\nimport { b } from '../../cache/layout.js';\nimport { c } from '../../core/errors.js';")).toEqual([]);
    expect(upwardImportsOf('cli/pull.ts', "import { pull } from '../pull/index.js';")).toEqual([]);
  });
});
