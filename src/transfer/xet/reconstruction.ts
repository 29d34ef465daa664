import { ModelfetchError } from '../../core/errors.js';
import { XET_CHUNK_HEADER_BYTES, XET_MAX_COMPRESSED_CHUNK_SIZE } from './chunk-codec.js';
import { XET_MAX_CHUNK_SIZE } from './chunker.js';
import { isXetHashHex } from '../../core/hash/xet-hash.js';

/**
 * The CAS reconstruction answer (`GET {casUrl}/v1|v2/reconstructions/{fileHash}`): the file as an
 * ordered list of terms (a chunk range `[start, end)` of one xorb), and for each xorb the signed URLs
 * and byte ranges (`[start, end]`, inclusive) that hold those chunks. v1 lists one URL per range
 * (`fetch_info`); v2 groups ranges of a xorb under one URL (`xorbs`), each range still fetchable alone.
 *
 * Everything is checked before use: a hostile or broken answer gives an ERR_BAD_RESPONSE that says
 * what is wrong, never an out-of-range write or a request to a URL we did not validate.
 */

export interface XorbRangeFetch {
  xorbHash: string;
  /** Signed URL; the Range header sent with it must be exactly `rangeHeader`. */
  url: string;
  /** Chunk indices `[chunkStart, chunkEnd)` of the xorb that the bytes hold. */
  chunkStart: number;
  chunkEnd: number;
  /** Byte range within the xorb, inclusive. */
  byteStart: number;
  byteEnd: number;
  rangeHeader: string;
}

export interface ReconstructionTerm {
  xorbHash: string;
  chunkStart: number;
  chunkEnd: number;
  /** Length of the term's chunks once decoded. */
  unpackedLength: number;
  /** The fetch whose chunk range covers this term. */
  fetch: XorbRangeFetch;
}

export interface Reconstruction {
  version: 1 | 2;
  /** Bytes of the first term to drop (non-zero when a byte range of the file was asked for). */
  offsetIntoFirstRange: number;
  terms: ReconstructionTerm[];
  /** Every distinct fetch, once, in the order the terms first need them. */
  fetches: XorbRangeFetch[];
  /** Bytes the terms produce after the offset: the length of what was asked for. */
  length: number;
}

/** Upper bound on terms in one answer: one per chunk of a 1 TiB file is far less. */
const MAX_TERMS = 50_000_000;

class Checker {
  constructor(private readonly url: string) {}

  fail(message: string): never {
    throw new ModelfetchError('ERR_BAD_RESPONSE', `The Xet reconstruction answer is invalid: ${message}`, {
      url: this.url,
      hint: 'The Xet storage server sent a reconstruction that cannot be used; run the same command again, or use HF_HUB_DISABLE_XET=1 to download through the plain path.',
    });
  }

  object(value: unknown, where: string): Record<string, unknown> {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) this.fail(`${where} is not an object.`);
    return value as Record<string, unknown>;
  }

  array(value: unknown, where: string): unknown[] {
    if (!Array.isArray(value)) this.fail(`${where} is not a list.`);
    return value;
  }

  count(value: unknown, where: string): number {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) this.fail(`${where} is not a non-negative integer.`);
    return value;
  }

  hash(value: unknown, where: string): string {
    if (!isXetHashHex(value)) this.fail(`${where} is not a Xet hash (64 lowercase hex digits).`);
    return value;
  }

  /** `{start, end}` chunk indices, end exclusive and after start. */
  chunkRange(value: unknown, where: string): { start: number; end: number } {
    const range = this.object(value, where);
    const start = this.count(range.start, `${where}.start`);
    const end = this.count(range.end, `${where}.end`);
    if (end <= start) this.fail(`${where} is empty or reversed (${start}..${end}).`);
    return { start, end };
  }

  /** `{start, end}` bytes, end inclusive. */
  byteRange(value: unknown, where: string): { start: number; end: number } {
    const range = this.object(value, where);
    const start = this.count(range.start, `${where}.start`);
    const end = this.count(range.end, `${where}.end`);
    if (end < start) this.fail(`${where} is reversed (${start}-${end}).`);
    return { start, end };
  }

  fetchUrl(value: unknown, where: string): string {
    if (typeof value !== 'string') this.fail(`${where} is not a string.`);
    let parsed: URL;
    try {
      parsed = new URL(value);
    } catch {
      this.fail(`${where} is not an absolute URL.`);
    }
    if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') this.fail(`${where} uses ${parsed.protocol}, not http(s).`);
    if (parsed.username || parsed.password) this.fail(`${where} carries credentials in the URL.`);
    return value;
  }
}

function makeFetch(check: Checker, xorbHash: string, url: string, chunks: { start: number; end: number }, bytes: { start: number; end: number }, where: string): XorbRangeFetch {
  const chunkCount = chunks.end - chunks.start;
  const byteCount = bytes.end - bytes.start + 1;
  // Each chunk is a header plus 0..max compressed bytes; anything outside that cannot be these chunks.
  if (byteCount < chunkCount * XET_CHUNK_HEADER_BYTES || byteCount > chunkCount * (XET_CHUNK_HEADER_BYTES + XET_MAX_COMPRESSED_CHUNK_SIZE)) {
    check.fail(`${where} gives ${byteCount} bytes for ${chunkCount} chunks.`);
  }
  return { xorbHash, url, chunkStart: chunks.start, chunkEnd: chunks.end, byteStart: bytes.start, byteEnd: bytes.end, rangeHeader: `bytes=${bytes.start}-${bytes.end}` };
}

