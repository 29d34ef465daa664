import { homedir } from 'node:os';
import { join } from 'node:path';
import { assertRepoId } from './layout.js';
import { assertSafeRelativePath } from './validate.js';
import { writeFileAtomic } from './snapshot.js';

/**
 * The cache layout the `modelscope` library reads, and the one place that knows it:
 *
 *   {MODELSCOPE_CACHE}/models/{org}/{name with "." as "___"}/{path}   the files themselves
 *   …/{name}/.mdl   pickle {'id': 'org/name'}                         which model the folder holds
 *   …/{name}/.msc   pickle [{'Path': path, 'Revision': commit}, …]    which files are complete, at which commit
 *   …/{name}/.mv    text "Revision:{rev},CreatedAt:{unix time}"        the revision last downloaded
 *
 * modelscope treats a file as cached when `.msc` lists its path at the commit it asks for and the
 * file is there (newer versions also compare its SHA-256), so `.msc` is written last.
 * modelfetch's partial downloads live in {MODELSCOPE_CACHE}/.modelfetch/, outside `models/`, on the
 * same file system, so a finished file is renamed into place.
 */

/** MODELSCOPE_CACHE, else ~/.cache/modelscope/hub. */
export function resolveModelScopeCache(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  return env.MODELSCOPE_CACHE || join(home, '.cache', 'modelscope', 'hub');
}

export class ModelScopePaths {
  readonly dir: string;

  constructor(
    readonly root: string,
    readonly repoId: string,
  ) {
    const [org, name] = assertRepoId(repoId).split('/');
    // modelscope stores `Qwen2.5` as `Qwen2___5` (a dot in a folder name breaks Python imports).
    this.dir = join(root, 'models', org!, name!.replaceAll('.', '___'));
  }

  /** The id `.mdl` records: org and the folder name, as modelscope writes it. */
  get metaId(): string {
    return `${this.repoId.split('/')[0]}/${this.dir.split(/[\\/]/).at(-1)}`;
  }

  file(path: string): string {
    return join(this.dir, assertSafeRelativePath(path, 'ModelScope file'));
  }

  get meta(): string {
    return join(this.dir, '.mdl');
  }

  get keys(): string {
    return join(this.dir, '.msc');
  }

  get version(): string {
    return join(this.dir, '.mv');
  }

  /** A partial download of the file with this SHA-256 (the engine's journal sits beside it). */
  partial(sha256: string): string {
    return join(this.root, '.modelfetch', 'partial', `${sha256}.part`);
  }
}

type PickleValue = string | PickleValue[] | { [key: string]: PickleValue };

/**
 * Python pickle (protocol 2) of strings, lists and dicts: all `.mdl` and `.msc` hold. Written by hand
 * because nothing else is needed; Python's `pickle.load` reads it.
 */
export function encodePickle(value: PickleValue): Buffer {
  const parts: Buffer[] = [Buffer.from([0x80, 0x02])];
  const emit = (v: PickleValue): void => {
    if (typeof v === 'string') {
      const bytes = Buffer.from(v, 'utf8');
      const length = Buffer.alloc(4);
      length.writeUInt32LE(bytes.length);
      parts.push(Buffer.from('X'), length, bytes);
    } else if (Array.isArray(v)) {
      parts.push(Buffer.from(']('));
      v.forEach(emit);
      parts.push(Buffer.from('e'));
    } else {
      parts.push(Buffer.from('}('));
      for (const [key, item] of Object.entries(v)) {
        emit(key);
        emit(item);
      }
      parts.push(Buffer.from('u'));
    }
  };
  emit(value);
  parts.push(Buffer.from('.'));
  return Buffer.concat(parts);
}

/** Marks the download complete for modelscope: `.mdl`, `.mv`, then `.msc` (last: it is what modelscope trusts). */
export async function writeModelScopeMetadata(paths: ModelScopePaths, revision: string, commit: string, filePaths: string[], now: number = Date.now()): Promise<void> {
  await writeFileAtomic(paths.meta, encodePickle({ id: paths.metaId }));
  await writeFileAtomic(paths.version, `Revision:${revision},CreatedAt:${Math.floor(now / 1000)}`);
  await writeFileAtomic(paths.keys, encodePickle(filePaths.map((path) => ({ Path: path, Revision: commit }))));
}
