import { describe, expect, it } from 'vitest';
import { formatBytes } from '../core/format-bytes.js';
import { formatAge, parseDuration, parsePort, parseSize, parseWholeNumber, renderTable } from './units.js';

describe('CLI units', () => {
  it('reads sizes and durations as people write them, and refuses the rest', () => {
    expect(parseSize('200G')).toBe(200 * 1024 ** 3);
    expect(parseSize('1.5T')).toBe(1.5 * 1024 ** 4);
    expect(parseSize('500MiB')).toBe(500 * 1024 ** 2);
    expect(parseSize('1024')).toBe(1024);
    expect(() => parseSize('lots')).toThrow(/Cannot read size/);
    expect(parseDuration('7d')).toBe(7 * 86_400_000);
    expect(parseDuration('12h')).toBe(12 * 3_600_000);
    expect(parseDuration('2w')).toBe(14 * 86_400_000);
    expect(() => parseDuration('7')).toThrow(/Cannot read duration/);
  });

  it('prints sizes, ages and aligned tables', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(3 * 1024 * 1024)).toBe('3.0 MiB');
    expect(formatBytes(200 * 1024 ** 3)).toBe('200.0 GiB');
    expect(formatAge(0)).toBe('never');
    expect(formatAge(1000, 1000 + 3 * 86_400_000)).toBe('3d ago');
    expect(renderTable(['NAME', 'SIZE'], [['a', '1 B'], ['longer', '10 KiB']], [1])).toBe('NAME      SIZE\na          1 B\nlonger  10 KiB\n');
  });

  it('reads whole numbers and ports of a flag, and refuses the rest with a usage error naming the flag and the range', () => {
    expect(parseWholeNumber('0', '--seed-time', 0, 60)).toBe(0);
    expect(parseWholeNumber('60', '--seed-time', 0, 60)).toBe(60);
    expect(parsePort('8080', '--port')).toBe(8080);
    expect(parsePort('0', '--swarm-port')).toBe(0);
    for (const [value, max] of [['61', 60], ['-1', 60], ['1.5', 60], ['ten', 60]] as const) {
      expect(() => parseWholeNumber(value, '--seed-time', 0, max)).toThrow(expect.objectContaining({ code: 'ERR_USAGE', message: `Invalid --seed-time ${JSON.stringify(value)}`, hint: 'Use a whole number from 0 to 60.' }));
    }
    expect(() => parsePort('65536', '--port')).toThrow(expect.objectContaining({ code: 'ERR_USAGE', message: 'Invalid --port "65536"', hint: 'Use a whole number from 0 to 65535.' }));
  });
});
