/** modelfetch's public library API. */
export { ModelfetchError, isModelfetchError, exitCodeFor, type ErrorCode } from './errors.js';
export { redactUrl, redactText } from './redact.js';
export type { Snapshot, RemoteFile, FileDigest, RepoType } from './source/types.js';
export type { TransferJob, TransferResult, TransferOptions, ProgressEvent, Clock } from './transfer/types.js';
export { transferFiles, transferFile, createConnectionBudget, type ConnectionBudget, type EngineOptions } from './transfer/index.js';
export { get, type GetOptions, type GetResult } from './get.js';
export { createMirrorServer, serve, type MirrorServer, type MirrorServerOptions } from './server/mirror-server.js';
export type { UpstreamHub, ListingStore } from './server/catalog.js';
export type { FetchFile, FetchRequest } from './server/flights.js';
