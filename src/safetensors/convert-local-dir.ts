import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { LocalDir } from '../cache/local-dir.js';
import { isPidAlive } from '../cache/lock.js';
import { writeNewFileSynced } from '../cache/snapshot.js';
import { fromSystemError, ModelfetchError } from '../core/errors.js';
import { digestOfBytes } from '../core/hash/file-digest.js';
import type { RepoFile } from '../core/types.js';
import { planFiles, summarize, type ConvertResult, type FileAction, type FilePlan } from './convert.js';
import { writeConvertedFile } from './convert-file.js';
import type { TargetDtype } from './float.js';
import { parseTargetDtype } from './plan.js';
import type { FolderFile } from './source-folder.js';

/**
 * `pull --local-dir DIR --dtype f16|bf16`: the pulled files converted in place, one file at a time.
 * Every header and index of the pulled files is read and checked before anything is written; each
 * converted file is written beside the dir's partial downloads, checked (header read back, size
 * exact), and only then renamed over the original (LocalDir.replaceWithConverted says in which order
 * and why). A file whose note says it is already this conversion of this upstream file is left alone,
 * so the same command again converts nothing.
 */

export interface ConvertLocalDirOptions {
  dtype: string;
  keep?: string[];
  signal?: AbortSignal;
  onFile?: (event: { path: string; action: FileAction; size: number }) => void;
}

export async function convertLocalDir(dir: LocalDir, commit: string, pulled: RepoFile[], options: ConvertLocalDirOptions): Promise<ConvertResult> {
  const dtype = parseTargetDtype(options.dtype);
  const keep = options.keep ?? [];
  const target = { dtype, keep };
  const files: Array<FolderFile & { upstream: RepoFile }> = [];
  for (const upstream of pulled) {
    const absolute = dir.file(upstream.path);
    const info = await stat(absolute).catch((error: unknown) => Promise.reject(fromSystemError(error, `reading ${absolute}`)));
    files.push({ path: upstream.path, absolute, size: info.size, upstream });
  }
  await removeDeadTemps(dir);
  const notes = new Map(await Promise.all(files.map(async (f) => [f.path, await dir.convertedNote(f.path, f.upstream, target)] as const)));
  const earlier = [...notes.values()].some((note) => note !== undefined);
  const plans = await planFiles(dir.root, files, dtype, keep, earlier);
  for (const plan of plans) {
    if (plan.action === 'keep' || notes.get(plan.file.path)) continue;
    // A file kept because it was edited: its note would call the result a conversion of the upstream file.
    if (!(await dir.holdsUpstream(files.find((f) => f.path === plan.file.path)!.upstream))) {
      throw new ModelfetchError('ERR_USAGE', `${plan.file.path} in ${dir.root} was changed since it was downloaded, so --dtype does not convert it; nothing was converted`, {
        hint: `Add --force-download to replace it with the upstream file first, or convert the folder as it is: modelfetch convert ${dir.root} --dtype ${dtype.toLowerCase()} --out NEW_DIR`,
      });
    }
  }
  for (const plan of plans) {
    const file = files.find((f) => f.path === plan.file.path)!;
    const note = notes.get(plan.file.path);
    if (note) {
      await dir.markConverted(plan.file.path, note.sha256); // a run stopped after the rename left it unmarked
      continue;
    }
    if (plan.action === 'keep') continue;
    options.signal?.throwIfAborted();
    options.onFile?.({ path: plan.file.path, action: plan.action, size: plan.file.size });
    const written = await writeInPlace(dir, plan, dtype, options.signal);
    await dir.replaceWithConverted(plan.file.path, written.temp, { upstream: { commit, etag: file.upstream.digest.hex, size: file.upstream.size }, dtype, keep, sha256: written.sha256, size: written.size });
  }
  // The plans' own count: a file an earlier run converted plans as `keep` (nothing left to convert), and
  // each written file has exactly its planned size. Only "before" differs: that is the upstream file.
  const summary = summarize(plans, dtype, dir.root, {});
  const weights = plans.filter((p) => p.conversion);
  return {
    ...summary,
    reused: summary.filesConverted === 0 && earlier,
    bytesBefore: weights.reduce((n, p) => n + files.find((f) => f.path === p.file.path)!.upstream.size, 0),
  };
}

const TEMP_NAME = /^convert-(\d+)-[0-9a-f]+\.tmp$/;

/** Temp files of conversions whose process is gone (killed): a running one's are left alone. */
async function removeDeadTemps(dir: LocalDir): Promise<void> {
  const folder = dir.partialDir;
  for (const name of await readdir(folder).catch(() => [] as string[])) {
    const pid = Number(TEMP_NAME.exec(name)?.[1] ?? NaN);
    if (!Number.isSafeInteger(pid) || pid === process.pid || isPidAlive(pid)) continue;
    await rm(join(folder, name), { force: true });
  }
}

/** The converted or rewritten file, written to a temp file of the dir and checked; the caller renames it into place. */
async function writeInPlace(dir: LocalDir, plan: FilePlan, dtype: TargetDtype, signal: AbortSignal | undefined): Promise<{ temp: string; sha256: string; size: number }> {
  const temp = dir.tempPath(`convert-${process.pid}-${randomBytes(6).toString('hex')}.tmp`);
  await mkdir(dirname(temp), { recursive: true });
  try {
    if (plan.action === 'convert') {
      // Checked as written: the header read back matches the plan, the size is exact.
      const written = await writeConvertedFile(plan.file.absolute, plan.header!, plan.conversion!, dtype, temp, signal);
      return { temp, sha256: written.sha256, size: written.size };
    }
    const content = Buffer.from(plan.content!, 'utf8');
    await writeNewFileSynced(temp, content);
    const back = await readFile(temp);
    if (!back.equals(content)) throw new ModelfetchError('ERR_INTEGRITY', `${plan.file.path} did not read back as written`, { hint: 'Nothing was replaced; run the command again.' });
    return { temp, sha256: digestOfBytes('sha256', content), size: content.length };
  } catch (error) {
    await rm(temp, { force: true });
    throw error instanceof ModelfetchError ? error : fromSystemError(error, `converting ${plan.file.path}`);
  }
}
