import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Everything observable about a folder tree that a writer could change: each entry's path, type,
 * mode, size, mtime and content hash (or link target). Two equal states mean nothing was written,
 * renamed, deleted or touched below `dir` (reads change only atimes, which are left out).
 */
export async function treeState(dir: string): Promise<string[]> {
  const out: string[] = [];
  const visit = async (path: string, name: string): Promise<void> => {
    const info = await lstat(path);
    const common = `${name} mode=${info.mode.toString(8)} mtime=${info.mtimeMs}`;
    if (info.isSymbolicLink()) out.push(`${common} link->${await readlink(path)}`);
    else if (info.isFile()) out.push(`${common} size=${info.size} sha256=${createHash('sha256').update(await readFile(path)).digest('hex')}`);
    else if (info.isDirectory()) {
      out.push(`${common} dir`);
      for (const entry of (await readdir(path)).sort()) await visit(join(path, entry), `${name}/${entry}`);
    } else out.push(`${common} other`);
  };
  await visit(dir, '.');
  return out;
}
