import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type TransformCallback, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { pack as createPack, type Pack } from 'tar-stream';
import { ModelfetchError, fromSystemError } from '../core/errors.js';
import type { FileDigest } from '../core/types.js';
import { copyVerified, type TreeEntry } from './cache-tree.js';

/**
 * Writes an OCI image layout (image-spec v1.1: `oci-layout`, `index.json`, `blobs/sha256/…`) holding
 * one gzip'd layer with the given tree. The layer is reproducible: entries sorted, mtime 0,
 * uid/gid 0, no user names, fixed modes, gzip header without a timestamp; so the same tree gives
 * the same layer digest, manifest digest and image on every machine.
 */

export const MEDIA_TYPES = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
} as const;

export interface OciImageOptions {
  /** `org.opencontainers.image.ref.name` in index.json, e.g. `latest`. */
  tag: string;
  /** GOARCH name; the layer is data only, so this only labels it. Default amd64. */
  architecture?: string;
  /** `KEY=value` entries for the image config. */
  env?: string[];
  labels?: Record<string, string>;
}

export interface OciImageResult {
  manifestDigest: string;
  configDigest: string;
  layerDigest: string;
  /** sha256 of the uncompressed layer tar (the config's rootfs.diff_ids entry). */
  diffId: string;
  layerSize: number;
}

const EPOCH = new Date(0);

export async function writeOciLayout(entries: TreeEntry[], outDir: string, options: OciImageOptions): Promise<OciImageResult> {
  const blobs = join(outDir, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  const layer = await writeLayer(entries, blobs);
  const config = {
    architecture: options.architecture ?? 'amd64',
    os: 'linux',
    config: { Env: options.env ?? [], Labels: options.labels ?? {} },
    rootfs: { type: 'layers', diff_ids: [layer.diffId] },
    history: [{ created_by: 'modelfetch bake --oci', comment: 'model files from the lockfile' }],
  };
  const configBlob = await writeJsonBlob(blobs, config);
  const manifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.manifest,
    config: { mediaType: MEDIA_TYPES.config, digest: configBlob.digest, size: configBlob.size },
    layers: [{ mediaType: MEDIA_TYPES.layerGzip, digest: layer.digest, size: layer.size }],
    annotations: options.labels ?? {},
  };
  const manifestBlob = await writeJsonBlob(blobs, manifest);
  const index = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.index,
    manifests: [{ mediaType: MEDIA_TYPES.manifest, digest: manifestBlob.digest, size: manifestBlob.size, annotations: { 'org.opencontainers.image.ref.name': options.tag } }],
  };
  await writeFile(join(outDir, 'index.json'), JSON.stringify(index));
  await writeFile(join(outDir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  return { manifestDigest: manifestBlob.digest, configDigest: configBlob.digest, layerDigest: layer.digest, diffId: layer.diffId, layerSize: layer.size };
}

async function writeJsonBlob(blobs: string, value: unknown): Promise<{ digest: string; size: number }> {
  const bytes = Buffer.from(JSON.stringify(value));
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  await writeFile(join(blobs, digest.slice('sha256:'.length)), bytes);
  return { digest, size: bytes.length };
}

/** Hashes what flows through it. */
class HashingTap extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }
}

async function writeLayer(entries: TreeEntry[], blobs: string): Promise<{ digest: string; diffId: string; size: number }> {
  const temp = join(blobs, `.layer-${randomBytes(6).toString('hex')}.tmp`);
  const tar = createPack();
  const tarTap = new HashingTap();
  const gzTap = new HashingTap();
  try {
    const written = pipeline(tar, tarTap, createGzip({ level: 6 }), gzTap, createWriteStream(temp, { flags: 'wx' }));
    try {
      await packEntries(tar, entries);
    } catch (error) {
      tar.destroy(error as Error);
      await written.catch(() => {});
      throw error;
    }
    await written;
    const hex = gzTap.hash.digest('hex');
    await rename(temp, join(blobs, hex));
    return { digest: `sha256:${hex}`, diffId: `sha256:${tarTap.hash.digest('hex')}`, size: gzTap.bytes };
  } catch (error) {
    await rm(temp, { force: true });
    throw error instanceof ModelfetchError ? error : fromSystemError(error, 'writing the image layer');
  }
}

async function packEntries(tar: Pack, entries: TreeEntry[]): Promise<void> {
  const base = { mtime: EPOCH, uid: 0, gid: 0, uname: '', gname: '' };
  for (const entry of entries) {
    if (entry.type === 'directory') {
      await addEntry(tar, { ...base, name: `${entry.path}/`, type: 'directory', mode: 0o755 });
    } else if (entry.type === 'symlink') {
      await addEntry(tar, { ...base, name: entry.path, type: 'symlink', linkname: entry.target, mode: 0o777 });
    } else if (entry.type === 'data') {
      await addEntry(tar, { ...base, name: entry.path, type: 'file', mode: 0o644, size: entry.data.length }, entry.data);
    } else {
      await packVerifiedFile(tar, { ...base, name: entry.path, type: 'file', mode: 0o644, size: entry.size }, entry.source, entry.size, entry.digest);
    }
  }
  tar.finalize();
}

function addEntry(tar: Pack, header: Parameters<Pack['entry']>[0], data?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (error?: Error | null): void => (error ? reject(error) : resolve());
    if (data) tar.entry(header, data, done);
    else tar.entry(header, done);
  });
}

/** Streams a blob into the tar, checked on the way: a blob that changed on disk never enters an image. */
async function packVerifiedFile(tar: Pack, header: Parameters<Pack['entry']>[0], source: string, size: number, digest: FileDigest): Promise<void> {
  // tar-stream's entry is a streamx Writable; pipeline drives it like a Node one.
  await copyVerified(source, size, digest, () => tar.entry(header) as unknown as Writable);
}
