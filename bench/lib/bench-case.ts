import type { ModelfetchCli } from './modelfetch-cli.js';
import type { ReferenceServer } from './reference-server.js';

/** What every benchmark case gets, and what it hands back. */

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export interface Measurement {
  label: string;
  value: number;
  unit: 's' | 'ms' | 'MB' | 'MB/s' | 'bytes' | 'count';
}

export interface Check {
  /** What is compared, e.g. "modelfetch vs aria2c". */
  label: string;
  /** The measured figure the target applies to (a ratio, a size, a time). */
  actual: number;
  unit: 'x' | 'MB' | 'ms' | 'count';
  /** The target as text, e.g. "≤ 1.00". */
  target: string;
  pass: boolean;
}

export interface CaseOutcome {
  id: string;
  title: string;
  status: 'ran' | 'skipped' | 'failed';
  reason?: string;
  notes: string[];
  measurements: Measurement[];
  checks: Check[];
  seconds: number;
}

export interface BenchContext {
  root: string;
  /** Temp directory for this run; deleted at the end. */
  work: string;
  quick: boolean;
  cli: ModelfetchCli;
  /** Reference tools found on this machine (curl, aria2c, nginx, openssl, sha256sum). */
  tools: Set<string>;
  /** A lazily started static server over `work/data` (nginx, or the fixture server without it). */
  reference(): Promise<ReferenceServer>;
  /** Per-connection rate of the throttled location, bytes per second. */
  throttleRate: number;
  /** Generates (once per run) a random file of `size` bytes under `work/data` and serves it. */
  dataFile(name: string, size: number): Promise<{ path: string; size: number; sha256: string }>;
  /** Outcomes of cases that already ran (the RSS case reads the download cases'). */
  outcomes: Map<string, CaseOutcome>;
  log(message: string): void;
}

export interface CaseReport {
  notes: string[];
  measurements: Measurement[];
  checks: Check[];
}

export interface BenchCase {
  id: string;
  title: string;
  /** Returns why the case cannot run here (a missing feature or tool), or undefined to run it. */
  unavailable(ctx: BenchContext): string | undefined;
  run(ctx: BenchContext, report: CaseReport): Promise<void>;
}

/** Thrown by a case that finds, once running, that the feature it measures is not there yet. */
export class FeatureMissing extends Error {}

export function ratioCheck(label: string, actual: number, op: '≤' | '≥' | '<', threshold: number): Check {
  const pass = op === '≤' ? actual <= threshold : op === '≥' ? actual >= threshold : actual < threshold;
  return { label, actual, unit: 'x', target: `${op} ${threshold}`, pass };
}

export function limitCheck(label: string, actual: number, unit: 'MB' | 'ms' | 'count', op: '≤' | '<', threshold: number): Check {
  const pass = op === '≤' ? actual <= threshold : actual < threshold;
  return { label, actual, unit, target: `${op} ${threshold} ${unit === 'count' ? '' : unit}`.trim(), pass };
}

/** "skipped: get not available" until the command is on main. */
export function missingCommands(ctx: BenchContext, ...commands: string[]): string | undefined {
  const missing = commands.filter((c) => !ctx.cli.has(c));
  return missing.length ? `${missing.join(', ')} not available` : undefined;
}

export function seconds(ms: number): Measurement['value'] {
  return Math.round(ms) / 1000;
}
