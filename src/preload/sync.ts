import { isOfflineEnv } from '../core/hf-env.js';
import type { RepoType } from '../core/types.js';
import { randomBytes } from 'node:crypto';
import { mkdir, readlink, rename, symlink, unlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Dispatcher } from 'undici';
import { RepoPaths } from '../cache/layout.js';
import { readRef, writeRef } from '../cache/snapshot.js';
import { fromSystemError, ModelfetchError } from '../core/errors.js';
import { cacheStore, type FileStore } from '../cache/file-store.js';
import { assertDiskSpace, type SpaceNeed } from '../core/disk-space.js';
import { pull, type PullOptions, type PullPlan, type PullResult } from '../pull/index.js';
import { planFiles, uniqueByDigest } from '../pull/fetch-blobs.js';
import type { Clock, ProgressEvent } from '../transfer/types.js';
import { readVerifiedLockfile } from './lock-signature.js';
import { assertLockMatchesManifest, type LockedModel } from './lockfile.js';

/**
 * `modelfetch sync`: make the cache hold exactly what the lockfile pins, checked in this order:
 * signature (before anything else is read or fetched), manifest agreement (--frozen), then the files
 * through `pull`, pinned to the locked commit with the lockfile's own listing: the hub is never asked
 * what a commit holds, and bytes are accepted only when they match the locked digest, whichever hub
 * or mirror serves them. A stamped blob costs two stats and a small read; when everything is present
 * no request is made and the HTTP client is never even loaded (so no DNS lookup either).
 */

export interface SyncOptions {
  lockPath: string;
  /** The hub cache (HF_HUB_CACHE). */
  cacheDir: string;
  /** Default: modelfetch.yaml beside the lockfile. Read only with `frozen`. */
  manifestPath?: string;
  /** Fail when the manifest changed since the lockfile was made. */
  frozen?: boolean;
  /** Never download: fail with ERR_INCOMPLETE when a file is missing or corrupt. */
  check?: boolean;
  /** Skip the free-space check made before the first byte. */
  ignoreDiskSpace?: boolean;
  /** Refuse the lockfile unless `{lock}.sig` is a valid signature by this public key. */
  verifyKey?: string;
  /** ModelScope models' cache (default MODELSCOPE_CACHE, else ~/.cache/modelscope/hub). */
  modelscopeCacheDir?: string;
  /** Hugging Face hub or mirror to fetch from (any: the lockfile's digests decide what is accepted). ModelScope uses MODELSCOPE_DOMAIN. */
  endpoint?: string;
  token?: string;
  /** Where `local-dir` folders are placed (default: the current directory, as `huggingface-cli download --local-dir`). */
  localRoot?: string;
  env?: NodeJS.ProcessEnv;
  dispatcher?: Dispatcher;
  clock?: Clock;
  signal?: AbortSignal;
  onProgress?: (event: ProgressEvent) => void;
  log?: (line: string) => void;
  /** Engine overrides for tests and tuning. */
  transfer?: PullOptions['transfer'];
}

export interface SyncReport {
  models: number;
  files: number;
  /** Files already complete and verified in the cache. */
  present: number;
  fetched: number;
  bytesFetched: number;
  /** The locked revisions now in the cache (what `run` holds in use while its command runs). */
  revisions: Array<{ repoType: RepoType; repoId: string; commit: string }>;
}

export async function syncLockfile(options: SyncOptions): Promise<SyncReport> {
  const { lock } = await readVerifiedLockfile(options.lockPath, options.verifyKey);
  if (options.frozen) {
    const manifestPath = options.manifestPath ?? join(dirname(options.lockPath), 'modelfetch.yaml');
    const { readManifest } = await import('./manifest.js'); // yaml is loaded only for --frozen
    assertLockMatchesManifest(await readManifest(manifestPath), lock, manifestPath, options.lockPath);
  }
  if (!options.check && !options.ignoreDiskSpace && !isOfflineEnv(options.env ?? process.env)) await assertRoomForLock(lock.models, options);
  const report: SyncReport = { models: lock.models.length, files: 0, present: 0, fetched: 0, bytesFetched: 0, revisions: [] };
  for (const model of lock.models) {
    const result = await syncModel(model, options);
    report.files += result.files;
    report.present += result.cacheHits;
    report.fetched += result.downloaded;
    report.bytesFetched += result.bytesFetched;
    report.revisions.push({ repoType: model.repoType, repoId: model.repo, commit: model.commit });
  }
  return report;
}

