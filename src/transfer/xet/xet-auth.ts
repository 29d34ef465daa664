import { ModelfetchError } from '../../core/errors.js';
import { isXetHashHex } from '../../core/hash/xet-hash.js';

/**
 * How the Hub points a client at Xet. A `/resolve/` answer for a Xet-backed file carries
 * `X-Xet-Hash: {file hash}` and `Link: <{endpoint}/api/{type}s/{repo}/xet-read-token/{commit}>; rel="xet-auth"`.
 * That token URL, called with the Hub token, answers `{accessToken, casUrl, exp}`: a short-lived
 * token for the CAS only (the Hub token never goes there), the CAS base URL, and the expiry in
 * seconds since the epoch.
 */

export interface XetFilePointer {
  fileHash: string;
  /** Absolute URL of the read-token endpoint. */
  tokenUrl: string;
}

export interface XetReadToken {
  accessToken: string;
  casUrl: string;
  /** Expiry, seconds since the epoch. */
  expiresAt: number;
}

/** The `rel="xet-auth"` target of a Link header, resolved against `base`; undefined when absent. */
export function xetAuthLink(link: string | undefined, base: string): string | undefined {
  if (!link) return undefined;
  for (const part of link.split(/,(?=\s*<)/)) {
    const match = /^\s*<([^>]*)>\s*((?:;[^;]*)*)$/.exec(part);
    if (!match) continue;
    const params = match[2] ?? '';
    if (!/;\s*rel\s*=\s*"?xet-auth"?\s*(?:;|$)/i.test(params)) continue;
    try {
      return new URL(match[1] ?? '', base).toString();
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/**
 * The Xet pointer of a resolve answer, or undefined when the file is not Xet-backed. A malformed
 * hash is an error rather than "not Xet": the server claimed Xet and got it wrong. The token URL
 * must stay on the endpoint's origin, because the Hub token is sent to it.
 */
export function parseXetPointer(headers: { get(name: string): string | null | undefined }, endpoint: string): XetFilePointer | undefined {
  const fileHash = headers.get('x-xet-hash') ?? undefined;
  const tokenUrl = xetAuthLink(headers.get('link') ?? undefined, endpoint);
  if (fileHash === undefined || tokenUrl === undefined) return undefined;
  const normalized = fileHash.trim().toLowerCase();
  if (!isXetHashHex(normalized)) throw new ModelfetchError('ERR_BAD_RESPONSE', `The Hub sent X-Xet-Hash "${fileHash.slice(0, 80)}", which is not a Xet hash.`, { url: endpoint });
  if (new URL(tokenUrl).origin !== new URL(endpoint).origin) {
    throw new ModelfetchError('ERR_BAD_RESPONSE', `The Hub's Xet token link points to another origin (${new URL(tokenUrl).origin}); the Hub token is never sent there.`, { url: endpoint });
  }
  return { fileHash: normalized, tokenUrl };
}

/** Checks a read-token answer; the access token becomes a header value, so it must be one line of visible ASCII. */
export function parseXetReadToken(json: unknown, url: string): XetReadToken {
  const fail = (what: string): never => {
    throw new ModelfetchError('ERR_BAD_RESPONSE', `The Xet read-token answer is invalid: ${what}`, { url, hint: 'Run the same command again, or use HF_HUB_DISABLE_XET=1 to download through the plain path.' });
  };
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return fail('it is not a JSON object.');
  const body = json as Record<string, unknown>;
  const { accessToken, casUrl, exp } = body;
  if (typeof accessToken !== 'string' || !/^[\x21-\x7e]{1,8192}$/.test(accessToken)) return fail('accessToken is missing or not a single printable token.');
  if (typeof casUrl !== 'string') return fail('casUrl is missing.');
  let cas: URL;
  try {
    cas = new URL(casUrl);
  } catch {
    return fail('casUrl is not an absolute URL.');
  }
  if (cas.protocol !== 'https:' && cas.protocol !== 'http:') return fail(`casUrl uses ${cas.protocol}, not http(s).`);
  if (cas.username || cas.password || cas.search || cas.hash) return fail('casUrl carries credentials, a query or a fragment.');
  if (typeof exp !== 'number' || !Number.isFinite(exp) || exp <= 0) return fail('exp is not a time in seconds.');
  return { accessToken, casUrl: casUrl.replace(/\/+$/, ''), expiresAt: exp };
}
