import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, readFile, unlink, type FileHandle } from 'node:fs/promises';
import { mergeRanges, type ByteRange } from './segment-plan.js';

/**
 * The resume journal beside a temp file: one header naming what is being downloaded, then one line
 * per range whose bytes were fdatasync'ed before the line was written. Every line carries a
 * checksum chained to the header, so a torn, edited or transplanted journal is discarded, never
 * trusted. Its ranges are still covered by the final digest check.
 *
 *   MFJ1 <key> <check>\n
 *   R <start> <end> <check>\n
 */

export interface JournalKey {
  identity: string;
  size: number;
  etag: string | undefined;
}

const MAGIC = 'MFJ1';

/** The header names the download by a hash, so no URL or token ends up on disk. */
function keyHash(key: JournalKey): string {
  return createHash('sha256').update(JSON.stringify([key.identity, key.size, key.etag ?? null])).digest('hex');
}

function check(keyHex: string, body: string): string {
  return createHash('sha256').update(`${keyHex}\n${body}`).digest('hex').slice(0, 16);
}

export function journalPathFor(tempPath: string): string {
  return `${tempPath}.journal`;
}

/**
 * Reads the journal at `path` and returns its finished ranges, or undefined when it is missing,
 * belongs to another download (identity, size or ETag changed upstream) or fails any check.
 */
export async function readJournal(path: string, key: JournalKey): Promise<ByteRange[] | undefined> {
  let text: string;
  try {
    const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      text = await readFile(handle, 'utf8');
    } finally {
      await handle.close();
    }
  } catch {
    return undefined;
  }
  return parseJournal(text, key);
}

/** Pure parser behind `readJournal`; exported for tests. */
export function parseJournal(text: string, key: JournalKey): ByteRange[] | undefined {
  const lines = text.split('\n');
  // A line without its newline was being written when the process died: it never counted.
  lines.pop();
  const header = lines.shift();
  const keyHex = keyHash(key);
  if (header !== `${MAGIC} ${keyHex} ${check(keyHex, MAGIC)}`) return undefined;
  const ranges: ByteRange[] = [];
  for (const line of lines) {
    const match = /^R (\d{1,16}) (\d{1,16}) ([0-9a-f]{16})$/.exec(line);
    if (!match) return undefined;
    const [, a, b, sum] = match;
    if (sum !== check(keyHex, `R ${a} ${b}`)) return undefined;
    const start = Number(a);
    const end = Number(b);
    if (!(start < end && end <= key.size)) return undefined;
    ranges.push({ start, end });
  }
  // Records of one download never overlap; overlap means the file was tampered with.
  const sorted = [...ranges].sort((x, y) => x.start - y.start);
  for (let i = 1; i < sorted.length; i += 1) {
    if ((sorted[i]?.start ?? 0) < (sorted[i - 1]?.end ?? 0)) return undefined;
  }
  return mergeRanges(ranges);
}

/** An open journal that finished ranges are appended to. */
export class JournalWriter {
  private constructor(
    private readonly handle: FileHandle,
    private readonly keyHex: string,
  ) {}

  /** Starts a new journal at `path` (replacing any old one, never through a symlink) and writes its header. */
  static async create(path: string, key: JournalKey): Promise<JournalWriter> {
    await unlink(path).catch(() => undefined);
    const handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
    const keyHex = keyHash(key);
    const writer = new JournalWriter(handle, keyHex);
    await handle.write(`${MAGIC} ${keyHex} ${check(keyHex, MAGIC)}\n`);
    return writer;
  }

  /** Continues an existing, already validated journal. */
  static async append(path: string, key: JournalKey): Promise<JournalWriter> {
    const handle = await open(path, constants.O_WRONLY | constants.O_APPEND | constants.O_NOFOLLOW);
    return new JournalWriter(handle, keyHash(key));
  }

  /** Appends records in one write; the caller has already fdatasync'ed the data they describe. */
  async record(ranges: readonly ByteRange[]): Promise<void> {
    if (ranges.length === 0) return;
    const text = ranges
      .map(({ start, end }) => {
        const body = `R ${start} ${end}`;
        return `${body} ${check(this.keyHex, body)}\n`;
      })
      .join('');
    await this.handle.write(text);
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}
