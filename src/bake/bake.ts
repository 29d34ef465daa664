import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { readManifest } from '../preload/manifest.js';
import { assertLockMatchesManifest, readLockfile, type Lockfile } from '../preload/lockfile.js';
import { readVerifiedLockfile } from '../preload/lock-signature.js';
import { lockedCacheTree, writeTree } from './cache-tree.js';
import { CONTEXT_NAMES, renderDockerfile } from './dockerfile.js';
import { writeOciLayout, type OciImageResult } from './oci-layout.js';
import { packModelfetch } from './pack-self.js';

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
  /** npm spec of a published modelfetch to install in the image. Default: this modelfetch, packed into the context. */
  modelfetchPackage?: string;
  /** Writes this modelfetch as an npm tarball to the given path. Default: `npm pack` of the running package. */
  packModelfetch?: (target: string) => Promise<void>;
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
  const manifestPath = options.manifestPath ?? join(options.lockPath, '..', 'modelfetch.yaml');
  const loaded = await readVerifiedLockfile(options.lockPath, options.verifyKey);
  assertLockMatchesManifest(await readManifest(manifestPath), loaded.lock, manifestPath, options.lockPath);

  // Rendered first: a value the Dockerfile cannot hold is refused before anything is written.
  const dockerfile = renderDockerfile({
    modelfetch: options.modelfetchPackage === undefined ? { tarball: true } : { spec: options.modelfetchPackage },
    nodeImage: options.nodeImage ?? 'node:20-bookworm-slim',
    baseImage: options.baseImage ?? 'node:20-bookworm-slim',
    hfHome: IMAGE_HF_HOME,
    signed: options.verifyKey !== undefined,
  });
  // The context's files take fixed names (the Dockerfile never carries the user's file names).
  await mkdir(options.outDir, { recursive: true });
  const files: string[] = [];
  const put = async (name: string, content: string | Buffer): Promise<void> => {
    await writeFile(join(options.outDir, name), content);
    files.push(name);
  };
  await put(CONTEXT_NAMES.lock, loaded.canonical);
  await copyFile(manifestPath, join(options.outDir, CONTEXT_NAMES.manifest));
  files.push(CONTEXT_NAMES.manifest);
  if (options.verifyKey) {
    await put(CONTEXT_NAMES.signature, await readFile(`${options.lockPath}.sig`));
    await put(CONTEXT_NAMES.publicKey, await readFile(options.verifyKey));
  }
  if (options.modelfetchPackage === undefined) {
    await (options.packModelfetch ?? packModelfetch)(join(options.outDir, CONTEXT_NAMES.tarball));
    files.push(CONTEXT_NAMES.tarball);
  }
  await put('Dockerfile', dockerfile);
  await put('.dockerignore', '*\n' + files.map((f) => `!${f}`).join('\n') + '\n');

  const result: BakeResult = { files: files.sort() };
  if (options.oci) {
    await options.ensureCached?.(loaded.lock);
    const tag = options.tag ?? 'models';
    const layout = join(options.outDir, 'oci');
    const image = await writeOciLayout(lockedCacheTree(loaded.lock, options.cacheDir, `${IMAGE_HF_HOME.slice(1)}/hub`), layout, {
      tag,
      env: [`HF_HOME=${IMAGE_HF_HOME}`, `HF_HUB_CACHE=${IMAGE_HF_HOME}/hub`, 'HF_HUB_OFFLINE=1'],
      labels: { 'org.opencontainers.image.title': `models of ${basename(options.lockPath)}`, 'dev.modelfetch.lock.sha256': sha256Hex(loaded.canonical) },
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
