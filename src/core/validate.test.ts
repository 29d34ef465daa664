import { describe, expect, it } from 'vitest';
import { assertCommit, assertDigest, assertSafeRelativePath, strongEtag } from './validate.js';

describe('server-sent values', () => {
  it.each(['../x', '/abs', 'C:\\x', 'C:x', 'a\\..\\..\\b', 'a/\0b', '', 'a//b', 'a/./b', 'a/..', '..'])('refuses path %j', (path) => {
    expect(() => assertSafeRelativePath(path, 'test')).toThrowError(expect.objectContaining({ code: 'ERR_UNSAFE_PATH' }));
  });

  it.each(['config.json', 'a/b/c.safetensors', 'tokenizer/vocab.txt', 'ünïcödé/名前.bin', '.gitattributes'])('accepts path %j', (path) => {
    expect(assertSafeRelativePath(path, 'test')).toBe(path);
  });

  it('refuses digests and commits that are not hex of the right length', () => {
    const hex64 = 'a'.repeat(64);
    expect(assertDigest({ algorithm: 'sha256', hex: hex64 }, 't').hex).toBe(hex64);
    for (const hex of ['a'.repeat(63), 'a'.repeat(65), '../' + 'a'.repeat(61), 'A'.repeat(64), 'g'.repeat(64)]) {
      expect(() => assertDigest({ algorithm: 'sha256', hex }, 't')).toThrowError(expect.objectContaining({ code: 'ERR_INVALID_DIGEST' }));
    }
    expect(() => assertDigest({ algorithm: 'git-sha1', hex: 'a'.repeat(64) }, 't')).toThrow();
    expect(assertCommit('0'.repeat(40), 't')).toBe('0'.repeat(40));
    expect(() => assertCommit('main', 't')).toThrow();
  });

  it('takes only strong ETags', () => {
    expect(strongEtag('"abc"')).toBe('abc');
    expect(strongEtag('W/"abc"')).toBeUndefined();
    expect(strongEtag('abc')).toBeUndefined();
    expect(strongEtag(undefined)).toBeUndefined();
  });
});
