import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { ModelfetchError } from '../errors.js';
import { readManifest } from '../preload/manifest.js';
import { assertLockMatchesManifest, readLockfile, type Lockfile } from '../preload/lockfile.js';
import { readVerifiedLockfile } from '../preload/lock-signature.js';
import { lockedCacheTree, writeTree } from './cache-tree.js';
import { renderDockerfile } from './dockerfile.js';
import { writeOciLayout, type OciImageResult } from './oci-layout.js';

/** Where the image keeps the Hugging Face cache. */
export const IMAGE_HF_HOME = '/opt/huggingface';

export interface BakeOptions {
  lockPath: string;
  /** Default: modelfetch.yaml beside the lockfile. */
  manifestPath?: string;
  /** Build context folder to write. */
  outDir: string;
  /** The cache to read blobs from (for --oci and --tree). */
  cacheDir: string;
  /** Also write an OCI image layout of the models to `{outDir}/oci` (needs the files in cacheDir). */
  oci?: boolean;
  /** OCI ref name. Default `models`. */
  tag?: string;
  /** Public key: the lockfile must carry a valid signature by it, and the image build checks it again. */
  verifyKey?: string;
  /** npm spec of modelfetch installed in the image. Default `modelfetch@{this version}`. */
  modelfetchPackage?: string;
  nodeImage?: string;
  baseImage?: string;
  /** Ensures every locked file is in cacheDir before the OCI layer is packed (sync). */
  ensureCached?: (lock: Lockfile) => Promise<void>;
}

export interface BakeResult {
  files: string[];
  oci?: OciImageResult & { layout: string; tag: string };
}

/** Writes a Docker build context (and optionally an OCI image layout) for an image with the lockfile's models in place. */
export async function bake(options: BakeOptions): Promise<BakeResult> {
  const lockName = basename(options.lockPath);
  const manifestPath = options.manifestPath ?? join(options.lockPath, '..', 'modelfetch.yaml');
  const manifestName = basename(manifestPath);
  const loaded = await readVerifiedLockfile(options.lockPath, options.verifyKey);
  const signatureName = `${lockName}.sig`;
  assertLockMatchesManifest(await readManifest(manifestPath), loaded.lock, manifestPath, options.lockPath);

  await mkdir(options.outDir, { recursive: true });
  const files: string[] = [];
  const put = async (name: string, content: string | Buffer): Promise<void> => {
    await writeFile(join(options.outDir, name), content);
    files.push(name);
  };
  await put(lockName, loaded.canonical);
  await copyFile(manifestPath, join(options.outDir, manifestName));
  files.push(manifestName);
  let signature: { signatureName: string; publicKeyName: string } | undefined;
  if (options.verifyKey) {
    const publicKeyName = 'modelfetch-lock.pub';
    await put(signatureName, await readFile(`${options.lockPath}.sig`));
    await put(publicKeyName, await readFile(options.verifyKey));
    signature = { signatureName, publicKeyName };
  }
  await put(
    'Dockerfile',
    renderDockerfile({
      modelfetchPackage: options.modelfetchPackage ?? `modelfetch@${await ownVersion()}`,
      nodeImage: options.nodeImage ?? 'node:20-bookworm-slim',
      baseImage: options.baseImage ?? 'node:20-bookworm-slim',
      hfHome: IMAGE_HF_HOME,
      lockName,
      manifestName,
      ...(signature && { signature }),
    }),
  );
  await put('.dockerignore', '*\n' + files.map((f) => `!${f}`).join('\n') + '\n');

  const result: BakeResult = { files: files.sort() };
  if (options.oci) {
    await options.ensureCached?.(loaded.lock);
    const tag = options.tag ?? 'models';
    const layout = join(options.outDir, 'oci');
    const image = await writeOciLayout(lockedCacheTree(loaded.lock, options.cacheDir, `${IMAGE_HF_HOME.slice(1)}/hub`), layout, {
      tag,
      env: [`HF_HOME=${IMAGE_HF_HOME}`, `HF_HUB_CACHE=${IMAGE_HF_HOME}/hub`, 'HF_HUB_OFFLINE=1'],
      labels: { 'org.opencontainers.image.title': `models of ${lockName}`, 'dev.modelfetch.lock.sha256': sha256Hex(loaded.canonical) },
    });
    result.oci = { ...image, layout, tag };
  }
  return result;
}

/** Writes exactly the locked cache tree (blobs checked, snapshot symlinks, refs) under `dir`: the Docker stage's copy-out step. */
export async function exportLockedTree(lockPath: string, cacheDir: string, dir: string): Promise<void> {
  const { lock } = await readLockfile(lockPath);
  await writeTree(lockedCacheTree(lock, cacheDir), dir);
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

async function ownVersion(): Promise<string> {
  const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  if (typeof pkg.version !== 'string') throw new ModelfetchError('ERR_IO', 'Cannot read modelfetch version from package.json');
  return pkg.version;
}
