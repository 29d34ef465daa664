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
