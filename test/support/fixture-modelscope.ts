import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { serveFile, servedBuffer, type FixtureServer } from './fixture-server.js';

/**
 * Teaches a fixture server ModelScope's API (the part a download uses): the recursive file list
 * with SHA-256 per file, the revisions map, and file bytes with Range. Private models answer 401
 * without the right token. Errors come back the way ModelScope sends them: an HTTP status and a JSON
 * envelope with Code and Message.
 */

export interface MsFixtureFile {
  path: string;
  content: Buffer;
  /** The commit listed for this file (ModelScope lists the last commit that changed it); default the repo commit. */
  revision?: string;
}

export interface MsFixtureRepo {
  repoId: string;
  /** Branch name -> commit (40-hex). Default { master: commit of `files` }. */
  branches?: Record<string, string>;
  commit: string;
  files: MsFixtureFile[];
  /** When set, every request must carry this token (bearer or m_session_id cookie). */
  token?: string;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function authorized(req: IncomingMessage, token: string | undefined): boolean {
  if (!token) return true;
  return req.headers.authorization === `Bearer ${token}` || (req.headers.cookie ?? '').split(/;\s*/).includes(`m_session_id=${token}`);
}

export function sha256Of(content: Buffer): string {
  return createHash('sha256').update(content).digest('hex');
}

/** Registers the ModelScope routes on `server`; returns a handle to add repos later. */
export function serveModelScope(server: FixtureServer, repos: MsFixtureRepo[]): { repos: Map<string, MsFixtureRepo> } {
  const byId = new Map(repos.map((r) => [r.repoId, r]));
  server.route('/api/v1/models/', async (req, res, url) => {
    const match = /^\/api\/v1\/models\/([^/]+\/[^/]+)\/(repo\/files|repo|revisions)$/.exec(url.pathname);
    const repo = match ? byId.get(match[1]!) : undefined;
    if (!match || !repo) {
      json(res, 404, { Code: 10010205001, Message: 'model not exist', Success: false, RequestId: 'fixture' });
      return;
    }
    if (!authorized(req, repo.token)) {
      json(res, 401, { Code: 10010101001, Message: 'not login', Success: false });
      return;
    }
    const branches = repo.branches ?? { master: repo.commit };
    const revision = url.searchParams.get('Revision') ?? 'master';
    const known = new Set([repo.commit, ...repo.files.flatMap((f) => (f.revision ? [f.revision] : []))]);
    const commit = branches[revision] ?? (known.has(revision) ? revision : undefined);
    if (match[2] === 'revisions') {
      json(res, 200, { Code: 200, Success: true, Data: { RevisionMap: { Branches: Object.keys(branches).map((b) => ({ Revision: b, CreatedAt: 1700000000 })), Tags: [] } } });
      return;
    }
    if (!commit) {
      json(res, 404, { Code: 10010205002, Message: `revision ${revision} not exist`, Success: false });
      return;
    }
    if (match[2] === 'repo/files') {
      const dirs = new Set(repo.files.flatMap((f) => f.path.split('/').slice(0, -1).map((_, i, parts) => parts.slice(0, i + 1).join('/'))));
      const files = [
        ...[...dirs].map((d) => ({ Name: d.split('/').at(-1), Path: d, Type: 'tree', Size: 0, Revision: commit })),
        ...repo.files.map((f) => ({ Name: f.path.split('/').at(-1), Path: f.path, Type: 'blob', Size: f.content.length, Sha256: sha256Of(f.content), Revision: f.revision ?? commit, IsLFS: f.content.length > 1024 })),
      ];
      json(res, 200, { Code: 200, Success: true, Message: 'success', Data: { Files: files } });
      return;
    }
    const file = repo.files.find((f) => f.path === url.searchParams.get('FilePath'));
    if (!file) {
      json(res, 404, { Code: 10010205003, Message: 'file not exist', Success: false });
      return;
    }
    await serveFile(req, res, servedBuffer(file.content));
  });
  return { repos: byId };
}
