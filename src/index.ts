/** modelfetch's public library API. */
export { ModelfetchError, isModelfetchError, exitCodeFor, type ErrorCode } from './errors.js';
export { redactUrl, redactText } from './redact.js';
export type { Snapshot, RemoteFile, FileDigest, RepoType } from './source/types.js';
export type { TransferJob, TransferResult, TransferOptions, ProgressEvent, Clock } from './transfer/types.js';
export { scanCache, type CacheScan, type ScannedRepo, type ScannedRevision, type CacheIssue } from './cache/scan.js';
export { verifyCache, type VerifyOptions, type VerifyReport, type VerifyProblem } from './cache/verify.js';
export { gcCache, type GcOptions, type GcReport, type InUseCheck } from './cache/gc.js';
export { removeFromCache, type RemoveOptions, type RemoveReport } from './cache/remove.js';
export { touchRevision } from './cache/usage.js';
export { repairCache, type RepairOptions } from './repair.js';
export { transferFiles, transferFile, createConnectionBudget, type ConnectionBudget, type EngineOptions } from './transfer/index.js';
export { get, type GetOptions, type GetResult } from './get.js';
