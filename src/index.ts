/**
 * modelfetch's public library API: what a program needs to put models on disk (`get`, `pull`),
 * serve a cache (`serve`), manage a cache, pin and sync models (preload, bake, run), read and
 * narrow safetensors, and the error type with its stable codes. Engine internals (the transfer
 * engine, connection budgets, in-use markers, the mirror's catalog) are not part of it; they change
 * without notice. `test/architecture/public-api.test.ts` holds this list.
 */
export { ModelfetchError, isModelfetchError, exitCodeFor, ERROR_CODES, type ErrorCode } from './core/errors.js';
export type { FileDigest, RepoType } from './core/types.js';
export type { ProgressEvent } from './transfer/types.js';
export { get, type GetOptions, type GetResult } from './get.js';
export { pull, type PullOptions, type PullResult, type PullPlan } from './pull/index.js';
export { serve, createMirrorServer, type MirrorServer, type MirrorServerOptions } from './server/mirror-server.js';
export type { UpstreamHub } from './server/catalog.js';
export { scanCache, type CacheScan, type ScannedRepo, type ScannedRevision, type CacheIssue } from './cache/scan.js';
export { verifyCache, type VerifyOptions, type VerifyReport, type VerifyProblem } from './cache/verify.js';
export { gcCache, type GcOptions, type GcReport } from './cache/gc.js';
export { removeFromCache, type RemoveOptions, type RemoveReport } from './cache/remove.js';
export { repairCache, type RepairOptions } from './repair.js';
export { parseManifest, readManifest, type Manifest, type ManifestModel } from './preload/manifest.js';
export { parseLockfile, readLockfile, serialiseLockfile, diffManifestAndLock, type Lockfile, type LockedModel, type LockedFile } from './preload/lockfile.js';
export { lockManifest, writeLockfile } from './preload/lock.js';
export { writeKeyPair, signBytes, verifyBytes } from './preload/signature.js';
export { signLockfile, readVerifiedLockfile } from './preload/lock-signature.js';
export { syncLockfile, type SyncOptions, type SyncReport } from './preload/sync.js';
export { bake, exportLockedTree, type BakeOptions, type BakeResult } from './bake/bake.js';
export { writeOciLayout, type OciImageOptions, type OciImageResult } from './bake/oci-layout.js';
export { supervise, type SuperviseOptions, type SupervisorResult } from './supervise/supervisor.js';
export { runWithModels, modelEnvironment, type RunWithModelsOptions } from './supervise/run-with-models.js';
export { inspect, type InspectOptions, type InspectReport, type InspectedFile } from './safetensors/inspect.js';
export { convertSnapshot, type ConvertSnapshotOptions, type ConvertResult } from './safetensors/convert.js';
export { derivedSnapshotId, readDerivedRecord, type DerivedRecord } from './safetensors/derived.js';
