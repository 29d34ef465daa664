import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { chmod, open, readFile } from 'node:fs/promises';
import { ModelfetchError } from '../core/errors.js';

/**
 * Detached Ed25519 signatures over a lockfile's canonical bytes (node:crypto only).
 * The signature file holds the raw 64-byte signature in base64 and a newline, so it can also be
 * checked with `openssl pkeyutl -verify -rawin`.
 */

export interface KeyPairFiles {
  privateKeyPath: string;
  publicKeyPath: string;
}

/** `{name}.key` (PKCS#8 PEM, mode 0600, never overwritten) and `{name}.pub` (SPKI PEM). */
export async function writeKeyPair(name: string): Promise<KeyPairFiles> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const privateKeyPath = `${name}.key`;
  const publicKeyPath = `${name}.pub`;
  await writeExclusive(privateKeyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 0o600);
  await writeExclusive(publicKeyPath, publicKey.export({ type: 'spki', format: 'pem' }).toString(), 0o644);
  return { privateKeyPath, publicKeyPath };
}

async function writeExclusive(path: string, content: string, mode: number): Promise<void> {
  let handle;
  try {
    // Created with its final mode: the private key is never readable by others, not even briefly.
    handle = await open(path, 'wx', mode);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new ModelfetchError('ERR_USAGE', `${path} already exists; refusing to overwrite a key`, { hint: 'Choose another name with --out, or remove the old key pair first.' });
    }
    throw error;
  }
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await chmod(path, mode); // the umask may have narrowed the public key's mode
}

async function loadKey(path: string, kind: 'private' | 'public'): Promise<KeyObject> {
  let pem: string;
  try {
    pem = await readFile(path, 'utf8');
  } catch (error) {
    throw new ModelfetchError('ERR_SIGNATURE', `Cannot read the ${kind} key ${path}: ${(error as Error).message}`, { hint: 'Pass the path of a key written by `modelfetch keygen`.', cause: error });
  }
  let key: KeyObject;
  try {
    key = kind === 'private' ? createPrivateKey(pem) : createPublicKey(pem);
  } catch (error) {
    throw new ModelfetchError('ERR_SIGNATURE', `${path} is not a PEM ${kind} key`, { hint: 'Pass a key written by `modelfetch keygen`.', cause: error });
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new ModelfetchError('ERR_SIGNATURE', `${path} is a ${key.asymmetricKeyType ?? 'unknown'} key, not Ed25519`, { hint: 'Create an Ed25519 key pair with `modelfetch keygen`.' });
  }
  return key;
}

/** The detached signature file's content for `data`. */
export async function signBytes(data: Buffer | string, privateKeyPath: string): Promise<string> {
  const key = await loadKey(privateKeyPath, 'private');
  return `${sign(null, Buffer.from(data), key).toString('base64')}\n`;
}

/** Throws ERR_SIGNATURE unless `signatureText` is a valid signature of `data` by the key at `publicKeyPath`. */
export async function verifyBytes(data: Buffer | string, signatureText: string | undefined, publicKeyPath: string, what: string): Promise<void> {
  const key = await loadKey(publicKeyPath, 'public');
  if (signatureText === undefined) {
    throw new ModelfetchError('ERR_SIGNATURE', `${what} is not signed`, { hint: 'Sign it with `modelfetch sign --key PRIVATE_KEY`, or drop --verify-key if you accept unsigned lockfiles.' });
  }
  const signature = Buffer.from(signatureText.trim(), 'base64');
  let ok = false;
  if (signature.length === 64) {
    try {
      ok = verify(null, Buffer.from(data), key, signature);
    } catch {
      ok = false;
    }
  }
  if (!ok) {
    throw new ModelfetchError('ERR_SIGNATURE', `${what} does not match its signature for key ${publicKeyPath}`, {
      hint: 'The lockfile was changed after signing, or signed with another key. Nothing was downloaded. Get the lockfile and signature from their source again, or re-sign after review.',
    });
  }
}
