import { createHash } from 'node:crypto';
import { getJson as getApiJson, type Answer, type JsonApi, type JsonClientOptions } from './json-client.js';
import { assertRepoId } from '../core/repo-ref.js';
import { assertSafeRelativePath, assertSafeRevision, isSha1Hex } from '../core/validate.js';
import { ModelfetchError } from '../core/errors.js';
import { redactUrl } from '../core/redact.js';
import type { Snapshot } from '../core/types.js';

/**
 * ModelScope's HTTP API, as the `modelscope` library uses it:
 *   GET {endpoint}/api/v1/models/{org}/{name}/repo/files?Revision={rev}&Recursive=true
 *       -> { Code: 200, Data: { Files: [{ Path, Type: 'blob'|'tree', Size, Sha256, Revision }] } }
 *   GET {endpoint}/api/v1/models/{org}/{name}/repo?Revision={rev}&FilePath={path}   -> bytes (Range)
 * Every file carries its SHA-256, and `Revision` is the commit it was listed at. Everything the
 * server says is validated before it can name a file on disk.
 */

export const DEFAULT_MODELSCOPE_ENDPOINT = 'https://www.modelscope.cn';
export const DEFAULT_MODELSCOPE_REVISION = 'master';

export interface ModelScopeClientOptions extends JsonClientOptions {
  token?: string;
}

/**
 * `--endpoint`, else MODELSCOPE_DOMAIN (a host name, as the modelscope library takes it, or a URL),
 * else https://www.modelscope.cn.
 */
