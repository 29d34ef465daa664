import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { commitBlob } from '../cache/blob-store.js';
import { parseRepoFolderName, RepoPaths } from '../cache/layout.js';
import { markRevisionInUse } from '../cache/lock.js';
import { linkSnapshotFile, writeFileAtomic } from '../cache/snapshot.js';
import { touchRevision } from '../cache/usage.js';
import { fromSystemError, ModelfetchError } from '../core/errors.js';
import { digestOfBytes, hashFile } from '../core/hash/file-digest.js';
import type { FileDigest } from '../core/types.js';
import { writeConvertedFile } from './convert-file.js';
import type { TargetDtype } from './float.js';
import type { SafetensorsHeader } from './header.js';
import { checkIndex, parseIndex, rewriteIndex, type SafetensorsIndex } from './index-file.js';
import { readLocalHeader } from './local-file.js';
import { derivedRecordPath, derivedSnapshotId, readDerivedRecord, type DerivedRecord } from './derived.js';
import { parseTargetDtype, planConversion, torchDtypeName, type ConversionPlan } from './plan.js';
import { isSafetensors, isSafetensorsIndex, listFolder, type FolderFile } from './source-folder.js';

/**
 * `convert`: a model folder with F32/F16/BF16 safetensors becomes the same model in one float
 * dtype. Every header (and index) is read and checked before anything is written, so a hostile or
 * damaged file fails the whole conversion with nothing written. Output goes either to a new folder
 * (staged beside it, renamed into place at the end) or into the cache as a derived snapshot:
 *
 *   snapshots/{derived id}/…   derived id = SHA-256 of (source commit, dtype, kept patterns): 64 hex,
 *                              so it can never be a git commit (40 hex); no ref ever points at it
 *   blobs/{sha256}             converted files and rewritten JSON, as blobs like any other
 *   .locks/modelfetch/{repo}/derived/{id}.json   what it was derived from (written last: complete)
 *
 * Unchanged files link to the blobs the source snapshot already uses, so they cost nothing.
 */

export interface ConvertSnapshotOptions {
  /** The folder to convert: a cache snapshot or a plain model folder. */
  from: string;
  dtype: TargetDtype;
  /** Tensor-name globs to leave as they are (e.g. `*norm*`). */
  keep?: string[];
  /** Write a new folder here (must not exist, or be empty)… */
  out?: string;
  /** …or a derived snapshot beside `commit` in this repo's cache. */
  cache?: { repo: RepoPaths; commit: string };
  signal?: AbortSignal;
  /** Told when each file starts. */
  onFile?: (event: { path: string; action: FileAction; size: number }) => void;
}

export type FileAction = 'convert' | 'rewrite' | 'keep';

export interface ConvertResult {
  /** The folder with the converted model: point the application here. */
  path: string;
  /** The derived snapshot's id (cache output only). */
  derivedId?: string;
  /** Whether a complete derived snapshot was already there. */
  reused: boolean;
  dtype: TargetDtype;
  files: number;
  filesConverted: number;
  tensorsConverted: number;
  /** Bytes of the safetensors files before and after. */
  bytesBefore: number;
  bytesAfter: number;
}

/** What will be written for each file of the folder, computed before anything is. */
export interface FilePlan {
  file: FolderFile;
  action: FileAction;
  header?: SafetensorsHeader;
  conversion?: ConversionPlan;
  /** New content of a rewritten JSON file. */
  content?: string;
}

/** The repo and commit of a path that is a cache snapshot (`{root}/models--org--name/snapshots/{commit}`), else undefined. */
export function cacheSnapshotOf(path: string): { repo: RepoPaths; commit: string } | undefined {
  const match = /^(.*)\/([^/]+)\/snapshots\/([0-9a-f]{40})\/?$/.exec(resolve(path));
  const parsed = match ? parseRepoFolderName(match[2]!) : undefined;
  return match && parsed ? { repo: new RepoPaths(match[1]!, parsed.repoType, parsed.repoId), commit: match[3]! } : undefined;
}

async function keepMatcher(patterns: string[]): Promise<(name: string) => boolean> {
  if (!patterns.length) return () => false;
  const picomatch = (await import('picomatch')).default;
  const matchers = patterns.map((p) => picomatch(p, { dot: true }));
  return (name) => matchers.some((m) => m(name));
}

/** config.json with torch_dtype (and transformers 5's `dtype`) set to the new dtype, in sub-configs too. */
export function rewriteConfig(text: string, dtype: TargetDtype, path: string): string | undefined {
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch {
    return undefined; // not ours to judge: copied as it is
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) return undefined;
  const name = torchDtypeName(dtype);
  const update = (object: Record<string, unknown>, top: boolean): void => {
    for (const key of ['torch_dtype', 'dtype']) if (typeof object[key] === 'string' || (top && key === 'torch_dtype')) object[key] = name;
    for (const value of Object.values(object)) {
      if (typeof value === 'object' && value !== null && !Array.isArray(value)) update(value as Record<string, unknown>, false);
    }
  };
  // Only the model's own config gets a torch_dtype it did not have; nested configs are updated where they name one.
  update(config as Record<string, unknown>, basename(path) === 'config.json' && !path.includes('/'));
  return `${JSON.stringify(config, null, 2)}\n`;
}

