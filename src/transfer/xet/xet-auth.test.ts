import { describe, expect, it } from 'vitest';
import { parseXetPointer, parseXetReadToken, xetAuthLink } from './xet-auth.js';

const HASH = 'ab'.repeat(32);
const headers = (values: Record<string, string>) => ({ get: (name: string) => values[name.toLowerCase()] ?? null });

describe('Xet pointers and read tokens', () => {
  it('finds the xet-auth link among other links, absolute or relative', () => {
    const link = '<https://hub.example/api/models/o/r/xet-reconstruction-info/x>; rel="xet-reconstruction-info", <https://hub.example/api/models/o/r/xet-read-token/c0ffee>; rel="xet-auth"';
    expect(xetAuthLink(link, 'https://hub.example')).toBe('https://hub.example/api/models/o/r/xet-read-token/c0ffee');
    expect(xetAuthLink('</api/models/o/r/xet-read-token/c0ffee>; rel=xet-auth', 'https://hub.example')).toBe('https://hub.example/api/models/o/r/xet-read-token/c0ffee');
    expect(xetAuthLink('<https://x/next>; rel="next"', 'https://hub.example')).toBeUndefined();
    expect(xetAuthLink(undefined, 'https://hub.example')).toBeUndefined();
  });

  it('reads X-Xet-Hash and the token link of a resolve answer; a plain file has no pointer', () => {
    const pointer = parseXetPointer(headers({ 'x-xet-hash': HASH.toUpperCase(), link: '<https://hub.example/api/models/o/r/xet-read-token/c0ffee>; rel="xet-auth"' }), 'https://hub.example');
    expect(pointer).toEqual({ fileHash: HASH, tokenUrl: 'https://hub.example/api/models/o/r/xet-read-token/c0ffee' });
    expect(parseXetPointer(headers({ etag: '"x"' }), 'https://hub.example')).toBeUndefined();
  });

  it('refuses a malformed hash and a token link on another origin (the Hub token would go there)', () => {
    expect(() => parseXetPointer(headers({ 'x-xet-hash': 'zz', link: '</t>; rel="xet-auth"' }), 'https://hub.example')).toThrow(/not a Xet hash/);
    expect(() => parseXetPointer(headers({ 'x-xet-hash': HASH, link: '<https://evil.example/t>; rel="xet-auth"' }), 'https://hub.example')).toThrow(/another origin/);
  });

  it('reads a read-token answer and strips a trailing slash from casUrl', () => {
    expect(parseXetReadToken({ accessToken: 'tok.en-1', casUrl: 'https://cas.example/', exp: 1_900_000_000 }, 'u')).toEqual({ accessToken: 'tok.en-1', casUrl: 'https://cas.example', expiresAt: 1_900_000_000 });
  });

  it.each([
    [null, /not a JSON object/],
    [{ casUrl: 'https://c', exp: 1 }, /accessToken is missing/],
    [{ accessToken: 'a\r\nX-Injected: 1', casUrl: 'https://c', exp: 1 }, /not a single printable token/],
    [{ accessToken: 'a', casUrl: 'ftp://c', exp: 1 }, /uses ftp:/],
    [{ accessToken: 'a', casUrl: 'https://u:p@c', exp: 1 }, /credentials/],
    [{ accessToken: 'a', casUrl: 'https://c', exp: '1' }, /exp is not a time/],
  ])('refuses a bad read-token answer %#', (json, message) => {
    expect(() => parseXetReadToken(json, 'https://hub.example/t')).toThrow(expect.objectContaining({ code: 'ERR_BAD_RESPONSE', message: expect.stringMatching(message) }));
  });
});