function parseFetchesV1(check: Checker, body: Record<string, unknown>): Map<string, XorbRangeFetch[]> {
  const byXorb = new Map<string, XorbRangeFetch[]>();
  const info = check.object(body.fetch_info, 'fetch_info');
  for (const [key, entries] of Object.entries(info)) {
    const xorbHash = check.hash(key, `a fetch_info key`);
    const list = check.array(entries, `fetch_info[${xorbHash}]`).map((raw, i) => {
      const where = `fetch_info[${xorbHash}][${i}]`;
      const entry = check.object(raw, where);
      return makeFetch(check, xorbHash, check.fetchUrl(entry.url, `${where}.url`), check.chunkRange(entry.range, `${where}.range`), check.byteRange(entry.url_range, `${where}.url_range`), where);
    });
    byXorb.set(xorbHash, list);
  }
  return byXorb;
}

function parseFetchesV2(check: Checker, body: Record<string, unknown>): Map<string, XorbRangeFetch[]> {
  const byXorb = new Map<string, XorbRangeFetch[]>();
  const xorbs = check.object(body.xorbs, 'xorbs');
  for (const [key, entries] of Object.entries(xorbs)) {
    const xorbHash = check.hash(key, `a xorbs key`);
    const list: XorbRangeFetch[] = [];
    check.array(entries, `xorbs[${xorbHash}]`).forEach((raw, i) => {
      const where = `xorbs[${xorbHash}][${i}]`;
      const entry = check.object(raw, where);
      const url = check.fetchUrl(entry.url, `${where}.url`);
      const ranges = check.array(entry.ranges, `${where}.ranges`);
      if (ranges.length === 0) check.fail(`${where}.ranges is empty.`);
      ranges.forEach((rawRange, j) => {
        const rangeWhere = `${where}.ranges[${j}]`;
        const range = check.object(rawRange, rangeWhere);
        list.push(makeFetch(check, xorbHash, url, check.chunkRange(range.chunks, `${rangeWhere}.chunks`), check.byteRange(range.bytes, `${rangeWhere}.bytes`), rangeWhere));
      });
    });
    byXorb.set(xorbHash, list);
  }
  return byXorb;
}

/**
 * Validates a parsed reconstruction JSON body. `expectedLength` is the number of bytes asked for: the
 * file size (the terms must produce exactly that), or with `partial` the length of a requested range.
 */
export function parseReconstruction(json: unknown, options: { version: 1 | 2; url: string; expectedLength: number; partial?: boolean }): Reconstruction {
  const check: Checker = new Checker(options.url);
  const body = check.object(json, 'the body');
  const offsetIntoFirstRange = check.count(body.offset_into_first_range, 'offset_into_first_range');
  const rawTerms = check.array(body.terms, 'terms');
  if (rawTerms.length > MAX_TERMS) check.fail(`it lists ${rawTerms.length} terms.`);
  const byXorb = options.version === 1 ? parseFetchesV1(check, body) : parseFetchesV2(check, body);

  const terms: ReconstructionTerm[] = [];
  const fetches: XorbRangeFetch[] = [];
  const used = new Set<XorbRangeFetch>();
  let total = 0;
  rawTerms.forEach((raw, i) => {
    const where = `terms[${i}]`;
    const term = check.object(raw, where);
    const xorbHash = check.hash(term.hash, `${where}.hash`);
    const chunks = check.chunkRange(term.range, `${where}.range`);
    const unpackedLength = check.count(term.unpacked_length, `${where}.unpacked_length`);
    const chunkCount = chunks.end - chunks.start;
    if (unpackedLength < chunkCount || unpackedLength > chunkCount * XET_MAX_CHUNK_SIZE) check.fail(`${where} claims ${unpackedLength} bytes for ${chunkCount} chunks.`);
    const fetch = byXorb.get(xorbHash)?.find((f) => f.chunkStart <= chunks.start && f.chunkEnd >= chunks.end);
    if (!fetch) check.fail(`${where} (xorb ${xorbHash}, chunks ${chunks.start}..${chunks.end}) has no fetch entry covering it.`);
    if (!used.has(fetch)) {
      used.add(fetch);
      fetches.push(fetch);
    }
    terms.push({ xorbHash, chunkStart: chunks.start, chunkEnd: chunks.end, unpackedLength, fetch });
    total += unpackedLength;
  });

  if (terms.length === 0) {
    if (options.expectedLength !== 0 || offsetIntoFirstRange !== 0) check.fail(`it lists no terms for ${options.expectedLength} bytes.`);
  } else if (offsetIntoFirstRange >= (terms[0] as ReconstructionTerm).unpackedLength) {
    check.fail(`offset_into_first_range ${offsetIntoFirstRange} is not inside the first term (${(terms[0] as ReconstructionTerm).unpackedLength} bytes).`);
  }
  const length = total - offsetIntoFirstRange;
  // For a byte range the last term may run past its end (terms are whole chunks); for a whole file
  // the terms are the file.
  if (options.partial ? length < options.expectedLength : length !== options.expectedLength) check.fail(`its terms produce ${length} bytes; ${options.expectedLength} were asked for.`);
  const lastTerm = terms.at(-1);
  if (lastTerm && length - lastTerm.unpackedLength >= options.expectedLength && terms.length > 1) check.fail(`its last term lies entirely past the ${options.expectedLength} bytes asked for.`);
  return { version: options.version, offsetIntoFirstRange, terms, fetches, length };
}
