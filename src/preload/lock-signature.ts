import { readFile, writeFile } from 'node:fs/promises';
import { readLockfile, type LoadedLockfile } from './lockfile.js';
import { signBytes, verifyBytes } from './signature.js';

/** The detached signature beside a lockfile: `{lockPath}.sig`. */
export function signaturePath(lockPath: string): string {
  return `${lockPath}.sig`;
}

/** Signs the lockfile's canonical bytes; returns the signature file's path. */
export async function signLockfile(lockPath: string, privateKeyPath: string): Promise<string> {
  const { canonical } = await readLockfile(lockPath);
  const path = signaturePath(lockPath);
  await writeFile(path, await signBytes(canonical, privateKeyPath));
  return path;
}

/**
 * Reads a lockfile and, when `publicKeyPath` is given, checks its signature FIRST: a lockfile that
 * was changed in any way (even into something unparsable) fails with ERR_SIGNATURE before any of
 * its content is trusted. The signature covers the canonical bytes, which is what `lock` writes; a
 * file that was only re-indented still verifies through its canonical form.
 */
export async function readVerifiedLockfile(lockPath: string, publicKeyPath?: string): Promise<LoadedLockfile> {
  if (!publicKeyPath) return readLockfile(lockPath);
  const raw = await readFile(lockPath, 'utf8').catch(() => undefined);
  if (raw === undefined) return readLockfile(lockPath); // missing: the usual "cannot read" error
  let loaded: LoadedLockfile | undefined;
  let invalid: unknown;
  try {
    loaded = await readLockfile(lockPath);
  } catch (error) {
    invalid = error;
  }
  const signature = await readFile(signaturePath(lockPath), 'utf8').catch(() => undefined);
  await verifyBytes(loaded?.canonical ?? raw, signature, publicKeyPath, lockPath);
  if (!loaded) throw invalid;
  return loaded;
}
