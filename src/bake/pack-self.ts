import { execFile } from 'node:child_process';
import { access, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ModelfetchError } from '../core/errors.js';

/** The folder of the running modelfetch package: its package.json, bin/ and dist/ (a clone, or a global install). */
export const ownPackageRoot = fileURLToPath(new URL('../../', import.meta.url));

const execFileAsync = promisify(execFile);

/**
 * Writes `npm pack` of the modelfetch package at `packageRoot` to `target` (a .tgz path). The
 * package bundles its dependencies, so the image installs it without a registry. Scripts are not
 * run: the tarball holds the dist/ that is there, which is what this modelfetch runs.
 */
export async function packModelfetch(target: string, packageRoot = ownPackageRoot): Promise<void> {
  const hint = 'Run `npm run build` in that folder (or `npm ci`, which builds it), or pass --package SPEC to install a published modelfetch in the image.';
  await access(join(packageRoot, 'dist', 'cli', 'main.js')).catch((error: unknown) => {
    throw new ModelfetchError('ERR_USAGE', `Cannot pack modelfetch into the image: ${packageRoot} has no built CLI (dist/cli/main.js)`, { hint, cause: error });
  });
  // Absolute: npm runs in the package root, not in the caller's folder.
  const scratch = await mkdtemp(`${resolve(target)}.pack-`);
  try {
    await execFileAsync('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', scratch], { cwd: packageRoot, maxBuffer: 16 * 1024 * 1024 }).catch((error: unknown) => {
      const detail = (error as { stderr?: string; message?: string }).stderr?.trim() || (error as Error).message;
      throw new ModelfetchError('ERR_IO', `Cannot pack modelfetch into the image: npm pack in ${packageRoot} failed: ${detail.split('\n').slice(-3).join(' ')}`, { hint: 'Check that npm is on PATH and can write to the --out folder, or pass --package SPEC to install a published modelfetch in the image.', cause: error });
    });
    const packed = (await readdir(scratch)).filter((name) => name.endsWith('.tgz'));
    if (packed.length !== 1) throw new ModelfetchError('ERR_IO', `Cannot pack modelfetch into the image: npm pack in ${packageRoot} wrote ${packed.length} tarballs`, { hint });
    await rename(join(scratch, packed[0]!), resolve(target));
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
