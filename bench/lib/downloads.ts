import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { BenchContext } from './bench-case.js';
import { peakRssOf } from './modelfetch-cli.js';
import { assertOk, runMeasured, type RunOptions, type RunResult } from './proc.js';

/** One timed download by each tool the bench compares, each leaving a checked file at `output`. */

export interface Timed {
  ms: number;
  peakRssBytes?: number;
  result: RunResult;
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path, { highWaterMark: 1024 * 1024 }), hash);
  return hash.digest('hex');
}

/** Fails the case when a tool left something other than the served bytes (a wrong result is no result). */
export async function assertDownloaded(what: string, output: string, expected: { size: number; sha256: string }): Promise<void> {
  const { size } = await stat(output);
  if (size !== expected.size) throw new Error(`${what} wrote ${size} bytes, expected ${expected.size}`);
  const digest = await sha256File(output);
  if (digest !== expected.sha256) throw new Error(`${what} wrote bytes whose SHA-256 is ${digest}, expected ${expected.sha256}`);
}

export async function modelfetchGet(ctx: BenchContext, url: string, output: string, extra: string[] = [], options: RunOptions = {}): Promise<Timed> {
  await rm(output, { force: true });
  const json = ctx.cli.hasOption('get', '--json') ? ['--json'] : [];
  const result = await ctx.cli.run(ctx.cli.getArgs(url, output, [...extra, ...json]), options);
  if (!options.killWhen) assertOk('modelfetch get', result);
  const peak = peakRssOf(result);
  return { ms: result.ms, result, ...(peak !== undefined && { peakRssBytes: peak }) };
}

export async function curlGet(url: string, output: string): Promise<Timed> {
  await rm(output, { force: true });
  const result = assertOk('curl', await runMeasured('curl', ['-s', '-f', '-o', output, url]));
  return { ms: result.ms, result };
}

export async function aria2Get(url: string, output: string): Promise<Timed> {
  await rm(output, { force: true });
  const args = ['-x16', '-s16', '--file-allocation=none', '--allow-overwrite=true', '--auto-file-renaming=false', '--quiet=true', '-d', dirname(output), '-o', basename(output), url];
  const result = assertOk('aria2c', await runMeasured('aria2c', args));
  return { ms: result.ms, result };
}

/** The same work with standard tools: curl writes the file while openssl hashes the same stream. */
export async function curlTeeSha256(url: string, output: string): Promise<Timed & { sha256: string }> {
  await rm(output, { force: true });
  const script = 'set -o pipefail; curl -s -f "$1" | tee "$2" | openssl dgst -sha256 -r';
  const result = assertOk('curl | tee | openssl', await runMeasured('bash', ['-c', script, 'bench', url, output]));
  return { ms: result.ms, result, sha256: result.stdout.trim().split(/\s+/)[0] ?? '' };
}

/** SHA-256 of a file already in the page cache: the least time any verified download can take on one core. */
export async function opensslSha256(path: string): Promise<Timed & { sha256: string }> {
  const result = assertOk('openssl dgst', await runMeasured('openssl', ['dgst', '-sha256', '-r', path]));
  return { ms: result.ms, result, sha256: result.stdout.trim().split(/\s+/)[0] ?? '' };
}
