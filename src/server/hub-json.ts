import { createHash } from 'node:crypto';
import type { RepoFile, RepoType } from '../core/types.js';

/**
 * The JSON the Hub's API answers with, built from what a cache knows (paths, sizes, digests):
 * repo info with `sha` and `siblings`, tree entries with git object ids and `lfs`, paths-info.
 * Object ids are computed the way git does, so a client comparing them with the Hub's sees the same.
 */

export interface TreeFileEntry {
  type: 'file';
  oid: string;
  size: number;
  path: string;
  lfs?: { oid: string; size: number; pointerSize: number };
}

export interface TreeDirectoryEntry {
  type: 'directory';
  oid: string;
  size: 0;
  path: string;
}

export type TreeEntry = TreeFileEntry | TreeDirectoryEntry;

function gitObjectId(kind: 'blob' | 'tree', body: Buffer): string {
  return createHash('sha1').update(`${kind} ${body.length}\0`).update(body).digest('hex');
}

/** The git LFS pointer file git stores in place of a large file. */
function lfsPointer(sha256: string, size: number): Buffer {
  return Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha256}\nsize ${size}\n`);
}

export function treeFileEntry(file: RepoFile): TreeFileEntry {
  if (file.digest.algorithm === 'git-sha1') return { type: 'file', oid: file.digest.hex, size: file.size, path: file.path };
  const pointer = lfsPointer(file.digest.hex, file.size);
  return { type: 'file', oid: gitObjectId('blob', pointer), size: file.size, path: file.path, lfs: { oid: file.digest.hex, size: file.size, pointerSize: pointer.length } };
}

interface DirNode {
  files: Map<string, TreeFileEntry>;
  dirs: Map<string, DirNode>;
  oid?: string;
}

/** Builds the directory tree of a snapshot and computes each folder's git tree id. */
function buildTree(files: RepoFile[]): DirNode {
  const root: DirNode = { files: new Map(), dirs: new Map() };
  for (const file of files) {
    const parts = file.path.split('/');
    let node = root;
    for (const part of parts.slice(0, -1)) {
      let next = node.dirs.get(part);
      if (!next) {
        next = { files: new Map(), dirs: new Map() };
        node.dirs.set(part, next);
      }
      node = next;
    }
    node.files.set(parts[parts.length - 1]!, treeFileEntry(file));
  }
  const hashNode = (node: DirNode): string => {
    // git sorts tree entries by name, with folders compared as if they ended in "/".
    const items: { sortKey: string; record: Buffer }[] = [];
    for (const [name, entry] of node.files) items.push({ sortKey: name, record: Buffer.concat([Buffer.from(`100644 ${name}\0`), Buffer.from(entry.oid, 'hex')]) });
    for (const [name, child] of node.dirs) items.push({ sortKey: `${name}/`, record: Buffer.concat([Buffer.from(`40000 ${name}\0`), Buffer.from(hashNode(child), 'hex')]) });
    items.sort((a, b) => Buffer.compare(Buffer.from(a.sortKey), Buffer.from(b.sortKey)));
    node.oid = gitObjectId('tree', Buffer.concat(items.map((i) => i.record)));
    return node.oid;
  };
  hashNode(root);
  return root;
}

/**
 * Tree entries under `path` ('' for the root), directories and files, in the Hub's order
 * (folders first, then files, each by name); recursive lists every descendant.
 * Undefined when `path` is not a folder of the snapshot.
 */
export function listTree(files: RepoFile[], path: string, recursive: boolean): TreeEntry[] | undefined {
  let node: DirNode | undefined = buildTree(files);
  for (const part of path ? path.split('/') : []) node = node?.dirs.get(part);
  if (!node) return undefined;
  const out: TreeEntry[] = [];
  const visit = (dir: DirNode, prefix: string): void => {
    for (const name of [...dir.dirs.keys()].sort()) {
      const child = dir.dirs.get(name)!;
      const childPath = prefix ? `${prefix}/${name}` : name;
      out.push({ type: 'directory', oid: child.oid!, size: 0, path: childPath });
      if (recursive) visit(child, childPath);
    }
    for (const name of [...dir.files.keys()].sort()) out.push(dir.files.get(name)!);
  };
  visit(node, path);
  return out;
}

/** paths-info: the entries for the asked paths that exist, files or folders. */
export function pathsInfo(files: RepoFile[], paths: string[]): TreeEntry[] {
  const byPath = new Map(files.map((f) => [f.path, f]));
  const out: TreeEntry[] = [];
  for (const path of paths) {
    const file = byPath.get(path);
    if (file) {
      out.push(treeFileEntry(file));
      continue;
    }
    const parent = path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : '';
    const dir = listTree(files, parent, false)?.find((e) => e.type === 'directory' && e.path === path);
    if (dir) out.push(dir);
  }
  return out;
}

export interface RepoInfoInput {
  repoType: RepoType;
  repoId: string;
  commit: string;
  files: RepoFile[];
  lastModified?: Date;
  gated?: false | 'auto' | 'manual';
  private?: boolean;
}

/** `/api/{models|datasets|spaces}/{repo}[/revision/{rev}]` */
export function repoInfo(input: RepoInfoInput): Record<string, unknown> {
  const [author] = input.repoId.includes('/') ? input.repoId.split('/') : [undefined];
  return {
    _id: input.commit,
    id: input.repoId,
    ...(author !== undefined && { author }),
    sha: input.commit,
    lastModified: (input.lastModified ?? new Date(0)).toISOString(),
    private: input.private ?? false,
    gated: input.gated ?? false,
    disabled: false,
    tags: [],
    downloads: 0,
    likes: 0,
    ...(input.repoType === 'model' && { library_name: undefined, pipeline_tag: undefined }),
    siblings: input.files.map((f) => {
      const entry = treeFileEntry(f);
      return {
        rfilename: f.path,
        size: f.size,
        blobId: entry.oid,
        ...(entry.lfs && { lfs: { sha256: entry.lfs.oid, size: entry.lfs.size, pointerSize: entry.lfs.pointerSize } }),
      };
    }),
    usedStorage: input.files.reduce((sum, f) => sum + f.size, 0),
  };
}
