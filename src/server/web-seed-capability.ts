import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { HttpError } from './http-error.js';
import type { RepoRef } from './route.js';

/**
 * The web seed of a gated or private file (`serve --swarm --swarm-private`). BitTorrent engines
 * send no credentials to a web seed, and no token may ever go into a torrent. So the mirror puts in
 * the torrent's url-list (outside the info dictionary: the infohash stays the same on every mirror)
 * a blob URL carrying a capability: an HMAC over that one file (repo, commit, path, digest) and an
 * expiry, keyed with a secret of this process. It grants the bytes of that blob and nothing else,
 * until it expires or the mirror restarts; it is issued only to a client the mirror authorized for
 * the file (the torrent request). Engines send a torrent's url-list to nobody: peers get only the
 * info dictionary (ut_metadata), trackers only the infohash. The query key is `sig`, which the
 * project's redaction (core/redact.ts) hides in every log line.
 */

export interface WebSeedBlob extends RepoRef {
  commit: string;
  /** The file's path at `commit` (the blob route itself names only the digest). */
  path: string;
  /** SHA-256 hex. */
  digest: string;
}

export interface WebSeedCapabilityOptions {
  /** How long a capability is good for. Default 1 hour (a large file over a slow link). */
  ttlMs?: number;
  now?: () => number;
  /** The HMAC key. Default: 32 random bytes, new in every process. */
  secret?: Buffer;
}

export interface WebSeedCapabilities {
  /** The query (without `?`) that lets the web seed read `blob` until the capability expires. */
  issue(blob: WebSeedBlob): string;
  /**
   * The file path the capability in `query` grants for the blob `route` names; throws 403 when it
   * is not a valid capability of that blob, 401 when it expired. `undefined`: there is none (the
   * request is authorized as any other).
   */
  check(route: Omit<WebSeedBlob, 'path'>, query: URLSearchParams): string | undefined;
}

const DEFAULT_TTL_MS = 60 * 60 * 1000;

export function createWebSeedCapabilities(options: WebSeedCapabilityOptions = {}): WebSeedCapabilities {
  const secret = options.secret ?? randomBytes(32);
  const ttlMs = options.ttlMs ?? DEFAULT_TTL_MS;
  const now = options.now ?? Date.now;
  // JSON keeps the fields apart whatever a path contains; the version names what is signed.
  const mac = (blob: WebSeedBlob, expires: string): Buffer =>
    createHmac('sha256', secret).update(JSON.stringify(['modelfetch-web-seed-v1', blob.repoType, blob.repoId, blob.commit, blob.path, blob.digest, expires])).digest();

  return {
    issue(blob) {
      const expires = String(Math.ceil((now() + ttlMs) / 1000));
      return new URLSearchParams({ path: blob.path, expires, sig: mac(blob, expires).toString('base64url') }).toString();
    },
    check(route, query) {
      const sig = query.get('sig');
      if (sig === null) return undefined;
      const path = query.get('path') ?? '';
      const expires = query.get('expires') ?? '';
      const given = Buffer.from(sig, 'base64url');
      const expected = mac({ ...route, path }, expires);
      if (!/^\d{1,15}$/.test(expires) || given.length !== expected.length || !timingSafeEqual(given, expected)) {
        throw new HttpError(403, 'GatedRepo', `This web seed URL's capability is not valid for blob ${route.digest} of ${route.repoId}; ask the mirror for the file's torrent again.`);
      }
      if (Number(expires) * 1000 <= now()) {
        throw new HttpError(401, 'GatedRepo', `This web seed URL's capability expired; ask the mirror for the file's torrent again (with a token that can read ${route.repoId}).`);
      }
      return path;
    },
  };
}
