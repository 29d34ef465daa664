import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RepoPaths } from '../cache/layout.js';
import type { TargetDtype } from './float.js';

/**
 * Derived snapshots: what `convert` writes into the cache beside an upstream commit. The id is
 * 64 hex (never a 40-hex git commit) and no ref points at it; the record of what it came from lives
 * in modelfetch's state, which huggingface_hub never reads, and is written last (it marks the
 * snapshot complete).
 */

const DERIVED_VERSION = 'modelfetch derived snapshot v1';

/** The derived snapshot id of `commit` converted to `dtype` keeping `keep`: 64 hex, never a git commit. */
export function derivedSnapshotId(commit: string, dtype: TargetDtype, keep: string[] = []): string {
  return createHash('sha256').update([DERIVED_VERSION, commit, dtype, ...[...keep].sort()].join('\0')).digest('hex');
}

/** Where modelfetch records what a derived snapshot came from (beside its other state, which huggingface_hub never reads). */
export function derivedRecordPath(repo: RepoPaths, id: string): string {
  return join(repo.stateDir, 'derived', `${id}.json`);
}

export interface DerivedRecord {
  format: 1;
  derivedFrom: string;
  dtype: TargetDtype;
  keep: string[];
  files: number;
  createdAt: string;
}

/** The record of a derived snapshot, or undefined when `id` is not one (or not complete). */
export async function readDerivedRecord(repo: RepoPaths, id: string): Promise<DerivedRecord | undefined> {
  const text = await readFile(derivedRecordPath(repo, id), 'utf8').catch(() => undefined);
  if (!text) return undefined;
  try {
    const record = JSON.parse(text) as DerivedRecord;
    return record.format === 1 && typeof record.derivedFrom === 'string' ? record : undefined;
  } catch {
    return undefined;
  }
}

