import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RepoType } from '../../src/core/types.js';
import type { FixtureCas } from './fixture-cas.js';
import { generateFile, serveFile, startFixtureServer, type FixtureServer, type RequestRecord, type RouteContext, type ServedFile } from './fixture-server.js';

/**
 * A loopback Hugging Face Hub: repos generated on disk at test time, served through the same HTTP API
 * the real Hub speaks (revision info, paginated recursive tree, paths-info, resolve with X-Repo-Commit /
 * X-Linked-* headers), LFS files redirected (302) to a second server acting as the CDN, gated repos,
 * and X-Error-Code answers for what does not exist. Faults added to `hub` or `cdn` apply as usual.
 */

export interface FixtureFileSpec {
  path: string;
  /** Random content of this size (generated on disk)… */
  size?: number;
  /** …or this content… */
  content?: Buffer | string;
  /** …or the content of this file on disk (served from there, not copied). */
  fromFile?: string;
  /** Stored with LFS (named by SHA-256, redirected to the CDN). Default: size >= 1 MiB. */
  lfs?: boolean;
  /** Also stored in the fixture CAS (`FixtureHubOptions.cas`): listed with `xetHash`, resolved with Xet headers. Implies lfs. */
  xet?: boolean;
}

export interface FixtureRepoSpec {
  repoId: string;
  repoType?: RepoType;
  /** Branch name -> files. Default: `{ main: files }`. */
  branches?: Record<string, FixtureFileSpec[]>;
  files?: FixtureFileSpec[];
  /** Only requests with `Authorization: Bearer {token}` see it (401/403 GatedRepo otherwise). */
  gatedToken?: string;
  /** With `gatedToken`: private rather than gated, so other requests get what a missing repo gets (401 anonymous, 404 with a token). */
  private?: boolean;
}

export interface FixtureHubFile {
  path: string;
  size: number;
  lfs: boolean;
  sha256: string;
  gitSha1: string;
  /** The Hub's tree `oid`: the git blob of the content, or of the LFS pointer. */
  oid: string;
  served: ServedFile;
  /** The Xet file hash, for files stored in the fixture CAS. */
  xetHash?: string;
}

export interface FixtureHubCommit {
  commit: string;
  files: Map<string, FixtureHubFile>;
}

export interface FixtureHubRepo {
  repoId: string;
  repoType: RepoType;
  gatedToken?: string;
  private?: boolean;
  /** Branch -> commit. */
  branches: Map<string, string>;
  commits: Map<string, FixtureHubCommit>;
}

export interface FixtureHubOptions {
  repos: FixtureRepoSpec[];
  /** Tree entries per page (Link: rel="next" beyond). Default 50. */
  pageSize?: number;
  /** Where LFS resolves redirect: the CDN origin (absolute URL, default) or a relative path on the hub itself. */
  lfsRedirect?: 'cdn' | 'relative';
  /** The Xet CAS that files with `xet: true` are stored in; the hub hands out its tokens. */
  cas?: FixtureCas;
  /**
   * API requests count against a fixed window of `quota` requests per `windowMs` (by `now`, injectable),
   * announced as the Hub does (`RateLimit: "api";r=…;t=…`, `RateLimit-Policy`); past it, 429 with Retry-After.
   */
  apiRateLimit?: FixtureRateLimit;
  /** The same for `/resolve/` requests, in the Hub's "resolvers" bucket (a window of its own). */
  resolveRateLimit?: FixtureRateLimit;
}

export interface FixtureRateLimit {
  quota: number;
  windowMs: number;
  now: () => number;
}

export interface FixtureHub {
  /** HF_ENDPOINT for clients. */
  readonly endpoint: string;
  readonly hub: FixtureServer;
  readonly cdn: FixtureServer;
  readonly repos: Map<string, FixtureHubRepo>;
  /** The commit a branch (default main) of a repo points to. */
  commitOf(repoId: string, branch?: string, repoType?: RepoType): string;
  /** A file as served at a branch (default main). */
  file(repoId: string, path: string, branch?: string, repoType?: RepoType): FixtureHubFile;
  /** Adds a repo (or a new commit on a branch of an existing one) while running. */
  addRepo(spec: FixtureRepoSpec): Promise<FixtureHubRepo>;
  /** Requests to the hub and the CDN, in order. */
  requests(): RequestRecord[];
  resetLogs(): void;
  close(): Promise<void>;
}

