import { ModelfetchError } from '../core/errors.js';

/**
 * The safetensors header: an 8-byte little-endian length N, then N bytes of JSON
 * `{ "__metadata__"?: {str: str}, "<tensor>": { dtype, shape, data_offsets: [begin, end] } … }`,
 * then the tensor bytes. Offsets are relative to the end of the header. Everything is checked
 * against the file size before anyone trusts it, the way the reference implementation does:
 * a size cap on the header, known dtypes, shape × element size equal to the byte range, and
 * ranges that tile the data area exactly (no overlap, no hole, nothing past the end).
 */

/** The reference implementation refuses headers above 100 MB; so do we. */
export const MAX_HEADER_BYTES = 100_000_000;

/** Bytes per element of every dtype whose byte length can be checked. */
export const DTYPE_BYTES: Readonly<Record<string, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
};

export interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  /** Byte range in the data area (after the header), end exclusive. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** The N of the length prefix. */
  headerBytes: number;
  /** Where the data area starts in the file: 8 + N. */
  dataStart: number;
  /** Tensors in data order. */
  tensors: TensorInfo[];
  metadata: Record<string, string> | undefined;
}

function bad(what: string, message: string): ModelfetchError {
  return new ModelfetchError('ERR_BAD_SAFETENSORS', `${what} is not a valid safetensors file: ${message}`, {
    hint: 'The file is damaged or not safetensors; nothing was written. Fetch it again or check where it came from.',
  });
}

/** The header length from the first 8 bytes, checked against the cap and the file size. */
export function readHeaderLength(prefix: Uint8Array, fileSize: number, what: string): number {
  if (fileSize < 8 || prefix.byteLength < 8) throw bad(what, `it has ${Math.min(fileSize, prefix.byteLength)} bytes, fewer than the 8-byte header length`);
  const length = Buffer.from(prefix.buffer, prefix.byteOffset, 8).readBigUInt64LE(0);
  if (length > BigInt(MAX_HEADER_BYTES)) throw bad(what, `its header claims ${length} bytes, more than the ${MAX_HEADER_BYTES}-byte cap`);
  const n = Number(length);
  if (8 + n > fileSize) throw bad(what, `its header claims ${n} bytes but the file has only ${fileSize - 8} after the length`);
  if (n < 2) throw bad(what, `its header is ${n} bytes, too short for a JSON object`);
  return n;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** Parses and checks the JSON of a header whose length prefix said `json.byteLength` bytes. */
export function parseHeaderJson(json: Uint8Array, fileSize: number, what: string): SafetensorsHeader {
  const dataStart = 8 + json.byteLength;
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(json));
  } catch {
    throw bad(what, 'its header is not UTF-8 JSON');
  }
  if (!isRecord(parsed)) throw bad(what, 'its header is not a JSON object');
  let metadata: Record<string, string> | undefined;
  const tensors: TensorInfo[] = [];
  for (const [name, entry] of Object.entries(parsed)) {
    if (name === '__metadata__') {
      if (!isRecord(entry) || !Object.values(entry).every((v) => typeof v === 'string')) throw bad(what, '__metadata__ is not an object of strings');
      metadata = entry as Record<string, string>;
      continue;
    }
    tensors.push(tensorInfo(name, entry, what));
  }
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const tensor of tensors) {
    if (tensor.begin < at) throw bad(what, `tensor ${JSON.stringify(tensor.name)} overlaps the one before it (bytes ${tensor.begin}–${tensor.end})`);
    if (tensor.begin > at) throw bad(what, `there is a gap of ${tensor.begin - at} bytes before tensor ${JSON.stringify(tensor.name)}`);
    at = tensor.end;
  }
  if (dataStart + at !== fileSize) {
    throw bad(what, dataStart + at > fileSize ? `its tensors end at byte ${dataStart + at}, past the end of the ${fileSize}-byte file` : `${fileSize - dataStart - at} bytes follow the last tensor`);
  }
  return { headerBytes: json.byteLength, dataStart, tensors, metadata };
}

function tensorInfo(name: string, entry: unknown, what: string): TensorInfo {
  const label = `tensor ${JSON.stringify(name.slice(0, 200))}`;
  if (!isRecord(entry)) throw bad(what, `${label} is not an object`);
  const { dtype, shape, data_offsets: offsets } = entry;
  if (typeof dtype !== 'string' || DTYPE_BYTES[dtype] === undefined) throw bad(what, `${label} has an unknown dtype ${JSON.stringify(dtype)}`);
  if (!Array.isArray(shape) || !shape.every(isCount)) throw bad(what, `${label} has an invalid shape`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !isCount(offsets[0]) || !isCount(offsets[1])) throw bad(what, `${label} has invalid data_offsets`);
  const [begin, end] = offsets as [number, number];
  if (end < begin) throw bad(what, `${label} ends (${end}) before it begins (${begin})`);
  // BigInt: a hostile shape must not wrap around into a plausible product.
  const expected = (shape as number[]).reduce((n, d) => n * BigInt(d), 1n) * BigInt(DTYPE_BYTES[dtype]);
  if (expected !== BigInt(end - begin)) throw bad(what, `${label} is ${dtype}[${(shape as number[]).join(', ')}], ${expected} bytes, but its data_offsets span ${end - begin}`);
  return { name, dtype, shape: shape as number[], begin, end };
}

/** Reads bytes [start, end) of a file, wherever it is (a local file, a ranged HTTP read). */
export type ReadBytes = (start: number, end: number) => Promise<Uint8Array>;

/**
 * The whole header of a file of `fileSize` bytes. `first` is what the caller already has from
 * offset 0 (e.g. one 64 KiB range); `read` is asked only for what is missing beyond it.
 */
export async function readHeader(first: Uint8Array, fileSize: number, read: ReadBytes, what: string): Promise<SafetensorsHeader> {
  const length = readHeaderLength(first, fileSize, what);
  let json: Uint8Array;
  if (first.byteLength >= 8 + length) json = first.subarray(8, 8 + length);
  else {
    const rest = await read(first.byteLength, 8 + length);
    if (rest.byteLength !== 8 + length - first.byteLength) throw bad(what, 'the file ended inside its header');
    json = Buffer.concat([first.subarray(8), rest]);
  }
  return parseHeaderJson(json, fileSize, what);
}

/** The header JSON for `tensors` (in the given data order) and `metadata`, space-padded so the data starts 8-aligned. */
export function serializeHeader(tensors: TensorInfo[], metadata: Record<string, string> | undefined): Buffer {
  // fromEntries defines own properties, so a tensor named "__proto__" stays a tensor.
  const object = Object.fromEntries([
    ...(metadata && Object.keys(metadata).length ? [['__metadata__', metadata] as const] : []),
    ...tensors.map((t) => [t.name, { dtype: t.dtype, shape: t.shape, data_offsets: [t.begin, t.end] }] as const),
  ]);
  const json = Buffer.from(JSON.stringify(object), 'utf8');
  const padded = Math.ceil((8 + json.length) / 8) * 8 - 8;
  const out = Buffer.alloc(8 + padded, 0x20);
  out.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(out, 8);
  return out;
}
