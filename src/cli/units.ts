import { ModelfetchError } from '../core/errors.js';
import type { RepoType } from '../core/types.js';

/** Human units and flag values for the CLI: size limits, durations, ages, ports (sizes are printed by `format-bytes.ts`). */

export { parseSize } from '../core/format-bytes.js';

const DURATION_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** `7d`, `12h`, `30m`, `2w`, `90s`. */
export function parseDuration(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$/i.exec(text);
  if (!match) throw new ModelfetchError('ERR_USAGE', `Cannot read duration ${JSON.stringify(text)}`, { hint: 'Use a number and a unit: s, m, h, d or w (for example 7d).' });
  return Number(match[1]) * DURATION_MS[match[2]!.toLowerCase()]!;
}

export function formatAge(thenMs: number, nowMs: number = Date.now()): string {
  if (!thenMs) return 'never';
  const seconds = Math.max(0, Math.round((nowMs - thenMs) / 1000));
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)}m ago`;
  if (seconds < 86_400) return `${Math.round(seconds / 3600)}h ago`;
  if (seconds < 86_400 * 60) return `${Math.round(seconds / 86_400)}d ago`;
  return new Date(thenMs).toISOString().slice(0, 10);
}

/** Left-aligned text columns, right-aligned numbers, two spaces apart. */
export function renderTable(header: string[], rows: string[][], rightAligned: number[] = []): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((cell, i) => (rightAligned.includes(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** A usage error: what was wrong with the command line, and what to write instead. */
export function usageError(message: string, hint: string): ModelfetchError {
  return new ModelfetchError('ERR_USAGE', message, { hint });
}

/** `value`, given for `flag`, as a whole number from `min` to `max`; anything else is a usage error. */
export function parseWholeNumber(value: string, flag: string, min: number, max: number): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number < min || number > max) throw usageError(`Invalid ${flag} ${JSON.stringify(value)}`, `Use a whole number from ${min} to ${max}.`);
  return number;
}

/** A TCP port given for `flag` (0 picks a free one). */
export function parsePort(value: string, flag: string): number {
  return parseWholeNumber(value, flag, 0, 65535);
}

export function parseRepoType(text: string): RepoType {
  if (text === 'model' || text === 'dataset' || text === 'space') return text;
  throw new ModelfetchError('ERR_USAGE', `Unknown repo type ${JSON.stringify(text)}`, { hint: 'Use model, dataset or space.' });
}
