import { describe, expect, it } from 'vitest';
import { parseReconstruction } from './reconstruction.js';

const X1 = 'a'.repeat(64);
const X2 = 'b'.repeat(64);
const URL_BASE = 'https://cas.example/xorbs/default';

function v1(): Record<string, unknown> {
  return {
    offset_into_first_range: 0,
    terms: [
      { hash: X1, range: { start: 0, end: 2 }, unpacked_length: 150_000 },
      { hash: X2, range: { start: 3, end: 4 }, unpacked_length: 50_000 },
      { hash: X1, range: { start: 0, end: 2 }, unpacked_length: 150_000 },
    ],
    fetch_info: {
      [X1]: [{ range: { start: 0, end: 2 }, url: `${URL_BASE}/${X1}?sig=1`, url_range: { start: 0, end: 99_999 } }],
      [X2]: [{ range: { start: 3, end: 4 }, url: `${URL_BASE}/${X2}?sig=2`, url_range: { start: 120_000, end: 150_015 } }],
    },
  };
}

function v2(): Record<string, unknown> {
  return {
    offset_into_first_range: 0,
    terms: [
      { hash: X1, range: { start: 0, end: 2 }, unpacked_length: 150_000 },
      { hash: X1, range: { start: 5, end: 6 }, unpacked_length: 10_000 },
    ],
    xorbs: {
      [X1]: [{ url: `${URL_BASE}/${X1}?sig=multi`, ranges: [{ chunks: { start: 0, end: 2 }, bytes: { start: 0, end: 99_999 } }, { chunks: { start: 5, end: 6 }, bytes: { start: 200_000, end: 205_007 } }] }],
    },
  };
}

const parse1 = (json: unknown, expectedLength = 350_000) => parseReconstruction(json, { version: 1, url: 'https://cas.example/v1/reconstructions/x', expectedLength });

