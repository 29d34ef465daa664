import { setMaxListeners } from 'node:events';
import { ModelfetchError } from '../core/errors.js';
import { FileTransfer } from './file-transfer.js';
import { warmHashWorker } from '../core/hash/hash-cursor.js';
import { resolveOptions, type EngineOptions } from './options.js';
import { BatchProgress } from './progress.js';
import type { TransferJob, TransferResult } from './types.js';
import { transferMaybeXet, trimChunkCache } from './xet/xet-transfer.js';

export { warmHashWorker } from '../core/hash/hash-cursor.js';
export { createConnectionBudget, type ConnectionBudget } from './budget.js';
export type { EngineOptions } from './options.js';
export type { TransferJob, TransferResult, TransferOptions, ProgressEvent, Clock, XetTransferOptions } from './types.js';
export { createRangeReader, type RangeReader, type RangeReadRequest, type RangeReadResult } from './range-read.js';
export { xetSettings } from './xet/xet-transfer.js';

export interface BatchResult extends Array<TransferResult> {
  /** Most connections that were open at once during the batch. */
  peakConnections?: number;
}

/**
 * Fills each job's temp file, verified. All jobs share one per-host connection budget (the
 * options' `budget`, or one made for this call). On success every temp file is complete, fsynced
 * and its journal gone; the caller commits it with `commitTempFile`. If any job fails, the others
 * still run to their end, then the first failure is thrown; partial data and journals stay for
 * resuming, except after an integrity failure.
 */
export async function transferFiles(jobs: TransferJob[], options: EngineOptions = {}): Promise<BatchResult> {
  const tempPaths = new Set<string>();
  for (const job of jobs) {
    if (tempPaths.has(job.tempPath)) throw new ModelfetchError('ERR_USAGE', `Two jobs write the same temp file ${job.tempPath}`);
    tempPaths.add(job.tempPath);
  }
  // One batch signal, so a thousand files add one listener to the caller's signal, not a thousand.
  const batch = new AbortController();
  setMaxListeners(0, batch.signal);
  const onAbort = (): void => batch.abort(options.signal?.reason);
  if (options.signal?.aborted) onAbort();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const opts = resolveOptions({ ...options, signal: batch.signal });
  if (jobs.length > 0) warmHashWorker();
  const progress = new BatchProgress(jobs, opts.onProgress);
  // Files in flight are bounded (each holds a temp file, a hash cursor and maybe a journal open):
  // enough to keep every connection busy with small files, never a thousand open at once.
  const inFlight = Math.max(16, 4 * opts.connections);
  let next = 0;
  const outcomes: Array<PromiseSettledResult<TransferResult>> = new Array(jobs.length);
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const i = next++;
      const job = jobs[i] as TransferJob;
      outcomes[i] = await transferMaybeXet(job, i, opts, progress, options.xet, () => new FileTransfer(job, i, opts, progress).run()).then(
        (value): PromiseFulfilledResult<TransferResult> => ({ status: 'fulfilled', value }),
        (reason: unknown): PromiseRejectedResult => ({ status: 'rejected', reason }),
      );
    }
  };
  const settled = await Promise.all(Array.from({ length: Math.min(inFlight, jobs.length) }, worker)).then(() => outcomes).finally(() => {
    progress.close();
    options.signal?.removeEventListener('abort', onAbort);
  });
  await trimChunkCache(options.xet);
  const failure = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failure) throw failure.reason;
  const results = settled.map((s) => (s as PromiseFulfilledResult<TransferResult>).value) as BatchResult;
  results.peakConnections = progress.peakConnections;
  return results;
}

/** `transferFiles` for one job. */
export async function transferFile(job: TransferJob, options: EngineOptions = {}): Promise<TransferResult & { peakConnections?: number }> {
  const results = await transferFiles([job], options);
  const result = results[0] as TransferResult;
  return results.peakConnections === undefined ? result : { ...result, peakConnections: results.peakConnections };
}
