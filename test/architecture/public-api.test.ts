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

  it('every error code has a description and the exit code the README documents', () => {
    // README "Exit codes": one row per number. A new code must be placed here and there deliberately.
    const documented: Record<number, api.ErrorCode[]> = {
      1: ['ERR_IO', 'ERR_PERMISSION', 'ERR_READ_ONLY', 'ERR_PORT_IN_USE'],
      2: ['ERR_USAGE'],
      3: ['ERR_INTEGRITY', 'ERR_SIZE', 'ERR_SIGNATURE', 'ERR_BAD_SAFETENSORS'],
      4: ['ERR_NOT_FOUND'],
      5: ['ERR_GATED', 'ERR_AUTH'],
      6: ['ERR_NETWORK', 'ERR_TLS', 'ERR_PROXY', 'ERR_STALL', 'ERR_HTTP', 'ERR_BAD_RESPONSE', 'ERR_RANGE_IGNORED', 'ERR_BAD_RANGE', 'ERR_ETAG_CHANGED', 'ERR_REDIRECT'],
      7: ['ERR_NO_SPACE'],
      8: ['ERR_OFFLINE', 'ERR_INCOMPLETE'],
      9: ['ERR_UNSAFE_PATH', 'ERR_INVALID_DIGEST'],
      10: ['ERR_LOCKED'],
      130: ['ERR_ABORTED'],
    };
    const placed = Object.values(documented).flat();
    expect([...placed].sort()).toEqual(Object.keys(api.ERROR_CODES).sort());
    for (const [exitCode, codes] of Object.entries(documented)) {
      for (const code of codes) {
        expect(api.ERROR_CODES[code].length, code).toBeGreaterThan(0);
        expect(api.exitCodeFor(new api.ModelfetchError(code, 'x')), code).toBe(Number(exitCode));
      }
    }
    expect(api.exitCodeFor(new Error('not ours'))).toBe(1);
  });
});
