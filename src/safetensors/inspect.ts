import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Dispatcher } from 'undici';
import { RepoPaths } from '../cache/layout.js';
import { ModelScopePaths, resolveModelScopeCache } from '../cache/modelscope-layout.js';
import { readHfToken, resolveCacheDir, resolveHfEndpoint } from '../core/env.js';
import { parseRepoReference } from '../core/repo-ref.js';
import { readRef } from '../cache/snapshot.js';
import { readRepoTreeListing } from '../cache/tree-listing.js';
import { isSha1Hex } from '../core/validate.js';
import { ModelfetchError } from '../core/errors.js';
import { isOfflineEnv } from '../core/hf-env.js';
import type { RepoType } from '../core/types.js';
import type { RangeReader } from '../transfer/range-read.js';
import { readHeader, type SafetensorsHeader } from './header.js';
import { checkIndex, MAX_INDEX_BYTES, parseIndex } from './index-file.js';
import { FIRST_READ_BYTES, readLocalHeader } from './local-file.js';
import { planConversion } from './plan.js';
import { isSafetensors, isSafetensorsIndex, listFolder } from './source-folder.js';

/**
 * `inspect`: what a model holds, from its safetensors headers alone. For a Hub repo, each shard's
 * header costs one ranged read of 64–256 KiB by its size (a second only for a longer header), all shards at once
 * under one connection budget; the index files are read in the same round. Files already in the
 * cache are read there, and a revision the cache knows (a commit, or a ref it recorded) with all
 * its files cached needs no request at all.
 */

export interface DtypeTotals {
  tensors: number;
  parameters: number;
  bytes: number;
}

export interface InspectedFile {
  path: string;
  size: number;
  headerBytes: number;
  tensors: number;
  parameters: number;
  dtypes: Record<string, DtypeTotals>;
  metadata?: Record<string, string>;
  /** Exact file size after `convert --dtype f16` / `bf16`. */
  sizeAfter: { F16: number; BF16: number };
  /** Where the header was read: the local disk (a folder, the cache) or over HTTP. */
  from: 'disk' | 'http';
}

export interface InspectReport {
  /** What was inspected: a folder, `org/name@commit`, or a URL. */
  target: string;
  commit?: string;
  files: InspectedFile[];
  indexes: Array<{ path: string; shards: number; tensors: number }>;
  tensors: number;
  parameters: number;
  bytes: number;
  dtypes: Record<string, DtypeTotals>;
  sizeAfter: { F16: number; BF16: number };
  /** HTTP requests made for headers and indexes (the hub's API calls not counted). */
  rangeRequests: number;
}

export interface InspectOptions {
  /** A folder or file path, `org/name[@rev]`, or an http(s) URL to one .safetensors file. */
  target: string;
  repoType?: RepoType;
  cacheDir?: string;
  endpoint?: string;
  token?: string;
  offline?: boolean;
  connections?: number;
  env?: NodeJS.ProcessEnv;
  dispatcher?: Dispatcher;
  signal?: AbortSignal;
}

function summarizeFile(path: string, size: number, header: SafetensorsHeader, from: InspectedFile['from']): InspectedFile {
  const dtypes: Record<string, DtypeTotals> = {};
  let parameters = 0;
  for (const tensor of header.tensors) {
    const count = tensor.shape.reduce((n, d) => n * d, 1);
    const totals = (dtypes[tensor.dtype] ??= { tensors: 0, parameters: 0, bytes: 0 });
    totals.tensors += 1;
    totals.parameters += count;
    totals.bytes += tensor.end - tensor.begin;
    parameters += count;
  }
  const none = (): boolean => false;
  return {
    path,
    size,
    headerBytes: header.headerBytes,
    tensors: header.tensors.length,
    parameters,
    dtypes,
    ...(header.metadata && { metadata: header.metadata }),
    sizeAfter: { F16: planConversion(header, 'F16', none).size, BF16: planConversion(header, 'BF16', none).size },
    from,
  };
}

