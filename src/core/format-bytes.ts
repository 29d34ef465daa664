import { ModelfetchError } from './errors.js';

/**
 * A byte count in binary units, as `du -h` and the progress bar show it: `512 B`, `1.5 KiB`, `3.0 GiB`.
 * Self-contained (no module state): the status page ships it to the browser via `toString()`.
 */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/** `200G`, `1.5T`, `500MiB`, `1024` (bytes). K/M/G/T are powers of 1024, as in `du`. */
export function parseSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?\s*$/i.exec(text);
  if (!match) throw new ModelfetchError('ERR_USAGE', `Cannot read size ${JSON.stringify(text)}`, { hint: 'Use a number with an optional unit, for example 500M, 200G or 1.5T.' });
  const power = ' kmgtp'.indexOf((match[2] || ' ').toLowerCase());
  return Math.floor(Number(match[1]) * 1024 ** power);
}
