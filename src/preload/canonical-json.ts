import { ModelfetchError } from '../core/errors.js';

/**
 * Canonical JSON: object keys sorted by code unit, two-space indentation, a trailing newline.
 * The same value always gives the same bytes, so lockfiles diff cleanly and signatures are over
 * something both sides can rebuild from the parsed content. Only JSON data is allowed (no
 * undefined, no non-finite numbers): anything else is a bug, not something to paper over.
 */
export function canonicalJson(value: unknown): string {
  return `${JSON.stringify(normalise(value, '$'), null, 2)}\n`;
}

function normalise(value: unknown, where: string): unknown {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new ModelfetchError('ERR_USAGE', `Cannot write ${where} as canonical JSON: ${value} is not a finite number`);
    return value;
  }
  if (Array.isArray(value)) return value.map((item, i) => normalise(item, `${where}[${i}]`));
  if (typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort(compareCodeUnits)) {
      const item = (value as Record<string, unknown>)[key];
      if (item === undefined) continue;
      out[key] = normalise(item, `${where}.${key}`);
    }
    return out;
  }
  throw new ModelfetchError('ERR_USAGE', `Cannot write ${where} as canonical JSON: ${typeof value} is not JSON data`);
}

/** Plain code-unit order: locale-independent, the same on every machine. */
export function compareCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