function report(target: string, files: Array<{ path: string; size: number; header: SafetensorsHeader; from: InspectedFile['from'] }>, indexes: Array<{ path: string; bytes: Uint8Array }>, rangeRequests: number, commit?: string): InspectReport {
  if (!files.length) throw new ModelfetchError('ERR_NOT_FOUND', `${target} has no .safetensors files`, { hint: 'inspect reads safetensors headers only; other weight formats have none to read.' });
  const headers = new Map(files.map((f) => [f.path, f.header]));
  const parsed = indexes.map(({ path, bytes }) => {
    const index = parseIndex(path, bytes);
    checkIndex(index, headers);
    return { path, shards: index.shards.length, tensors: index.weightMap.size };
  });
  const summaries = files.map((f) => summarizeFile(f.path, f.size, f.header, f.from)).sort((a, b) => (a.path < b.path ? -1 : 1));
  const dtypes: Record<string, DtypeTotals> = {};
  for (const file of summaries) {
    for (const [dtype, totals] of Object.entries(file.dtypes)) {
      const sum = (dtypes[dtype] ??= { tensors: 0, parameters: 0, bytes: 0 });
      sum.tensors += totals.tensors;
      sum.parameters += totals.parameters;
      sum.bytes += totals.bytes;
    }
  }
  const total = (pick: (f: InspectedFile) => number): number => summaries.reduce((n, f) => n + pick(f), 0);
  return {
    target,
    ...(commit && { commit }),
    files: summaries,
    indexes: parsed,
    tensors: total((f) => f.tensors),
    parameters: total((f) => f.parameters),
    bytes: total((f) => f.size),
    dtypes,
    sizeAfter: { F16: total((f) => f.sizeAfter.F16), BF16: total((f) => f.sizeAfter.BF16) },
    rangeRequests,
  };
}

async function isLocalPath(target: string): Promise<boolean> {
  if (target.startsWith('/') || target.startsWith('./') || target.startsWith('../') || target === '.' || target.startsWith('~')) return true;
  return (await stat(target).catch(() => undefined)) !== undefined;
}

