import { fromSystemError, isFileSystemError, isModelfetchError, ModelfetchError } from '../core/errors.js';
import type { HttpResponse } from './http.js';
import type { ProbeResult } from './probe.js';
import type { FetchTarget } from './range-fetch.js';
import type { TransferJob } from './types.js';

/** One mirror of the file, after its redirects were followed. */
export interface Mirror {
  index: number;
  /** The URL as given (re-followed when a signed CDN URL expires). */
  url: string;
  target: FetchTarget;
  /** Budget key: host:port that segment connections go to. */
  host: string;
  alive: boolean;
  /** Had a good response: a later 403 means an expired signed URL, not a lack of access. */
  worked: boolean;
  /** Some answer came from it (a probe, any HTTP status): refused connections are then a restart, worth the full retry budget. */
  answered: boolean;
  reresolved: boolean;
  reresolving?: Promise<void>;
  stream?: HttpResponse;
}

export function hostOf(url: string): string {
  return new URL(url).host;
}

export function asModelfetchError(error: unknown): ModelfetchError {
  if (isModelfetchError(error)) return error;
  if (error instanceof Error && error.name === 'AbortError') return new ModelfetchError('ERR_ABORTED', 'Download aborted', { cause: error });
  if (isFileSystemError(error)) return fromSystemError(error);
  return new ModelfetchError('ERR_NETWORK', error instanceof Error ? error.message : String(error), { cause: error });
}

/** The final word on a host nobody answers at: which host, why, and what to check. */
export function unreachableError(asked: string, reason: string, attempts: number, cause: ModelfetchError): ModelfetchError {
  // The URL that refused (a redirect's target, when the error knows it), not only the one asked for.
  const url = cause.url ?? asked;
  const { host } = new URL(url);
  const hint =
    reason === 'connection refused'
      ? `Nothing accepts connections at ${host}: check that the server is running and listening on that port, and that the URL's host and port are right.`
      : reason.startsWith('host name')
        ? `Check the host name in the URL, and that this machine's DNS (and proxy, if any) can resolve it.`
        : `Check the network route to ${host} (a firewall, a VPN, a proxy) and that the URL is right.`;
  return new ModelfetchError('ERR_NETWORK', `Could not connect to ${host}: ${reason} (${attempts} attempt${attempts === 1 ? '' : 's'})`, { url, hint, cause });
}

export function mirrorFrom(job: TransferJob, index: number, url: string, result: ProbeResult): Mirror {
  return {
    index,
    url,
    target: { url: result.url, credentialOrigin: new URL(url).origin, credentialed: result.credentialed, headers: job.headers, etag: result.etag },
    host: hostOf(result.url),
    alive: true,
    worked: false,
    answered: true,
    reresolved: false,
    ...(result.stream && { stream: result.stream }),
  };
}

/** Mirrors taken as they are, for a small file of known size whose one range request learns what a probe would. */
export function unprobedMirrors(job: TransferJob, indices: number[]): { mirrors: Mirror[]; results: ProbeResult[] } {
  const results = indices.map((i): ProbeResult => ({ size: job.size, etag: undefined, rangeSupported: true, url: job.urls[i] ?? '', credentialed: true }));
  return { mirrors: results.map((r, k) => ({ ...mirrorFrom(job, indices[k] ?? 0, r.url, r), answered: false })), results };
}