async function syncModel(model: LockedModel, options: SyncOptions): Promise<PullResult> {
  if (model.source === 'modelscope') {
    // Into the modelscope library's own layout (MODELSCOPE_CACHE), from MODELSCOPE_DOMAIN; its token is its own.
    return pull({
      repo: model.repo,
      source: 'modelscope',
      layout: 'modelscope',
      revision: model.commit,
      listing: model.files,
      ...(options.modelscopeCacheDir !== undefined && { cacheDir: options.modelscopeCacheDir }),
      ...(options.check && { check: true }),
      ...pick(options, ['env', 'dispatcher', 'clock', 'signal', 'onProgress', 'transfer', 'ignoreDiskSpace']),
      fixCommand: syncCommandLine(options.lockPath),
      onPlan: (plan) => logPlan(plan, model, options),
    });
  }
  if (model.source !== 'hf') {
    throw new ModelfetchError('ERR_USAGE', `Cannot sync ${model.identity}: source ${model.source} cannot be synced yet`, { hint: 'Lock hf or modelscope models, or fetch this one with `modelfetch get`.' });
  }
  const result = await pull({
    repo: model.repo,
    repoType: model.repoType,
    revision: model.commit,
    listing: model.files,
    cacheDir: options.cacheDir,
    ...(options.check && { check: true }),
    ...pick(options, ['endpoint', 'token', 'env', 'dispatcher', 'clock', 'signal', 'onProgress', 'transfer', 'ignoreDiskSpace']),
    fixCommand: syncCommandLine(options.lockPath),
    onPlan: (plan) => logPlan(plan, model, options),
  });
  const repo = new RepoPaths(options.cacheDir, model.repoType, model.repo);
  // The ref the loaders resolve offline (`main` → commit) must name the locked commit.
  if (model.revision !== model.commit && (await readRef(repo, model.revision)) !== model.commit) await writeRef(repo, model.revision, model.commit);
  if (model.localDir !== undefined) await placeLocalDir(model, repo, resolve(options.localRoot ?? process.cwd(), model.localDir));
  return result;
}

/** What fetches a locked file that is missing or corrupt: sync itself (only the locked bytes are accepted), with the same lockfile. */
function syncCommandLine(lockPath: string): string {
  return resolve(lockPath) === resolve('modelfetch.lock.json') ? 'modelfetch sync' : `modelfetch sync --lock ${lockPath}`;
}

/**
 * One free-space check for the whole lockfile before the first model is fetched (each pull checks
 * its own model again, which then costs only stats): a lock whose second model does not fit fails
 * before the first one is downloaded.
 */
async function assertRoomForLock(models: LockedModel[], options: SyncOptions): Promise<void> {
  const env = options.env ?? process.env;
  const needs: SpaceNeed[] = [];
  for (const model of models) {
    let store: FileStore;
    if (model.source === 'hf') store = cacheStore(new RepoPaths(options.cacheDir, model.repoType, model.repo), model.commit);
    else if (model.source === 'modelscope') {
      const layout = await import('../cache/modelscope-layout.js');
      store = new layout.ModelScopeFolder(new layout.ModelScopePaths(options.modelscopeCacheDir ?? layout.resolveModelScopeCache(env), model.repo), model.commit).store(model.commit);
    } else continue; // refused with its own error when its turn comes
    const { missing } = await planFiles(store, model.files);
    for (const file of uniqueByDigest(missing)) needs.push({ path: store.tempPath(file), size: file.size });
  }
  await assertDiskSpace(needs, { elsewhere: 'point --cache-dir (or HF_HUB_CACHE) at a larger disk' });
}

function logPlan(plan: PullPlan, model: LockedModel, options: SyncOptions): void {
  if (plan.toFetch > 0) options.log?.(`fetching ${plan.toFetch} of ${plan.files} files of ${model.repo}@${model.commit.slice(0, 12)}`);
}

function pick<T extends object, K extends keyof T>(source: T, keys: K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const key of keys) if (source[key] !== undefined) out[key] = source[key];
  return out;
}

/**
 * `local-dir`: each file appears at `{dir}/{path}` as a symlink to its snapshot entry. Links, not
 * copies: no second copy of the bytes, and in an image no copy-up of a multi-GB lower-layer file.
 */
async function placeLocalDir(model: LockedModel, repo: RepoPaths, dir: string): Promise<void> {
  for (const file of model.files) {
    const target = resolve(repo.snapshotFile(model.commit, file.path));
    const link = join(dir, file.path);
    if ((await readlink(link).catch(() => undefined)) === target) continue;
    try {
      await mkdir(dirname(link), { recursive: true });
      const temp = `${link}.mf-${randomBytes(4).toString('hex')}.tmp`;
      await symlink(target, temp);
      await rename(temp, link).catch(async (error: unknown) => {
        await unlink(temp).catch(() => {});
        throw error;
      });
    } catch (error) {
      throw fromSystemError(error, `placing ${file.path} in ${dir}`);
    }
  }
}