export async function inspect(options: InspectOptions): Promise<InspectReport> {
  const { target } = options;
  if (/^https?:\/\//i.test(target)) return inspectUrl(options);
  if (target.startsWith('ms://')) return inspectModelScope(options);
  if (await isLocalPath(target)) return inspectFolder(resolve(target));
  return inspectRepo(options);
}

/** A folder (every .safetensors below it) or a single file. */
async function inspectFolder(path: string): Promise<InspectReport> {
  const info = await stat(path).catch(() => undefined);
  if (!info) throw new ModelfetchError('ERR_NOT_FOUND', `${path} does not exist`, { hint: 'Give a model folder, a .safetensors file, org/name or a URL.' });
  if (info.isFile()) {
    const { header, size } = await readLocalHeader(path);
    return report(path, [{ path, size, header, from: 'disk' }], [], 0);
  }
  const listed = await listFolder(path);
  const files = await Promise.all(listed.filter((f) => isSafetensors(f.path)).map(async (f) => ({ path: f.path, ...(await readLocalHeader(f.absolute, f.path)), from: 'disk' as const })));
  const indexes = await Promise.all(listed.filter((f) => isSafetensorsIndex(f.path)).map(async (f) => ({ path: f.path, bytes: await readCappedLocal(f.absolute, f.size, f.path) })));
  return report(path, files, indexes, 0);
}

async function readCappedLocal(path: string, size: number, what: string): Promise<Buffer> {
  if (size > MAX_INDEX_BYTES) throw new ModelfetchError('ERR_BAD_SAFETENSORS', `${what} is larger than ${MAX_INDEX_BYTES} bytes`, { hint: 'This is not a safetensors index.' });
  return readFile(path);
}

/** Starts loading the engine while the API calls are under way, so the header reads do not wait for it after them. */
function preloadRangeReader(): void {
  void import('../transfer/index.js').catch(() => undefined);
}

/** The engine's range reader (loaded only when something must be fetched), counting requests. */
async function rangeReader(options: InspectOptions): Promise<{ read: RangeReader; count: () => number }> {
  const { createRangeReader } = await import('../transfer/index.js');
  const reader = createRangeReader({
    ...(options.connections !== undefined && { connections: options.connections }),
    ...(options.dispatcher && { dispatcher: options.dispatcher }),
    ...(options.signal && { signal: options.signal }),
  });
  let requests = 0;
  return {
    read: (request) => {
      requests += 1;
      return reader(request);
    },
    count: () => requests,
  };
}

interface RemoteFile {
  url: string;
  /** Known size (a hub listing), checked against what the server says. */
  size?: number;
  headers: Record<string, string>;
  credentialOrigin?: string;
}

/** The largest first read: 256 KiB holds the header of a shard of ~2,000 tensors (a large MoE's). */
const MAX_FIRST_READ_BYTES = 256 * 1024;

/**
 * How much of a remote file the first read asks for: 1/256 of the file (at most 0.4 % of its bytes),
 * at least 64 KiB and at most 256 KiB. A header longer than the first read costs one more round trip;
 * headers grow with the tensor count, which grows with the shard's size, so a big shard's first read
 * is big enough for the header it is likely to have, and a small file's stays small.
 */
export function firstReadBytes(fileSize: number | undefined): number {
  if (fileSize === undefined) return FIRST_READ_BYTES;
  return Math.max(1, Math.min(fileSize, Math.max(FIRST_READ_BYTES, Math.min(MAX_FIRST_READ_BYTES, Math.floor(fileSize / 256)))));
}

/** A header over HTTP: `firstReadBytes` first, then the rest (rarely) from where the first read ended up (after redirects). */
async function remoteHeader(read: RangeReader, file: RemoteFile, what: string): Promise<{ header: SafetensorsHeader; size: number }> {
  const first = await read({ url: file.url, start: 0, end: firstReadBytes(file.size), headers: file.headers, ...(file.credentialOrigin && { credentialOrigin: file.credentialOrigin }) });
  const size = first.total ?? file.size;
  if (size === undefined) throw new ModelfetchError('ERR_BAD_RESPONSE', `${what}: the server did not say how large the file is`, { url: file.url, hint: 'Use a server that answers Range requests.' });
  if (file.size !== undefined && first.total !== undefined && first.total !== file.size) {
    throw new ModelfetchError('ERR_SIZE', `${what} is ${first.total} bytes on the server, the listing says ${file.size}`, { url: first.url, expected: file.size, found: first.total });
  }
  const header = await readHeader(first.bytes, size, async (start, end) => {
    const rest = await read({ url: first.url, start, end, headers: file.headers, credentialed: first.credentialed, ...(file.credentialOrigin && { credentialOrigin: file.credentialOrigin }) });
    return rest.bytes;
  }, what);
  return { header, size };
}

async function inspectUrl(options: InspectOptions): Promise<InspectReport> {
  const { read, count } = await rangeReader(options);
  const { header, size } = await remoteHeader(read, { url: options.target, headers: {} }, options.target);
  return report(options.target, [{ path: options.target, size, header, from: 'http' }], [], count());
}

/** `org/name[@rev]`: the cache where it has the files, the hub (or HF_ENDPOINT's mirror) for the rest. */
async function inspectRepo(options: InspectOptions): Promise<InspectReport> {
  const env = options.env ?? process.env;
  const hf = await import('../source/hf.js');
  const reference = parseRepoReference(options.target);
  const revision = reference.revision ?? 'main';
  const repoType = options.repoType ?? 'model';
  const repo = { repoType, repoId: reference.repoId };
  const paths = new RepoPaths(options.cacheDir ?? resolveCacheDir(env), repoType, reference.repoId);
  const offline = options.offline === true || isOfflineEnv(env);
  let client: { endpoint: string; token?: string; dispatcher?: Dispatcher; signal?: AbortSignal } | undefined;
  const online = async (): Promise<NonNullable<typeof client>> => {
    if (offline) throw new ModelfetchError('ERR_OFFLINE', `${reference.repoId}@${revision} is not fully in the cache and offline mode is on`, { hint: 'Run inspect online once, or pull the model first.' });
    if (!client) {
      preloadRangeReader();
      const token = await readHfToken(options.token, env);
      client = { endpoint: resolveHfEndpoint(options.endpoint, env), ...(token && { token }), ...(options.dispatcher && { dispatcher: options.dispatcher }), ...(options.signal && { signal: options.signal }) };
    }
    return client;
  };
  const commit = isSha1Hex(revision) ? revision : ((await readRef(paths, revision)) ?? (await hf.fetchRevisionCommit(repo, revision, await online())));
  const cachedListing = await readRepoTreeListing(paths, commit);
  let listing: Array<{ path: string; size: number }> | undefined = cachedListing?.filter((f) => isSafetensors(f.path) || isSafetensorsIndex(f.path));
  if (!listing) {
    // No listing cached: a snapshot folder with safetensors in it (an older huggingface_hub cache) answers offline.
    const folder = await listFolder(paths.snapshotDir(commit)).catch(() => []);
    const found = folder.filter((f) => isSafetensors(f.path) || isSafetensorsIndex(f.path));
    listing = found.some((f) => isSafetensors(f.path)) && (offline || client === undefined) ? found : undefined;
  }
  listing ??= (await hf.listRepoFiles(repo, commit, await online())).filter((f) => isSafetensors(f.path) || isSafetensorsIndex(f.path));

  return inspectListing(options, `${reference.repoId}@${commit}`, commit, listing, (path) => paths.snapshotFile(commit, path), async () => {
    const hub = await online();
    return (path) => ({ url: hf.hfResolveUrl(hub.endpoint, repo, commit, path), headers: hf.hfAuthHeaders(hub.token), credentialOrigin: new URL(hub.endpoint).origin });
  });
}

/** `ms://org/name[@rev]`: ModelScope's listing, then the ModelScope cache where it holds a file at its listed size, ModelScope for the rest. */
async function inspectModelScope(options: InspectOptions): Promise<InspectReport> {
  const env = options.env ?? process.env;
  const ms = await import('../source/modelscope.js');
  const reference = ms.parseModelScopeReference(options.target);
  const paths = new ModelScopePaths(resolveModelScopeCache(env), reference.repoId);
  if (options.offline === true || isOfflineEnv(env)) {
    throw new ModelfetchError('ERR_OFFLINE', `inspect needs ModelScope's listing of ${reference.repoId}, and offline mode is on`, { hint: `Inspect the downloaded folder instead: modelfetch inspect ${paths.dir}` });
  }
  preloadRangeReader();
  const endpoint = ms.resolveModelScopeEndpoint(options.endpoint, env);
  const token = ms.readModelScopeToken(options.token, env);
  const snapshot = await ms.resolveModelScopeSnapshot(reference.repoId, reference.revision, { endpoint, ...(token && { token }), ...(options.dispatcher && { dispatcher: options.dispatcher }), ...(options.signal && { signal: options.signal }) });
  const listed = new Map(snapshot.files.filter((f) => isSafetensors(f.path) || isSafetensorsIndex(f.path)).map((f) => [f.path, f]));
  return inspectListing(options, `ms://${reference.repoId}@${snapshot.commit}`, snapshot.commit, [...listed.values()], (path) => paths.file(path), async () => (path) => ({
    url: listed.get(path)!.urls[0]!,
    headers: ms.modelScopeAuthHeaders(token),
    credentialOrigin: new URL(endpoint).origin,
  }));
}

/** A repo's listed safetensors files and indexes: each read from disk where `localPath` holds it at its listed size, else by ranged reads. */
async function inspectListing(options: InspectOptions, label: string, commit: string, listing: Array<{ path: string; size: number }>, localPath: (path: string) => string, connect: () => Promise<(path: string) => RemoteFile>): Promise<InspectReport> {
  const local = await Promise.all(listing.map(async (f) => ((await stat(localPath(f.path)).catch(() => undefined))?.size === f.size ? localPath(f.path) : undefined)));
  const remote = listing.some((_, i) => local[i] === undefined) ? { ...(await rangeReader(options)), urlOf: await connect() } : undefined;
  const entries = listing.map((file, i) => ({ file, local: local[i] }));
  const [files, indexes] = await Promise.all([
    Promise.all(
      entries
        .filter(({ file }) => isSafetensors(file.path))
        .map(async ({ file, local: at }) => ({ path: file.path, ...(at ? await readLocalHeader(at, file.path) : await remoteHeader(remote!.read, { ...remote!.urlOf(file.path), size: file.size }, file.path)), from: at ? ('disk' as const) : ('http' as const) })),
    ),
    Promise.all(
      entries
        .filter(({ file }) => isSafetensorsIndex(file.path))
        .map(async ({ file, local: at }) => {
          if (at) return { path: file.path, bytes: await readCappedLocal(at, file.size, file.path) };
          if (file.size > MAX_INDEX_BYTES || file.size === 0) throw new ModelfetchError('ERR_BAD_SAFETENSORS', `${file.path} is ${file.size} bytes, not a safetensors index`, {});
          const { bytes } = await remote!.read({ ...remote!.urlOf(file.path), start: 0, end: file.size });
          return { path: file.path, bytes };
        }),
    ),
  ]);
  return report(label, files, indexes, remote?.count() ?? 0, commit);
}
