import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

/**
 * The order of src/ from the bottom up, as DESIGN.md draws it. A file may import from its own
 * folder and from folders on a lower line, never from its own line or above: so the core knows
 * nothing of the cache, the cache nothing of HTTP, the engine nothing of sources, and only the
 * shells (cli/, server/, …) see everything. A folder or root file not listed here is an error, so a
 * new one has to be placed in the order on purpose.
 */
export const LAYERS: readonly (readonly string[])[] = [
  ['core'],
  ['cache'],
  ['transfer'],
  ['source'],
  ['safetensors', 'get.ts'],
  ['pull'],
  ['preload', 'server', 'repair.ts'],
  ['bake', 'supervise'],
  ['cli'],
  ['index.ts'],
];

export interface UpwardImport {
  file: string;
  imports: string;
  reason: string;
}

/** `cache/scan.ts` -> `cache`; `get.ts` -> `get.ts` (a file at the root of src/ is its own unit). */
export function unitOf(pathInSrc: string): string {
  const slash = pathInSrc.indexOf('/');
  return slash === -1 ? pathInSrc : pathInSrc.slice(0, slash);
}

function layerOf(unit: string): number | undefined {
  const index = LAYERS.findIndex((line) => line.includes(unit));
  return index === -1 ? undefined : index;
}

const IMPORT = /(?:\bfrom\s+|\bimport\s*\(\s*|\bimport\s+)'(\.{1,2}\/[^']+)'/g;

/** Checks one file's relative imports (`source` is its text; paths are relative to src/). */
export function upwardImportsOf(file: string, source: string): UpwardImport[] {
  const found: UpwardImport[] = [];
  const unit = unitOf(file);
  const own = layerOf(unit);
  if (own === undefined) return [{ file, imports: '', reason: `${unit} is not placed in the layer order` }];
  for (const match of source.matchAll(IMPORT)) {
    const target = relative('/src', resolve('/src', dirname(file), match[1]!)).replace(/\.js$/, '.ts');
    if (target.startsWith('..')) {
      found.push({ file, imports: target, reason: 'imports from outside src/' });
      continue;
    }
    const targetUnit = unitOf(target);
    if (targetUnit === unit) continue;
    const layer = layerOf(targetUnit);
    if (layer === undefined) found.push({ file, imports: target, reason: `${targetUnit} is not placed in the layer order` });
    else if (layer >= own) found.push({ file, imports: target, reason: layer === own ? `${targetUnit} is on the same line as ${unit}` : `${targetUnit} is above ${unit}` });
  }
  return found;
}

/** Every non-test .ts file under `srcRoot`, checked. */
export function upwardImports(srcRoot: string): UpwardImport[] {
  const found: UpwardImport[] = [];
  const walk = (folder: string): void => {
    for (const entry of readdirSync(folder, { withFileTypes: true })) {
      const path = join(folder, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts') && !/\.test(-support)?\.ts$/.test(entry.name) && !entry.name.endsWith('.d.ts')) {
        found.push(...upwardImportsOf(relative(srcRoot, path), readFileSync(path, 'utf8')));
      }
    }
  };
  walk(srcRoot);
  return found;
}
