import { describe, expect, it } from 'vitest';
import { parseManifest } from './manifest.js';
import { diffManifestAndLock, parseLockfile, serialiseLockfile, type Lockfile } from './lockfile.js';

const commit = 'a'.repeat(40);
function sampleLock(): Lockfile {
  return {
    lockfileVersion: 1,
    models: [
      {
        source: 'hf',
        repoType: 'model',
        repo: 'org/b',
        revision: 'main',
        include: ['*.json', '*.bin'],
        exclude: [],
        commit,
        identity: `hf:model/org/b@${commit}`,
        files: [
          { path: 'z.bin', size: 3, digest: { algorithm: 'sha256', hex: 'b'.repeat(64) } },
          { path: 'config.json', size: 2, digest: { algorithm: 'git-sha1', hex: 'c'.repeat(40) } },
        ],
      },
      { source: 'hf', repoType: 'model', repo: 'org/a', revision: 'v1', include: [], exclude: [], commit, identity: `hf:model/org/a@${commit}`, files: [] },
    ],
  };
}

describe('lockfile', () => {
  it('serialises canonically: sorted models, files and keys, trailing newline, stable under reordering', () => {
    const text = serialiseLockfile(sampleLock());
    expect(text.endsWith('}\n')).toBe(true);
    expect(text.indexOf('org/a')).toBeLessThan(text.indexOf('org/b'));
    expect(text.indexOf('config.json')).toBeLessThan(text.indexOf('z.bin'));
    expect(text.indexOf('"algorithm"')).toBeLessThan(text.indexOf('"hex"'));
    const shuffled = sampleLock();
    shuffled.models.reverse();
    shuffled.models[1]!.files.reverse();
    expect(serialiseLockfile(shuffled)).toBe(text);
    expect(serialiseLockfile(parseLockfile(text))).toBe(text);
  });

  it.each([
    [(l: Lockfile) => (l.models[0]!.files[0]!.path = '../escape'), /Refusing path/],
    [(l: Lockfile) => (l.models[0]!.files[0]!.digest.hex = 'XYZ'), /digest/],
    [(l: Lockfile) => (l.models[0]!.commit = 'main'), /commit/],
    [(l: Lockfile) => (l.models[0]!.identity = 'hf:model/org/other@x'), /identity: expected/],
    [(l: Lockfile) => (l.models[0]!.files[0]!.size = -1), /size/],
    [(l: Lockfile) => Object.assign(l.models[0]!, { endpoint: 'https://mirror' }), /unknown field "endpoint"/],
  ])('refuses a malformed lockfile (%#)', (mutate, message) => {
    const lock = sampleLock();
    mutate(lock);
    expect(() => parseLockfile(JSON.stringify(lock))).toThrow(message);
  });

  it('reports every difference between the manifest and the lockfile', () => {
    const lock = parseLockfile(serialiseLockfile(sampleLock()));
    expect(diffManifestAndLock(parseManifest('models:\n  - repo: org/b\n    include: ["*.bin", "*.json"]\n  - repo: org/a\n    revision: v1\n'), lock)).toEqual([]);
    const changed = parseManifest('models:\n  - repo: org/b\n    include: ["*.json"]\n  - repo: org/c\n');
    expect(diffManifestAndLock(changed, lock)).toEqual([
      'hf:model/org/b@main: include ["*.json"] in the manifest, ["*.bin","*.json"] in the lockfile',
      'hf:model/org/c@main is in the manifest but not in the lockfile',
      'hf:model/org/a@v1 is in the lockfile but no longer in the manifest',
    ]);
  });
});
