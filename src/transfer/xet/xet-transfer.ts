import { ModelfetchError } from '../../core/errors.js';
import { redactUrl } from '../../core/redact.js';
import { discardBody, headerValue, requestFollowingRedirects } from '../http.js';
import { journalPathFor } from '../journal.js';
import type { ResolvedOptions } from '../options.js';
import type { BatchProgress } from '../progress.js';
import { removeIfPresent } from '../temp-file.js';
import type { TransferJob, TransferResult, XetTransferOptions } from '../types.js';
import { chunkCacheFor } from '../../cache/xet-chunk-cache.js';
import { parseXetPointer, type XetFilePointer } from './xet-auth.js';
import type { XetTokenProvider } from './xet-token.js';

/**
 * Where the engine chooses Xet. A job marked `xet` (a Hub resolve URL) whose file is in Xet is
 * rebuilt from the CAS (xet-download.ts) under the batch's connection budget and progress; any
 * failure there (after its own retries) prints one line and hands the job to the plain path, so
 * Xet never fails a download plain HTTP would have completed. The Xet modules (and lz4-napi, a
 * native module) are loaded only when a file is really in Xet; a platform without the binary
 * loses Xet, not the download.
 */

/** `HF_HUB_DISABLE_XET` as huggingface_hub reads it. */
export function isXetDisabledEnv(env: NodeJS.ProcessEnv): boolean {
  return /^(1|true|yes|on)$/i.test(env.HF_HUB_DISABLE_XET ?? '');
}

export interface XetSettingsInput {
  env: NodeJS.ProcessEnv;
  /** `--no-xet` (false) */
  xet?: boolean;
  /** The hub cache root the chunk cache lives under (src/cache/layout.ts). */
  cacheRoot: string;
  onFallback?: (line: string) => void;
}

/** The engine's `xet` option for a pull, or undefined when Xet is switched off. */
export function xetSettings(input: XetSettingsInput): XetTransferOptions | undefined {
  if (input.xet === false || isXetDisabledEnv(input.env)) return undefined;
  return { chunkCache: chunkCacheFor(input.cacheRoot, input.env), ...(input.onFallback && { onFallback: input.onFallback }) };
}

/** The Xet token providers of a batch (its resolved options), by token URL and headers. */
const tokenProviders = new WeakMap<ResolvedOptions, Map<string, XetTokenProvider>>();

/** The job's Xet pointer: from the listing, else from its resolve answer (whose redirect is not followed). */
async function locate(job: TransferJob, opts: ResolvedOptions): Promise<XetFilePointer | undefined> {
  if (job.xet?.fileHash && job.xet.tokenUrl) return { fileHash: job.xet.fileHash, tokenUrl: job.xet.tokenUrl };
  const url = job.urls[0] as string;
  const response = await requestFollowingRedirects(opts.transport, {
    url,
    method: 'HEAD',
    followRedirects: false,
    ...(job.headers && { headers: job.headers }),
    ...(opts.signal && { signal: opts.signal }),
  });
  discardBody(response);
  if (response.status >= 400) return undefined; // the plain path reports it as it always has
  return parseXetPointer({ get: (name) => headerValue(response.headers, name) }, url);
}

/** The job through Xet; undefined when it is not a Xet file (the plain path takes it). */
async function viaXet(job: TransferJob, index: number, opts: ResolvedOptions, progress: BatchProgress, xet: XetTransferOptions): Promise<TransferResult | undefined> {
  if (job.size === undefined || job.digest?.algorithm !== 'sha256' || job.urls.length === 0) return undefined;
  const pointer = await locate(job, opts);
  if (!pointer) return undefined;
  const [{ runXetDownload }, { hubXetTokenProvider }] = await Promise.all([import('./xet-download.js'), import('./xet-token.js')]);
  progress.update(index, { phase: 'download' });
  // One token for every file of the batch with the same token URL and headers: a thousand Xet files cost one API call, not a thousand.
  const providers = tokenProviders.get(opts) ?? new Map<string, XetTokenProvider>();
  tokenProviders.set(opts, providers);
  const providerKey = JSON.stringify([pointer.tokenUrl, job.headers ?? {}]);
  const token = providers.get(providerKey) ?? hubXetTokenProvider({ tokenUrl: pointer.tokenUrl, ...(job.headers && { headers: job.headers }), transport: opts.transport, clock: opts.clock, ...(opts.signal && { signal: opts.signal }) });
  providers.set(providerKey, token);
  const result = await runXetDownload(
    {
      fileHash: pointer.fileHash,
      size: job.size,
      sha256: job.digest.hex,
      tempPath: job.tempPath,
      token,
      ...(xet.chunkCache && { chunkCache: xet.chunkCache }),
      ...(job.xet?.storedAt && { storedAt: job.xet.storedAt }),
      onProgress: (bytesDone, contiguousBytes) => progress.update(index, { bytesDone, contiguousBytes }),
      onReceived: (bytes) => progress.addReceived(bytes),
    },
    opts,
  );
  progress.update(index, { phase: 'done', bytesDone: result.size, contiguousBytes: result.size }, true);
  return {
    tempPath: result.tempPath,
    size: result.size,
    digest: { algorithm: 'sha256', hex: result.sha256 },
    bytesFetched: result.bytesFetched,
    bytesResumed: result.bytesResumed,
    source: 'xet',
    bytesDeduplicated: result.bytesDeduplicated,
  };
}

/**
 * Runs `plain` unless the job is a Xet file and Xet is on; a Xet failure (not an abort) prints one
 * line and runs `plain` after discarding the Xet partial file.
 */
export async function transferMaybeXet(job: TransferJob, index: number, opts: ResolvedOptions, progress: BatchProgress, xet: XetTransferOptions | undefined, plain: () => Promise<TransferResult>): Promise<TransferResult> {
  if (!xet || !job.xet) return plain();
  try {
    const result = await viaXet(job, index, opts, progress, xet);
    if (result) return result;
  } catch (error) {
    if (opts.signal?.aborted) throw error;
    const reason = error instanceof ModelfetchError ? error.message : error instanceof Error ? error.message : String(error);
    const name = job.urls[0] ? redactUrl(job.urls[0]).split('/').pop() : job.tempPath;
    const line = `Xet download of ${name} failed (${reason.replace(/\s+/g, ' ').slice(0, 300)}); downloading it through the plain path instead.\n`;
    if (xet.onFallback) xet.onFallback(line);
    else process.stderr.write(line);
    await removeIfPresent(job.tempPath);
    await removeIfPresent(journalPathFor(job.tempPath));
  }
  return { ...(await plain()), source: 'plain' };
}

/** Keeps the chunk cache within its limit after a batch (least recently used first). */
export async function trimChunkCache(xet: XetTransferOptions | undefined): Promise<void> {
  await xet?.chunkCache?.trim().catch(() => undefined);
}