/** Reads and checks every header and index of the folder and decides what happens to each file. */
async function planFolder(from: string, dtype: TargetDtype, keep: string[]): Promise<FilePlan[]> {
  return planFiles(from, await listFolder(from), dtype, keep);
}

/**
 * `planFolder` for the given files of `from`. The index and config.json are rewritten when a tensor
 * is converted now, or (`rewriteAnyway`) when an earlier run converted some and may have been
 * stopped before it rewrote them.
 */
export async function planFiles(from: string, files: FolderFile[], dtype: TargetDtype, keep: string[], rewriteAnyway = false): Promise<FilePlan[]> {
  if (!files.some((f) => isSafetensors(f.path))) {
    throw new ModelfetchError('ERR_NOT_FOUND', `${from} has no .safetensors files`, { hint: 'Only safetensors weights can be converted; pull the safetensors variant of the model.' });
  }
  const keeps = await keepMatcher(keep);
  const headers = new Map<string, SafetensorsHeader>();
  const plans: FilePlan[] = [];
  for (const file of files) {
    if (!isSafetensors(file.path)) continue;
    const { header } = await readLocalHeader(file.absolute, file.path);
    headers.set(file.path, header);
  }
  const indexes: SafetensorsIndex[] = [];
  for (const file of files) {
    if (!isSafetensorsIndex(file.path)) continue;
    const index = parseIndex(file.path, await readFile(file.absolute));
    checkIndex(index, headers);
    indexes.push(index);
  }
  let converted = 0;
  for (const file of files) {
    const header = headers.get(file.path);
    if (header) {
      const conversion = planConversion(header, dtype, keeps);
      converted += conversion.converted;
      plans.push({ file, action: conversion.converted ? 'convert' : 'keep', header, conversion });
    } else plans.push({ file, action: 'keep' });
  }
  if (converted === 0 && !rewriteAnyway) return plans;
  for (const plan of plans) {
    const index = indexes.find((i) => i.path === plan.file.path);
    if (index) {
      const tensorBytes = index.shards.reduce((sum, shard) => sum + plans.find((p) => p.file.path === shard)!.conversion!.tensors.reduce((n, t) => n + t.end - t.begin, 0), 0);
      Object.assign(plan, { action: 'rewrite', content: rewriteIndex(index, tensorBytes) });
    } else if (basename(plan.file.path) === 'config.json') {
      const content = rewriteConfig(await readFile(plan.file.absolute, 'utf8'), dtype, plan.file.path);
      if (content !== undefined) Object.assign(plan, { action: 'rewrite', content });
    }
  }
  return plans;
}

export function summarize(plans: FilePlan[], dtype: TargetDtype, path: string, extra: Partial<ConvertResult>): ConvertResult {
  const weights = plans.filter((p) => p.conversion);
  return {
    path,
    reused: false,
    dtype,
    files: plans.length,
    filesConverted: plans.filter((p) => p.action === 'convert').length,
    tensorsConverted: weights.reduce((n, p) => n + p.conversion!.converted, 0),
    bytesBefore: weights.reduce((n, p) => n + p.file.size, 0),
    bytesAfter: weights.reduce((n, p) => n + (p.action === 'convert' ? p.conversion!.size : p.file.size), 0),
    ...extra,
  };
}

export async function convertSnapshot(options: ConvertSnapshotOptions): Promise<ConvertResult> {
  const keep = options.keep ?? [];
  if ((options.out === undefined) === (options.cache === undefined)) throw new ModelfetchError('ERR_USAGE', 'A conversion needs exactly one destination: a folder or the cache');
  if (options.cache) {
    const id = derivedSnapshotId(options.cache.commit, options.dtype, keep);
    const done = await readDerivedRecord(options.cache.repo, id);
    if (done) {
      // Complete when it has every file the source has (a later pull may have added some).
      const path = options.cache.repo.snapshotDir(id);
      const [source, derived] = await Promise.all([listFolder(options.from), listFolder(path).catch(() => [])]);
      const have = new Set(derived.map((f) => f.path));
      if (source.every((f) => have.has(f.path))) {
        await touchRevision(options.cache.repo, id);
        return { ...summarize(await planFolder(path, options.dtype, []), options.dtype, path, { derivedId: id }), reused: true, filesConverted: 0, tensorsConverted: 0 };
      }
    }
  }
  const plans = await planFolder(options.from, options.dtype, keep);
  const nothing = !plans.some((p) => p.action === 'convert');
  if (options.cache) {
    // Nothing to convert (already in this dtype): the source snapshot is the answer; no copy of it is made.
    if (nothing) return summarize(plans, options.dtype, resolve(options.from), {});
    return writeDerivedSnapshot(plans, options, options.cache);
  }
  return writeFolder(plans, options, options.out!);
}

