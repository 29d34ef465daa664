/** modelfetch's public library API. */
export { ModelfetchError, isModelfetchError, exitCodeFor, type ErrorCode } from './errors.js';
export { redactUrl, redactText } from './redact.js';
export type { Snapshot, RemoteFile, FileDigest, RepoType } from './source/types.js';
export type { TransferJob, TransferResult, TransferOptions, ProgressEvent, Clock } from './transfer/types.js';
export { parseManifest, readManifest, type Manifest, type ManifestModel } from './preload/manifest.js';
export { parseLockfile, readLockfile, serialiseLockfile, diffManifestAndLock, type Lockfile, type LockedModel, type LockedFile } from './preload/lockfile.js';
export { lockManifest, writeLockfile, type ResolveRevision } from './preload/lock.js';
export { writeKeyPair, signBytes, verifyBytes } from './preload/signature.js';
export { signLockfile, readVerifiedLockfile } from './preload/lock-signature.js';
export { bake, exportLockedTree, type BakeOptions, type BakeResult } from './bake/bake.js';
export { writeOciLayout, type OciImageOptions, type OciImageResult } from './bake/oci-layout.js';
export { supervise, type SuperviseOptions, type SupervisorResult } from './supervise/supervisor.js';
export { runWithModels, modelEnvironment, type RunWithModelsOptions } from './supervise/run-with-models.js';
