import { markRevisionInUse } from '../cache/lock.js';
import { markNoExist, writeRef } from '../cache/snapshot.js';
import { touchRevision } from '../cache/usage.js';
import { assertDiskSpace } from '../core/disk-space.js';
import { tooManyFiles } from '../source/listing-limit.js';
import type { Remote } from '../source/remote.js';
import { connectRemote } from './connect.js';
import { fetchBlobs, pathsOnDisk, planFiles, uniqueByDigest } from './fetch-blobs.js';
import { notInCache, pullCommandLine, withPullHint } from './hints.js';
import { checkPullOptions, type PullOptions, type PullResult } from './options.js';
import { pinnedListing, resolveListing } from './resolve-listing.js';
import { emptySelection, loadGlobSupport, missingFiles, selectFiles } from './select-files.js';
import { openTarget } from './target.js';

export type { PullOptions, PullPlan, PullProgressEvent, PullResult, TransferFilesFn } from './options.js';

/**
 * `pull`: the one place that knows source, cache and transfer. Resolves `org/name@rev` to a commit
 * and its files (resolve-listing), selects what was asked for (select-files), finds what the cache
 * already holds (stamped blobs cost a stat, not a hash), fetches the rest in ONE transfer batch
 * (fetch-blobs), commits blobs, links the snapshot. A cache hit pinned to a commit makes no request at all.
 */
export async function pull(options: PullOptions): Promise<PullResult> {
  const started = Date.now();
  const checked = checkPullOptions(options);
  const { repoId, revision, offline } = checked;
  const target = await openTarget(checked);
  const { repo, local } = target;
  if (options.include?.length || options.exclude?.length) await loadGlobSupport();
  let remote: Remote | undefined;
  const online = async (): Promise<Remote> => (remote ??= await connectRemote(checked));

  const resolved = options.listing ? pinnedListing(revision, options.listing) : await resolveListing({ repo, local, revision, offline, online, mayFallBack: !options.check });
  const { commit } = resolved;
  // Whatever the listing came from (hub pages, ModelScope, a cached tree listing, a lockfile).
  if (resolved.listing.length > checked.maxFiles) throw tooManyFiles(repoId, checked.maxFiles);
  const selection = selectFiles(resolved.listing, checked.requested, options.include, options.exclude);
  // A snapshot folder (not a full listing) cannot say a file does not exist: the network error stands.
  if (resolved.fallback && !resolved.authoritative && (selection.missing.length || !selection.files.length)) throw resolved.fallback.error;
  if (selection.missing.length) {
    if (resolved.authoritative && !local) for (const path of selection.missing) await markNoExist(repo, commit, path);
    throw missingFiles(selection.missing, repoId, resolved, offline);
  }
  if (selection.files.length === 0 && !options.listing) throw emptySelection(repoId, resolved, offline, options);
  if (resolved.fromHub && !local && revision !== commit) await writeRef(repo, revision, commit);

  const store = target.store(commit);
  // What is on disk before planning, which removes wrong blobs: lets an error tell "corrupt" from "missing".
  const foundBefore = options.check || offline ? await pathsOnDisk(selection.files, (file) => (local ? undefined : repo.blob(file.digest))) : new Set<string>();
  const plan = await planFiles(store, selection.files);
  if (resolved.fallback) {
    // The hub could not be reached: the cache may stand in only for a selection it holds completely.
    if (plan.missing.length) throw resolved.fallback.error;
    options.onWarning?.(`${resolved.fallback.error.message.replace(/[.\s]+$/, '')}; using the cached ${repoId}@${commit.slice(0, 12)} (${revision})`);
  }
  const files = selection.files.length;
  const result: PullResult = { path: target.path(commit), repoId, repoType: checked.repoType, revision, commit, files, cacheHits: files - plan.missing.length, downloaded: 0, bytesFetched: 0, bytesResumed: 0, bytesDeduplicated: 0, bytesBySource: { xet: 0, plain: 0, ...(options.swarm && { peers: 0, webSeeds: 0 }) }, elapsedMs: 0 };
  const unique = store.sharesContent ? uniqueByDigest(plan.missing) : plan.missing;
  options.onPlan?.({ repoId, commit, files, cacheHits: result.cacheHits, toFetch: plan.missing.length, bytesToFetch: unique.reduce((sum, f) => sum + f.size, 0) });
  const absent = options.check ? plan.unlinked : plan.missing;
  if (absent.length && (options.check || offline)) throw notInCache(checked, commit, files, absent, foundBefore);

  const inUse = local ? undefined : await markRevisionInUse(repo, commit);
  try {
    if (plan.missing.length) {
      const elsewhere = local ? 'pull into another --local-dir' : 'point --cache-dir (or HF_HUB_CACHE) at a larger disk';
      await assertDiskSpace(
        unique.map((file) => ({ path: store.tempPath(file), size: file.size })),
        { ...(options.ignoreDiskSpace && { ignore: true }), ...(options.freeBytes && { freeBytes: options.freeBytes }), elsewhere },
      );
      const fetched = await fetchBlobs(store, unique, { repoId, commit, ...(!local && { repo }) }, await online(), options).catch((error: unknown) => {
        throw withPullHint(error, pullCommandLine(checked));
      });
      Object.assign(result, fetched, { downloaded: plan.missing.length });
    }
    for (const file of plan.unlinked) await store.link(file);
    if (resolved.fromHub) await store.writeListing(resolved.listing);
    if (!local) await touchRevision(repo, commit); // gc's last-use record
  } finally {
    await inUse?.release();
  }
  if (options.dtype) {
    const { convertAfterPull } = await import('../safetensors/convert.js');
    result.converted = await convertAfterPull(result.path, repo, commit, options);
    result.path = result.converted.path;
  }
  result.elapsedMs = Date.now() - started;
  return result;
}