/** Every file of the plan written under `into`: converted, rewritten, or copied (a reflink where the file system can). */
async function writeFolder(plans: FilePlan[], options: ConvertSnapshotOptions, out: string): Promise<ConvertResult> {
  const target = resolve(out);
  const existing = await readdir(target).catch((error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? [] : Promise.reject(fromSystemError(error, `reading ${target}`))));
  if (existing.length) throw new ModelfetchError('ERR_USAGE', `${target} is not empty`, { hint: 'Give --out a new or empty folder; nothing was written.' });
  const staging = join(dirname(target), `.${basename(target)}.mf-convert-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await mkdir(staging, { recursive: true });
    for (const plan of plans) {
      options.onFile?.({ path: plan.file.path, action: plan.action, size: plan.file.size });
      const dest = join(staging, plan.file.path);
      await mkdir(dirname(dest), { recursive: true });
      if (plan.action === 'convert') await writeConvertedFile(plan.file.absolute, plan.header!, plan.conversion!, options.dtype, dest, options.signal);
      else if (plan.action === 'rewrite') await writeFile(dest, plan.content!, { flag: 'wx' });
      else await copyFile(plan.file.absolute, dest, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
    }
    await rmdir(target).catch(() => undefined); // an empty folder given as --out
    await rename(staging, target);
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    throw error instanceof ModelfetchError ? error : fromSystemError(error, `writing ${target}`);
  }
  return summarize(plans, options.dtype, target, {});
}

/** The plan written into the cache as a derived snapshot (see the top of this file). */
async function writeDerivedSnapshot(plans: FilePlan[], options: ConvertSnapshotOptions, cache: { repo: RepoPaths; commit: string }): Promise<ConvertResult> {
  const { repo } = cache;
  const id = derivedSnapshotId(cache.commit, options.dtype, options.keep ?? []);
  const tempDir = join(repo.stateDir, 'partial');
  await mkdir(tempDir, { recursive: true });
  const holds = [await markRevisionInUse(repo, id), await markRevisionInUse(repo, cache.commit)];
  const tempPath = (): string => join(tempDir, `convert-${process.pid}-${randomBytes(6).toString('hex')}.tmp`);
  try {
    for (const plan of plans) {
      options.onFile?.({ path: plan.file.path, action: plan.action, size: plan.file.size });
      let digest: FileDigest;
      if (plan.action === 'convert') {
        const temp = tempPath();
        const written = await writeConvertedFile(plan.file.absolute, plan.header!, plan.conversion!, options.dtype, temp, options.signal);
        digest = { algorithm: 'sha256', hex: written.sha256 };
        await commitBlob(repo, digest, temp);
      } else if (plan.action === 'rewrite') {
        digest = { algorithm: 'sha256', hex: digestOfBytes('sha256', plan.content!) };
        const temp = tempPath();
        await writeFile(temp, plan.content!, { flag: 'wx' });
        await commitBlob(repo, digest, temp);
      } else {
        digest = plan.file.blob ?? { algorithm: 'sha256', hex: (await hashFile(plan.file.absolute, 'sha256')).hex };
        if (!(await stat(repo.blob(digest)).catch(() => undefined))) {
          // A snapshot of copies (where links fail): its file becomes the blob.
          const temp = tempPath();
          await copyFile(plan.file.absolute, temp, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
          await commitBlob(repo, digest, temp);
        }
      }
      await linkSnapshotFile(repo, id, plan.file.path, digest);
    }
    const record: DerivedRecord = { format: 1, derivedFrom: cache.commit, dtype: options.dtype, keep: options.keep ?? [], files: plans.length, createdAt: new Date().toISOString() };
    await writeFileAtomic(derivedRecordPath(repo, id), `${JSON.stringify(record, null, 2)}\n`);
    await touchRevision(repo, id);
  } finally {
    for (const hold of holds) await hold.release();
  }
  return summarize(plans, options.dtype, repo.snapshotDir(id), { derivedId: id });
}

/** `pull --dtype`: the pulled snapshot converted into a derived one beside it. */
export async function convertAfterPull(path: string, repo: RepoPaths, commit: string, options: { dtype?: string; keep?: string[]; signal?: AbortSignal }): Promise<ConvertResult> {
  return convertSnapshot({ from: path, dtype: parseTargetDtype(options.dtype ?? ''), cache: { repo, commit }, ...(options.keep && { keep: options.keep }), ...(options.signal && { signal: options.signal }) });
}
