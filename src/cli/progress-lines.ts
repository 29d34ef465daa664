import type { ProgressEvent } from '../transfer/types.js';

/** Plain progress lines (at most one per interval) for commands whose stdout belongs to someone else. */
export function progressLogger(stream: NodeJS.WritableStream, intervalMs = 1000, now: () => number = Date.now): (event: ProgressEvent) => void {
  let last = -Infinity;
  return (event) => {
    const done = event.batchBytesDone >= event.batchTotalBytes;
    if (!done && now() - last < intervalMs) return;
    last = now();
    const eta = event.eta === undefined ? '' : `, ${Math.ceil(event.eta)}s left`;
    stream.write(`modelfetch: ${formatBytes(event.batchBytesDone)} / ${formatBytes(event.batchTotalBytes)} at ${formatBytes(event.speed)}/s${eta}\n`);
  };
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}
