import { ModelfetchError } from '../../core/errors.js';
import { discardBody, requestFollowingRedirects, statusError, type Transport } from '../http.js';
import type { Clock } from '../types.js';
import { readJsonBody } from './json-body.js';
import { parseXetReadToken, type XetReadToken } from './xet-auth.js';

/**
 * Gives the CAS access token. `refresh` asks for a new one even if the cached one looks valid (the
 * CAS said 401). Implementations refresh on their own shortly before expiry.
 */
export type XetTokenProvider = (refresh: boolean) => Promise<XetReadToken>;

/** Tokens within this long of expiry are replaced before use, as huggingface_hub does. */
export const TOKEN_SAFETY_MS = 60_000;

export interface HubTokenProviderOptions {
  /** The `rel="xet-auth"` URL of the file's resolve answer. */
  tokenUrl: string;
  /** Hub request headers (Authorization with the Hub token, User-Agent); they go to the token URL's origin only. */
  headers?: Record<string, string>;
  transport: Transport;
  clock: Clock;
  signal?: AbortSignal;
}

/**
 * Reads tokens from the Hub's xet-read-token endpoint, one request at a time however many callers
 * ask. The Hub token is sent there and nowhere else; the CAS only ever sees the access token.
 */
export function hubXetTokenProvider(options: HubTokenProviderOptions): XetTokenProvider {
  let cached: XetReadToken | undefined;
  let inFlight: Promise<XetReadToken> | undefined;
  const fetchToken = async (): Promise<XetReadToken> => {
    const response = await requestFollowingRedirects(options.transport, {
      url: options.tokenUrl,
      headers: { ...options.headers, accept: 'application/json' },
      credentialOrigin: new URL(options.tokenUrl).origin,
      ...(options.signal && { signal: options.signal }),
    });
    if (response.status !== 200) {
      discardBody(response);
      throw statusError(response.status, response.url, response.headers, options.clock.now());
    }
    return parseXetReadToken(await readJsonBody(response, 1024 * 1024), options.tokenUrl);
  };
  return async (refresh) => {
    const fresh = cached && cached.expiresAt * 1000 - options.clock.now() > TOKEN_SAFETY_MS;
    if (fresh && !refresh && cached) return cached;
    inFlight ??= fetchToken()
      .then((token) => {
        if (token.expiresAt * 1000 <= options.clock.now()) {
          throw new ModelfetchError('ERR_BAD_RESPONSE', 'The Hub handed out a Xet access token that has already expired.', { url: options.tokenUrl, hint: 'Check the system clock, then run the same command again.' });
        }
        cached = token;
        return token;
      })
      .finally(() => (inFlight = undefined));
    return inFlight;
  };
}