const LFS_THRESHOLD = 1024 * 1024;

function gitBlobSha1(data: Buffer): string {
  return createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');
}

function lfsPointer(sha256: string, size: number): Buffer {
  return Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha256}\nsize ${size}\n`);
}

/** Size, SHA-256 and git blob SHA-1 of a file on disk, read as a stream. */
async function hashFileOnDisk(path: string): Promise<{ size: number; sha256: string; gitSha1: string }> {
  const { size } = await stat(path);
  const sha256 = createHash('sha256');
  const sha1 = createHash('sha1').update(`blob ${size}\0`);
  for await (const piece of createReadStream(path, { highWaterMark: 4 * 1024 * 1024 })) {
    sha256.update(piece as Buffer);
    sha1.update(piece as Buffer);
  }
  return { size, sha256: sha256.digest('hex'), gitSha1: sha1.digest('hex') };
}

/** A file as the Hub's tree and paths-info endpoints describe it. */
function treeEntry(file: FixtureHubFile): Record<string, unknown> {
  return { type: 'file', oid: file.oid, size: file.size, path: file.path, ...(file.lfs && { lfs: { oid: file.sha256, size: file.size, pointerSize: lfsPointer(file.sha256, file.size).length } }), ...(file.xetHash && { xetHash: file.xetHash }) };
}

function key(repoType: RepoType, repoId: string): string {
  return `${repoType}:${repoId}`;
}

export async function startFixtureHub(options: FixtureHubOptions): Promise<FixtureHub> {
  const dataDir = await mkdtemp(join(tmpdir(), 'mf-fixture-hub-'));
  const hub = await startFixtureServer();
  // A different host name, as a real CDN has: clients (huggingface_hub included) decide by host name
  // whether a redirect leaves the hub. All of 127.0.0.0/8 is loopback on Linux.
  const cdn = await startFixtureServer({ host: '127.0.0.2' }).catch(() => startFixtureServer({ host: 'localhost' }));
  const repos = new Map<string, FixtureHubRepo>();
  const pageSize = options.pageSize ?? 50;
  let counter = 0;

  const makeFile = async (spec: FixtureFileSpec): Promise<FixtureHubFile> => {
    let data: Buffer | undefined;
    let info: { size: number; sha256: string; gitSha1: string };
    let source: ServedFile['source'];
    if (spec.content !== undefined) {
      data = Buffer.isBuffer(spec.content) ? spec.content : Buffer.from(spec.content);
      info = { size: data.length, sha256: createHash('sha256').update(data).digest('hex'), gitSha1: gitBlobSha1(data) };
      source = { data };
    } else if (spec.fromFile !== undefined) {
      info = await hashFileOnDisk(spec.fromFile);
      source = { path: spec.fromFile };
    } else {
      const path = join(dataDir, `f${counter++}`);
      info = await generateFile(path, spec.size ?? 0);
      source = { path };
    }
    const lfs = spec.xet === true || (spec.lfs ?? info.size >= LFS_THRESHOLD);
    let xetHash: string | undefined;
    if (spec.xet) {
      if (!options.cas) throw new Error(`fixture hub: ${spec.path} is xet but the hub has no cas`);
      xetHash = (await options.cas.addFile(source)).fileHash;
    }
    const oid = lfs ? gitBlobSha1(lfsPointer(info.sha256, info.size)) : info.gitSha1;
    const served: ServedFile = { source, size: info.size, etag: lfs ? info.sha256 : info.gitSha1, sha256: info.sha256 };
    if (lfs) cdn.setFile(`/lfs/${info.sha256}`, { ...served, etag: info.sha256 });
    return { path: spec.path, size: info.size, lfs, sha256: info.sha256, gitSha1: info.gitSha1, oid, served, ...(xetHash && { xetHash }) };
  };

  const addRepo = async (spec: FixtureRepoSpec): Promise<FixtureHubRepo> => {
    const repoType = spec.repoType ?? 'model';
    const existing = repos.get(key(repoType, spec.repoId));
    const repo: FixtureHubRepo = existing ?? { repoId: spec.repoId, repoType, branches: new Map(), commits: new Map(), ...(spec.gatedToken && { gatedToken: spec.gatedToken }), ...(spec.private && { private: true }) };
    const branches = spec.branches ?? { main: spec.files ?? [] };
    for (const [branch, specs] of Object.entries(branches)) {
      const files = new Map<string, FixtureHubFile>();
      for (const fileSpec of specs) files.set(fileSpec.path, await makeFile(fileSpec));
      const commit = createHash('sha1')
        .update(`${repoType}/${spec.repoId}@${branch}#${counter++}`)
        .update([...files.values()].map((f) => `${f.path}:${f.oid}`).join('\n'))
        .digest('hex');
      repo.commits.set(commit, { commit, files });
      repo.branches.set(branch, commit);
    }
    repos.set(key(repoType, spec.repoId), repo);
    return repo;
  };

  for (const spec of options.repos) await addRepo(spec);

  const sendError = (res: ServerResponse, status: number, code: string | undefined, message: string, extra: Record<string, string> = {}): void => {
    res.statusCode = status;
    if (code) res.setHeader('X-Error-Code', code);
    res.setHeader('X-Error-Message', message);
    for (const [k, v] of Object.entries(extra)) res.setHeader(k, v);
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({ error: message }));
  };

  /** Finds the repo and checks the gate; answers the error itself and returns undefined when it fails. */
  const accessRepo = (req: IncomingMessage, res: ServerResponse, repoType: RepoType, repoId: string): FixtureHubRepo | undefined => {
    const repo = repos.get(key(repoType, repoId));
    if (!repo) {
      sendError(res, 404, 'RepoNotFound', 'Repository not found');
      return undefined;
    }
    if (repo.gatedToken) {
      const auth = req.headers.authorization;
      if (auth !== `Bearer ${repo.gatedToken}`) {
        if (repo.private) sendError(res, auth ? 404 : 401, 'RepoNotFound', 'Repository not found');
        else sendError(res, auth ? 403 : 401, 'GatedRepo', `Access to model ${repoId} is restricted. You must have access to it and be authenticated to access it.`);
        return undefined;
      }
    }
    return repo;
  };

  const resolveRevision = (res: ServerResponse, repo: FixtureHubRepo, revision: string): FixtureHubCommit | undefined => {
    const commit = repo.commits.get(revision) ?? repo.commits.get(repo.branches.get(revision) ?? '');
    if (!commit) sendError(res, 404, 'RevisionNotFound', `Invalid rev id: ${revision}`);
    return commit;
  };

  /** `a/b` or `a` followed by `/{keyword}/…`: splits a URL path into repo id and the rest. */
  const splitRepo = (segments: string[], keyword: string): { repoId: string; rest: string[] } | undefined => {
    const at = segments.indexOf(keyword);
    if (at < 1 || at > 2) return undefined;
    return { repoId: segments.slice(0, at).join('/'), rest: segments.slice(at + 1) };
  };

  const applyFault = async (res: ServerResponse, context: RouteContext): Promise<boolean> => {
    const fault = context.takeFault();
    if (fault.latencyMs) await new Promise((resolve) => setTimeout(resolve, fault.latencyMs));
    if (!fault.status) return false;
    res.statusCode = fault.status;
    for (const [k, v] of Object.entries(fault.statusHeaders ?? {})) res.setHeader(k, v);
    res.end(`fault ${fault.status}`);
    return true;
  };

  const windows = new Map<string, { start: number; used: number }>();
  /** Counts a request against its bucket's fixed window; answers 429 (and returns true) past the quota. */
  const rateLimited = (res: ServerResponse, bucket: 'api' | 'resolvers', limit: FixtureRateLimit | undefined): boolean => {
    if (!limit) return false;
    const now = limit.now();
    let window = windows.get(bucket) ?? { start: -Infinity, used: 0 };
    if (now >= window.start + limit.windowMs) window = { start: now, used: 0 };
    windows.set(bucket, window);
    window.used++;
    const resetSeconds = Math.max(0, Math.ceil((window.start + limit.windowMs - now) / 1000));
    res.setHeader('RateLimit', `"${bucket}";r=${Math.max(0, limit.quota - window.used)};t=${resetSeconds}`);
    res.setHeader('RateLimit-Policy', `"fixed window";"${bucket}";q=${limit.quota};w=${Math.round(limit.windowMs / 1000)}`);
    if (window.used <= limit.quota) return false;
    res.setHeader('Retry-After', String(resetSeconds));
    sendError(res, 429, undefined, 'You have been rate-limited');
    return true;
  };

  hub.route('/api/', async (req, res, url, context) => {
    const segments = url.pathname.split('/').slice(2);
    const typeSegment = segments.shift();
    const repoType = ({ models: 'model', datasets: 'dataset', spaces: 'space' } as const)[typeSegment as 'models'];
    if (!repoType) return sendError(res, 404, undefined, 'Not found');
    const split = splitRepo(segments, 'revision') ?? splitRepo(segments, 'tree') ?? splitRepo(segments, 'paths-info') ?? splitRepo(segments, 'xet-read-token');
    if (!split) return sendError(res, 404, undefined, 'Not found');
    if (await applyFault(res, context)) return;
    if (rateLimited(res, 'api', options.apiRateLimit)) return;
    const repo = accessRepo(req, res, repoType, split.repoId);
    if (!repo) return;
    const endpoint = segments[split.repoId.split('/').length];
    const isTree = endpoint === 'tree';
    // A revision is one URL segment (slashes encoded); a tree path may follow it.
    const [revision = '', ...under] = split.rest.map(decodeURIComponent);
    const commit = resolveRevision(res, repo, revision);
    if (!commit) return;
    res.setHeader('Content-Type', 'application/json');
    if (endpoint === 'xet-read-token') {
      // As the Hub: the token in the body (read by @huggingface/hub) and in headers (read by huggingface_hub).
      if (!options.cas) return sendError(res, 404, undefined, 'Not found');
      const token = options.cas.issueToken();
      res.setHeader('X-Xet-Cas-Url', token.casUrl);
      res.setHeader('X-Xet-Access-Token', token.accessToken);
      res.setHeader('X-Xet-Token-Expiration', String(token.exp));
      res.end(JSON.stringify(token));
      return;
    }
    if (endpoint === 'paths-info') {
      // POST {paths, expand}: the entries for those paths (as @huggingface/hub asks before a download).
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const body = Buffer.concat(chunks).toString();
      let paths: string[] = [];
      try {
        paths = (JSON.parse(body) as { paths?: string[] }).paths ?? [];
      } catch {
        paths = new URLSearchParams(body).getAll('paths');
      }
      const found = paths.flatMap((path) => {
        const file = commit.files.get(path);
        return file ? [{ ...treeEntry(file), lastCommit: { id: commit.commit, title: 'fixture', date: new Date(0).toISOString() } }] : [];
      });
      res.end(JSON.stringify(found));
      return;
    }
    if (!isTree) {
      res.end(JSON.stringify({ id: repo.repoId, sha: commit.commit, private: repo.private === true, gated: repo.gatedToken && !repo.private ? 'manual' : false, siblings: [...commit.files.keys()].map((rfilename) => ({ rfilename })) }));
      return;
    }
    const prefix = under.length ? `${under.join('/')}/` : '';
    const recursive = url.searchParams.get('recursive') === 'true';
    const entries: unknown[] = [];
    const folders = new Set<string>();
    for (const file of commit.files.values()) {
      if (!file.path.startsWith(prefix)) continue;
      const rest = file.path.slice(prefix.length).split('/');
      for (let i = 1; i < rest.length && (recursive || i === 1); i++) folders.add(prefix + rest.slice(0, i).join('/'));
      if (!recursive && rest.length > 1) continue;
      entries.push(treeEntry(file));
    }
    for (const folder of folders) entries.push({ type: 'directory', oid: createHash('sha1').update(folder).digest('hex'), size: 0, path: folder });
    const cursor = Number(url.searchParams.get('cursor') ?? 0);
    const page = entries.slice(cursor, cursor + pageSize);
    if (cursor + pageSize < entries.length) {
      const next = new URL(url.pathname + url.search, hub.origin);
      next.searchParams.set('cursor', String(cursor + pageSize));
      res.setHeader('Link', `<${next.toString()}>; rel="next"`);
    }
    res.end(JSON.stringify(page));
  });

  const resolveRoute = async (req: IncomingMessage, res: ServerResponse, url: URL, context: RouteContext, repoType: RepoType): Promise<void> => {
    const segments = url.pathname.split('/').slice(repoType === 'model' ? 1 : 2);
    const split = splitRepo(segments, 'resolve');
    if (!split) return sendError(res, 404, undefined, 'Not found');
    if (rateLimited(res, 'resolvers', options.resolveRateLimit)) return;
    const repo = accessRepo(req, res, repoType, split.repoId);
    if (!repo) return;
    const [revisionSegment = '', ...pathSegments] = split.rest;
    const commit = resolveRevision(res, repo, decodeURIComponent(revisionSegment));
    if (!commit) return;
    const path = pathSegments.map(decodeURIComponent).join('/');
    const file = commit.files.get(path);
    if (!file) return sendError(res, 404, 'EntryNotFound', `${path} does not exist at ${commit.commit}`, { 'X-Repo-Commit': commit.commit });
    res.setHeader('X-Repo-Commit', commit.commit);
    if (!file.lfs) {
      await serveFile(req, res, file.served, context.takeFault(), context.onBody);
      return;
    }
    const fault = context.takeFault();
    if (fault.status) {
      await serveFile(req, res, file.served, fault, context.onBody);
      return;
    }
    // A redirect is a round trip like any answer: a paced hub holds it too.
    if (fault.latencyMs) await new Promise((resolve) => setTimeout(resolve, fault.latencyMs));
    res.setHeader('X-Linked-Etag', `"${file.sha256}"`);
    res.setHeader('X-Linked-Size', String(file.size));
    res.setHeader('ETag', `"${file.oid}"`);
    if (file.xetHash && options.cas) {
      const typePath = `${repoType}s`;
      const tokenUrl = `${hub.origin}/api/${typePath}/${repo.repoId}/xet-read-token/${commit.commit}`;
      const reconstructionUrl = `${options.cas.casUrl}/v1/reconstructions/${file.xetHash}`;
      res.setHeader('X-Xet-Hash', file.xetHash);
      res.setHeader('Link', `<${tokenUrl}>; rel="xet-auth", <${reconstructionUrl}>; rel="xet-reconstruction-info"`);
      if ((req.headers.accept ?? '').includes('application/vnd.xet-fileinfo+json')) {
        // What the Hub answers clients that ask for Xet file info instead of the bytes.
        res.statusCode = 200;
        res.setHeader('Content-Type', 'application/vnd.xet-fileinfo+json');
        res.end(JSON.stringify({ hash: file.xetHash, refreshUrl: tokenUrl, reconstructionUrl, etag: file.sha256, size: file.size }));
        return;
      }
    }
    const signed = `/lfs/${file.sha256}?X-Amz-Signature=fixture${file.sha256.slice(0, 8)}&Expires=9999999999`;
    res.statusCode = 302;
    res.setHeader('Location', options.lfsRedirect === 'relative' ? `/cdn-relative${signed}` : `${cdn.origin}${signed}`);
    res.setHeader('Content-Length', '0');
    res.end();
  };

  // A relative LFS redirect lands back on the hub, which serves the bytes itself.
  hub.route('/cdn-relative/lfs/', async (req, res, url, context) => {
    const sha256 = url.pathname.split('/').pop() ?? '';
    for (const repo of repos.values()) {
      for (const commit of repo.commits.values()) {
        for (const file of commit.files.values()) {
          if (file.lfs && file.sha256 === sha256) return serveFile(req, res, file.served, context.takeFault(), context.onBody);
        }
      }
    }
    sendError(res, 404, undefined, 'Not found');
  });
  hub.route('/datasets/', (req, res, url, context) => resolveRoute(req, res, url, context, 'dataset'));
  hub.route('/spaces/', (req, res, url, context) => resolveRoute(req, res, url, context, 'space'));
  hub.route('/', (req, res, url, context) => resolveRoute(req, res, url, context, 'model'));

  const find = (repoId: string, repoType: RepoType): FixtureHubRepo => {
    const repo = repos.get(key(repoType, repoId));
    if (!repo) throw new Error(`fixture hub has no ${repoType} ${repoId}`);
    return repo;
  };

  const commitOf = (repoId: string, branch = 'main', repoType: RepoType = 'model'): string => {
    const commit = find(repoId, repoType).branches.get(branch);
    if (!commit) throw new Error(`fixture hub: ${repoId} has no branch ${branch}`);
    return commit;
  };

  return {
    endpoint: hub.origin,
    hub,
    cdn,
    repos,
    commitOf,
    file(repoId, path, branch = 'main', repoType = 'model') {
      const file = find(repoId, repoType).commits.get(commitOf(repoId, branch, repoType))?.files.get(path);
      if (!file) throw new Error(`fixture hub: ${repoId}@${branch} has no ${path}`);
      return file;
    },
    addRepo,
    requests: () => [...hub.requests, ...cdn.requests],
    resetLogs: () => {
      hub.resetLog();
      cdn.resetLog();
    },
    close: async () => {
      await Promise.all([hub.close(), cdn.close()]);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