export function resolveModelScopeEndpoint(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const domain = env.MODELSCOPE_DOMAIN?.trim();
  const raw = flag || (domain ? (/^https?:\/\//.test(domain) ? domain : `https://${domain}`) : DEFAULT_MODELSCOPE_ENDPOINT);
  let url: URL | undefined;
  try {
    url = new URL(raw);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:') || url.username || url.password || url.search || url.hash || url.pathname !== '/') {
    throw new ModelfetchError('ERR_USAGE', `Invalid ModelScope endpoint ${JSON.stringify(redactUrl(raw))}`, {
      hint: 'Use a host such as www.modelscope.cn (MODELSCOPE_DOMAIN) or an origin such as https://www.modelscope.cn (--endpoint); pass the token with MODELSCOPE_API_TOKEN or --token.',
    });
  }
  return url.origin;
}

/** `--token`, else MODELSCOPE_API_TOKEN. */
export function readModelScopeToken(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return (flag ?? env.MODELSCOPE_API_TOKEN)?.trim() || undefined;
}

/** `ms://org/name[@rev]` (or `org/name[@rev]` with --source modelscope). */
export function parseModelScopeReference(reference: string): { repoId: string; revision?: string } {
  const bare = reference.startsWith('ms://') ? reference.slice('ms://'.length) : reference;
  const at = bare.indexOf('@');
  const repoId = assertRepoId(at === -1 ? bare : bare.slice(0, at));
  if (!repoId.includes('/')) throw new ModelfetchError('ERR_USAGE', `ModelScope repos are named org/name, not ${JSON.stringify(repoId)}`, { hint: 'For example: modelfetch pull ms://Qwen/Qwen2.5-0.5B-Instruct' });
  if (at === -1) return { repoId };
  const revision = bare.slice(at + 1);
  if (!revision) throw new ModelfetchError('ERR_USAGE', `Empty revision in ${JSON.stringify(reference)}`, { hint: 'Write ms://org/name@master, a tag, or a commit id.' });
  return { repoId, revision: assertSafeRevision(revision) };
}

/**
 * The token as ModelScope reads it (a bearer header, and the session cookie the modelscope library
 * sets). The engine sends credential headers only to the endpoint's origin.
 */
export function modelScopeAuthHeaders(token: string | undefined): Record<string, string> {
  return token ? { authorization: `Bearer ${token}`, cookie: `m_session_id=${token}` } : {};
}

/** `{endpoint}/api/v1/models/{org}/{name}/repo?Revision=…&FilePath=…` */
export function modelScopeFileUrl(endpoint: string, repoId: string, revision: string, path: string): string {
  const query = new URLSearchParams({ Revision: revision, FilePath: path });
  return `${endpoint}/api/v1/models/${assertRepoId(repoId)}/repo?${query.toString()}`;
}

/** A file entry as the ModelScope API answers it (unvalidated). */
interface ModelScopeApiFile {
  Path?: unknown;
  Name?: unknown;
  Type?: unknown;
  Size?: unknown;
  Sha256?: unknown;
  Revision?: unknown;
}

/** Lists a revision and turns it into a Snapshot whose files download from `commit`, not a moving branch. */
export async function resolveModelScopeSnapshot(repoId: string, revision: string | undefined, options: ModelScopeClientOptions): Promise<Snapshot> {
  assertRepoId(repoId);
  const wanted = revision ?? DEFAULT_MODELSCOPE_REVISION;
  const query = new URLSearchParams({ Revision: wanted, Recursive: 'true' });
  const url = `${options.endpoint}/api/v1/models/${repoId}/repo/files?${query.toString()}`;
  const { body } = await getApiJson(modelScopeApi({ repoId, revision: wanted }, options.token !== undefined), url, modelScopeAuthHeaders(options.token), options);
  const data = (body as { Data?: { Files?: unknown } } | null)?.Data;
  if (!data || !Array.isArray(data.Files)) throw badResponse(url, 'no Data.Files list');

  const listed: Array<{ path: string; size: number; sha256: string; commit?: string }> = [];
  const seen = new Set<string>();
  for (const raw of data.Files as ModelScopeApiFile[]) {
    if (!raw || typeof raw !== 'object') throw badResponse(url, 'a file entry is not an object');
    if (raw.Type === 'tree') continue;
    if (raw.Type !== 'blob' && raw.Type !== undefined) throw badResponse(url, `unknown entry type ${JSON.stringify(raw.Type)}`);
    if (typeof raw.Path !== 'string') throw badResponse(url, 'a file entry has no Path');
    const path = assertSafeRelativePath(raw.Path, 'the ModelScope file list');
    // The modelscope library skips these too: they are repository plumbing, not model files.
    if (path === '.gitignore' || path === '.gitattributes') continue;
    if (seen.has(path)) throw badResponse(url, `file ${JSON.stringify(path)} is listed twice`);
    seen.add(path);
    if (typeof raw.Size !== 'number' || !Number.isSafeInteger(raw.Size) || raw.Size < 0) throw badResponse(url, `file ${JSON.stringify(path)} has no valid Size`);
    if (typeof raw.Sha256 !== 'string' || !/^[0-9a-fA-F]{64}$/.test(raw.Sha256)) {
      throw new ModelfetchError('ERR_INVALID_DIGEST', `ModelScope listed ${JSON.stringify(path)} without a valid Sha256`, { url, hint: 'The file cannot be verified, so it is not downloaded; check the endpoint (MODELSCOPE_DOMAIN / --endpoint).' });
    }
    const commit = typeof raw.Revision === 'string' && isSha1Hex(raw.Revision.toLowerCase()) ? raw.Revision.toLowerCase() : undefined;
    listed.push({ path, size: raw.Size, sha256: raw.Sha256.toLowerCase(), ...(commit && { commit }) });
  }
  listed.sort((a, b) => a.path.localeCompare(b.path));

  const commit = commitOf(wanted, listed);
  // Each file downloads from the commit listed for it: immutable even when the branch moves on.
  const files: Snapshot['files'] = listed.map((f) => ({
    path: f.path,
    size: f.size,
    digest: { algorithm: 'sha256', hex: f.sha256 },
    urls: [modelScopeFileUrl(options.endpoint, repoId, f.commit ?? commit.download, f.path)],
    ...(f.commit && { revision: f.commit }),
  }));
  return { source: 'modelscope', repoType: 'model', repoId, revision: wanted, commit: commit.id, files };
}

/**
 * The immutable id of what was listed: the commit itself when asked for one, the commit every file
 * was listed at when they agree, else a content id (SHA-1 of the sorted paths and digests) — stable
 * for the same files, so the snapshot folder does not change between pulls of unchanged content.
 */
function commitOf(wanted: string, files: Array<{ path: string; sha256: string; commit?: string }>): { id: string; download: string } {
  if (isSha1Hex(wanted)) return { id: wanted, download: wanted };
  const commits = new Set(files.map((f) => f.commit));
  const only = commits.size === 1 ? [...commits][0] : undefined;
  if (only) return { id: only, download: only };
  const content = createHash('sha1');
  for (const f of files) content.update(`${f.path}\0${f.sha256}\n`);
  return { id: content.digest('hex'), download: wanted };
}

function badResponse(url: string, why: string): ModelfetchError {
  return new ModelfetchError('ERR_BAD_RESPONSE', `Malformed ModelScope answer from ${redactUrl(url)}: ${why}`, { url, hint: 'Check that MODELSCOPE_DOMAIN / --endpoint points at ModelScope or a faithful mirror.' });
}

/**
 * ModelScope's API as the shared JSON client speaks it: every answer is read, and a success is a 2xx
 * whose JSON envelope does not say otherwise (`Success: false`, or a `Code` other than 200).
 */
function modelScopeApi(context: { repoId: string; revision: string }, hadToken: boolean): JsonApi {
  return {
    serviceName: 'ModelScope',
    apiName: 'ModelScope',
    endpointSetting: 'MODELSCOPE_DOMAIN',
    unreachableHint: 'Check the network and MODELSCOPE_DOMAIN / --endpoint.',
    noLocation: (url, status) => badResponse(url, `redirect ${status} without Location`),
    tooLarge: (url, limit) => badResponse(url, `answer larger than ${limit} bytes`),
    answerError: (answer) => envelopeError(answer, context, hadToken),
  };
}

function envelopeError({ status, body, url, retryAfterMs }: Answer, context: { repoId: string; revision: string }, hadToken: boolean): ModelfetchError | undefined {
  const envelope = (body && typeof body === 'object' ? body : {}) as { Code?: unknown; Success?: unknown; Message?: unknown };
  const apiFailed = envelope.Success === false || (envelope.Code !== undefined && envelope.Code !== 200);
  if (status >= 200 && status < 300 && body !== undefined && !apiFailed) return undefined;
  return apiError(status, typeof envelope.Message === 'string' ? envelope.Message : undefined, url, context, hadToken, body === undefined && status < 300, retryAfterMs);
}

function apiError(status: number, message: string | undefined, url: string, context: { repoId: string; revision: string }, hadToken: boolean, notJson: boolean, retryAfterMs?: number): ModelfetchError {
  const detail = message ? ` (${message.slice(0, 200)})` : '';
  if (notJson) return badResponse(url, 'not JSON');
  if (status === 401 || status === 403) {
    return new ModelfetchError('ERR_AUTH', `ModelScope refused access to ${context.repoId} (HTTP ${status})${detail}`, {
      url,
      status,
      hint: hadToken ? 'Check that MODELSCOPE_API_TOKEN (or --token) is valid and can read this model.' : 'If the model is private, set MODELSCOPE_API_TOKEN (or --token).',
    });
  }
  if (status === 404 || (status < 300 && /not (exist|found)/i.test(message ?? ''))) {
    return new ModelfetchError('ERR_NOT_FOUND', `ModelScope model ${context.repoId} at revision ${JSON.stringify(context.revision)} not found${detail}`, {
      url,
      status,
      hint: 'Check the model id (org/name, as on its ModelScope page) and the revision after "@" (ModelScope branches are usually "master").',
    });
  }
  if (status >= 500 || status === 429) {
    return new ModelfetchError('ERR_HTTP', `ModelScope answered HTTP ${status} for ${context.repoId}${detail}`, { url, status, ...(retryAfterMs !== undefined && { retryAfterMs }), hint: 'The service is busy or down; try again later or use another mirror (MODELSCOPE_DOMAIN).' });
  }
  return new ModelfetchError('ERR_BAD_RESPONSE', `ModelScope answered HTTP ${status} for ${context.repoId}${detail}`, { url, status, hint: 'Check MODELSCOPE_DOMAIN / --endpoint and the model id.' });
}