describe('Xet reconstruction parsing', () => {
  it('reads a v1 answer into terms that each point at the fetch covering them, fetching a repeated range once', () => {
    const r = parse1(v1());
    expect(r.terms.map((t) => [t.xorbHash, t.chunkStart, t.chunkEnd, t.unpackedLength])).toEqual([[X1, 0, 2, 150_000], [X2, 3, 4, 50_000], [X1, 0, 2, 150_000]]);
    expect(r.fetches).toHaveLength(2);
    expect(r.terms[0]?.fetch).toBe(r.terms[2]?.fetch);
    expect(r.fetches[1]).toMatchObject({ url: `${URL_BASE}/${X2}?sig=2`, rangeHeader: 'bytes=120000-150015', byteStart: 120_000, byteEnd: 150_015 });
    expect(r.length).toBe(350_000);
  });

  it('reads a v2 answer: each range of a multi-range URL is its own fetch with its exact Range header', () => {
    const r = parseReconstruction(v2(), { version: 2, url: 'https://cas.example/v2/reconstructions/x', expectedLength: 160_000 });
    expect(r.fetches.map((f) => [f.url, f.rangeHeader, f.chunkStart, f.chunkEnd])).toEqual([
      [`${URL_BASE}/${X1}?sig=multi`, 'bytes=0-99999', 0, 2],
      [`${URL_BASE}/${X1}?sig=multi`, 'bytes=200000-205007', 5, 6],
    ]);
  });

  it('accepts an offset into the first term and a last term running past a requested byte range', () => {
    const body = { ...v1(), offset_into_first_range: 1000 };
    expect(parseReconstruction(body, { version: 1, url: 'u', expectedLength: 300_000, partial: true }).length).toBe(349_000);
    expect(() => parse1(body)).toThrow(/produce 349000 bytes; 350000 were asked for/);
  });

  const hostile: Array<[string, (b: Record<string, unknown>) => unknown, RegExp]> = [
    ['a body that is not an object', () => [1, 2], /the body is not an object/],
    ['a missing terms list', (b) => ({ ...b, terms: undefined }), /terms is not a list/],
    ['a negative offset', (b) => ({ ...b, offset_into_first_range: -1 }), /offset_into_first_range is not a non-negative integer/],
    ['an offset past the first term', (b) => ({ ...b, offset_into_first_range: 150_000 }), /not inside the first term/],
    ['a fractional length', (b) => ({ ...b, terms: [{ hash: X1, range: { start: 0, end: 2 }, unpacked_length: 1.5 }] }), /unpacked_length is not a non-negative integer/],
    ['an uppercase hash', (b) => ({ ...b, terms: [{ hash: X1.toUpperCase(), range: { start: 0, end: 2 }, unpacked_length: 5 }] }), /terms\[0\]\.hash is not a Xet hash/],
    ['a path-like xorb key', (b) => ({ ...b, fetch_info: { '../etc': [] } }), /a fetch_info key is not a Xet hash/],
    ['an empty chunk range', (b) => ({ ...b, terms: [{ hash: X1, range: { start: 2, end: 2 }, unpacked_length: 5 }] }), /empty or reversed/],
    ['more bytes than the chunks can hold', (b) => ({ ...b, terms: [{ hash: X1, range: { start: 0, end: 2 }, unpacked_length: 300_000 }] }), /claims 300000 bytes for 2 chunks/],
    ['a term no fetch covers', (b) => ({ ...b, terms: [{ hash: X1, range: { start: 1, end: 3 }, unpacked_length: 150_000 }] }), /has no fetch entry covering it/],
    ['a term of an unlisted xorb', (b) => ({ ...b, terms: [{ hash: 'c'.repeat(64), range: { start: 0, end: 1 }, unpacked_length: 5 }] }), /has no fetch entry/],
    ['a reversed byte range', (b) => ({ ...b, fetch_info: { [X1]: [{ range: { start: 0, end: 2 }, url: `${URL_BASE}/a`, url_range: { start: 10, end: 5 } }] } }), /url_range is reversed/],
    ['too few bytes for the chunk headers', (b) => ({ ...b, fetch_info: { [X1]: [{ range: { start: 0, end: 2 }, url: `${URL_BASE}/a`, url_range: { start: 0, end: 10 } }] } }), /gives 11 bytes for 2 chunks/],
    ['a file: URL', (b) => ({ ...b, fetch_info: { [X1]: [{ range: { start: 0, end: 2 }, url: 'file:///etc/passwd', url_range: { start: 0, end: 999 } }] } }), /uses file:, not http/],
    ['a relative URL', (b) => ({ ...b, fetch_info: { [X1]: [{ range: { start: 0, end: 2 }, url: '/xorb', url_range: { start: 0, end: 999 } }] } }), /not an absolute URL/],
    ['credentials in a URL', (b) => ({ ...b, fetch_info: { [X1]: [{ range: { start: 0, end: 2 }, url: 'https://u:p@cas.example/x', url_range: { start: 0, end: 999 } }] } }), /carries credentials/],
    ['terms producing too little', (b) => ({ ...b, terms: (b.terms as unknown[]).slice(0, 2) }), /produce 200000 bytes; 350000 were asked for/],
    ['no terms for a non-empty file', (b) => ({ ...b, terms: [] }), /no terms for 350000 bytes/],
  ];

  it.each(hostile)('refuses %s with a clear ERR_BAD_RESPONSE', (_name, mutate, message) => {
    expect(() => parse1(mutate(v1()))).toThrow(expect.objectContaining({ code: 'ERR_BAD_RESPONSE', message: expect.stringMatching(message) }));
  });

  it('refuses a v2 entry with no ranges or ranges out of shape', () => {
    const url = 'https://cas.example/v2/reconstructions/x';
    expect(() => parseReconstruction({ ...v2(), xorbs: { [X1]: [{ url: `${URL_BASE}/a`, ranges: [] }] } }, { version: 2, url, expectedLength: 160_000 })).toThrow(/ranges is empty/);
    expect(() => parseReconstruction({ ...v2(), xorbs: { [X1]: [{ url: `${URL_BASE}/a`, ranges: [{ chunks: { start: 0, end: 6 } }] }] } }, { version: 2, url, expectedLength: 160_000 })).toThrow(/bytes is not an object/);
  });

  it('accepts an empty file as no terms', () => {
    expect(parse1({ offset_into_first_range: 0, terms: [], fetch_info: {} }, 0).terms).toEqual([]);
  });
});
