import { describe, expect, it } from 'vitest';
import * as api from '../../src/index.js';

/**
 * The library's public surface is a decision, not an accident: adding or removing an export is a
 * change to this list, reviewed as an API change. Engine internals must not leak into it.
 */
const PUBLIC_VALUES = [
  'ERROR_CODES', 'ModelfetchError', 'bake', 'convertSnapshot', 'derivedSnapshotId', 'diffManifestAndLock', 'exitCodeFor',
  'exportLockedTree', 'gcCache', 'get', 'inspect', 'isModelfetchError', 'lockManifest', 'modelEnvironment', 'parseLockfile',
  'parseManifest', 'pull', 'readDerivedRecord', 'readLockfile', 'readManifest', 'readVerifiedLockfile', 'removeFromCache',
  'createMirrorServer', 'repairCache', 'runWithModels', 'scanCache', 'serialiseLockfile', 'serve', 'signBytes', 'signLockfile', 'supervise',
  'syncLockfile', 'verifyBytes', 'verifyCache', 'writeKeyPair', 'writeLockfile', 'writeOciLayout',
];

describe('public API (src/index.ts)', () => {
  it('exports exactly the documented functions and values', () => {
    expect(Object.keys(api).sort()).toEqual([...PUBLIC_VALUES].sort());
  });

  it('keeps engine internals out', () => {
    for (const internal of ['transferFiles', 'transferFile', 'createConnectionBudget', 'markRevisionInUse', 'isRevisionInUse', 'holdRevision', 'touchRevision']) {
      expect(Object.keys(api)).not.toContain(internal);
    }
  });

  it('every error code has a description and an exit code', () => {
    for (const code of Object.keys(api.ERROR_CODES) as api.ErrorCode[]) {
      expect(api.ERROR_CODES[code].length).toBeGreaterThan(0);
      expect(api.exitCodeFor(new api.ModelfetchError(code, 'x'))).toBeGreaterThan(0);
    }
  });
});
