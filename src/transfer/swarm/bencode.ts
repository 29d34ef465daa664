import { ModelfetchError } from '../../core/errors.js';

/**
 * Bencoding (BEP 3), the encoding of .torrent files and tracker answers. Strings are bytes (a piece
 * hash list is binary), so they are Buffers here; integers are bigint-free because every value we
 * meet (sizes, counts) fits in a safe integer, and a larger one is refused rather than rounded.
 * Dictionary keys are written in raw byte order, as BEP 3 requires: that is what makes the same
 * info dictionary give the same infohash everywhere.
 */
export type BencodeValue = number | Buffer | BencodeValue[] | BencodeDict;
export interface BencodeDict {
  [key: string]: BencodeValue;
}

export function bencode(value: BencodeValue): Buffer {
  const parts: Buffer[] = [];
  encodeInto(value, parts);
  return Buffer.concat(parts);
}

function encodeInto(value: BencodeValue, parts: Buffer[]): void {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new RangeError(`bencode: ${value} is not a safe integer`);
    parts.push(Buffer.from(`i${value}e`, 'ascii'));
  } else if (Buffer.isBuffer(value)) {
    parts.push(Buffer.from(`${value.length}:`, 'ascii'), value);
  } else if (Array.isArray(value)) {
    parts.push(Buffer.from('l', 'ascii'));
    for (const item of value) encodeInto(item, parts);
    parts.push(Buffer.from('e', 'ascii'));
  } else {
    parts.push(Buffer.from('d', 'ascii'));
    const keys = Object.keys(value).map((key) => Buffer.from(key, 'utf8'));
    keys.sort(Buffer.compare);
    for (const key of keys) {
      encodeInto(key, parts);
      encodeInto(value[key.toString('utf8')]!, parts);
    }
    parts.push(Buffer.from('e', 'ascii'));
  }
}

function malformed(what: string, offset: number): ModelfetchError {
  return new ModelfetchError('ERR_BAD_RESPONSE', `Malformed bencoded data: ${what} at byte ${offset}`, {
    hint: 'The torrent or tracker answer is damaged or not bencoded; fetch it again from the mirror.',
  });
}

/** Nesting deeper than this is refused: a peer's answer must not exhaust the stack. */
const MAX_DEPTH = 64;

/** Decodes exactly one value that spans the whole input; anything else is ERR_BAD_RESPONSE. */
export function bdecode(input: Buffer): BencodeValue {
  const [value, end] = decodeAt(input, 0, 0);
  if (end !== input.length) throw malformed('trailing data', end);
  return value;
}

function decodeAt(input: Buffer, offset: number, depth: number): [BencodeValue, number] {
  if (depth > MAX_DEPTH) throw malformed('nesting too deep', offset);
  const byte = input[offset];
  if (byte === undefined) throw malformed('unexpected end', offset);
  if (byte === 0x69 /* i */) {
    const end = input.indexOf(0x65 /* e */, offset + 1);
    if (end < 0) throw malformed('unterminated integer', offset);
    const text = input.toString('ascii', offset + 1, end);
    if (!/^(0|-?[1-9][0-9]*)$/.test(text)) throw malformed('invalid integer', offset);
    const value = Number(text);
    if (!Number.isSafeInteger(value)) throw malformed('integer out of range', offset);
    return [value, end + 1];
  }
  if (byte >= 0x30 && byte <= 0x39) {
    const colon = input.indexOf(0x3a /* : */, offset);
    if (colon < 0) throw malformed('unterminated string length', offset);
    const text = input.toString('ascii', offset, colon);
    if (!/^(0|[1-9][0-9]*)$/.test(text)) throw malformed('invalid string length', offset);
    const length = Number(text);
    const start = colon + 1;
    if (start + length > input.length) throw malformed('string longer than the data', offset);
    return [input.subarray(start, start + length), start + length];
  }
  if (byte === 0x6c /* l */) {
    const list: BencodeValue[] = [];
    let at = offset + 1;
    while (input[at] !== 0x65) {
      const [item, next] = decodeAt(input, at, depth + 1);
      list.push(item);
      at = next;
    }
    return [list, at + 1];
  }
  if (byte === 0x64 /* d */) {
    const dict: BencodeDict = Object.create(null) as BencodeDict;
    let at = offset + 1;
    let previous: Buffer | undefined;
    while (input[at] !== 0x65) {
      const [key, afterKey] = decodeAt(input, at, depth + 1);
      if (!Buffer.isBuffer(key)) throw malformed('dictionary key is not a string', at);
      // Sorted, unique keys are what makes re-encoding give the same bytes (and infohash).
      if (previous && Buffer.compare(previous, key) >= 0) throw malformed('dictionary keys not sorted', at);
      previous = key;
      const [item, next] = decodeAt(input, afterKey, depth + 1);
      dict[key.toString('utf8')] = item;
      at = next;
    }
    return [dict, at + 1];
  }
  throw malformed('unknown type', offset);
}
