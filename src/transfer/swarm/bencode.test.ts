import { describe, expect, it } from 'vitest';
import { bdecode, bencode } from './bencode.js';

describe('bencode', () => {
  it('encodes as BEP 3 shows, with dictionary keys in byte order', () => {
    expect(bencode({ spam: [Buffer.from('a'), Buffer.from('b')], cow: Buffer.from('moo'), n: -3 }).toString()).toBe('d3:cow3:moo1:ni-3e4:spaml1:a1:bee');
  });

  it('round-trips binary strings, integers, lists and nested dictionaries', () => {
    const value = { info: { pieces: Buffer.from([0, 255, 10, 58]), 'piece length': 4194304, length: 0 }, 'url-list': [Buffer.from('http://h/x')] };
    const encoded = bencode(value);
    expect(bdecode(encoded)).toEqual(value);
    expect(bencode(bdecode(encoded))).toEqual(encoded);
  });

  it.each([
    ['trailing data', 'i1ei2e'],
    ['leading zero', 'i01e'],
    ['negative zero', 'i-0e'],
    ['string longer than the data', '5:abc'],
    ['unsorted keys', 'd1:bi1e1:ai2ee'],
    ['duplicate keys', 'd1:ai1e1:ai2ee'],
    ['non-string key', 'di1ei2ee'],
    ['unterminated list', 'li1e'],
    ['unknown type', 'x'],
    ['unsafe integer', 'i99999999999999999999e'],
  ])('refuses %s with ERR_BAD_RESPONSE', (_what, input) => {
    expect(() => bdecode(Buffer.from(input))).toThrow(expect.objectContaining({ code: 'ERR_BAD_RESPONSE' }));
  });

  it('refuses nesting deep enough to exhaust the stack', () => {
    expect(() => bdecode(Buffer.from(`${'l'.repeat(10_000)}${'e'.repeat(10_000)}`))).toThrow(expect.objectContaining({ code: 'ERR_BAD_RESPONSE' }));
  });
});
