import type { ServerResponse } from 'node:http';
import { isModelfetchError } from '../core/errors.js';
import { redactText } from '../core/redact.js';
import { formatBytes } from '../core/format-bytes.js';

/**
 * An error answer the Hub's clients understand: the status, and `X-Error-Code` /
 * `X-Error-Message` headers (huggingface_hub maps RepoNotFound, RevisionNotFound, EntryNotFound and
 * GatedRepo to its own exception types from them).
 */
export type HubErrorCode = 'RepoNotFound' | 'RevisionNotFound' | 'EntryNotFound' | 'GatedRepo' | 'BadRequest' | 'UpstreamUnavailable' | 'Offline' | 'InsufficientStorage';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly errorCode: HubErrorCode | undefined,
    message: string,
  ) {
    super(redactText(message));
  }
}

/** Maps anything thrown while answering to the status a client should see. */
export function toHttpError(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  if (isModelfetchError(error)) {
    const hint = error.hint ? ` ${error.hint}` : '';
    switch (error.code) {
      case 'ERR_UNSAFE_PATH':
      case 'ERR_USAGE':
      case 'ERR_INVALID_DIGEST':
        return new HttpError(400, 'BadRequest', error.message);
      case 'ERR_NOT_FOUND':
        return new HttpError(404, 'EntryNotFound', error.message);
      case 'ERR_GATED':
      case 'ERR_AUTH':
        return new HttpError(error.status === 401 ? 401 : 403, 'GatedRepo', `${error.message}${hint}`);
      case 'ERR_NO_SPACE':
        // The mirror's own folders stay private: the client learns the sizes, not where they would go.
        return new HttpError(507, 'InsufficientStorage', `The mirror has no room to fetch this file (${formatBytes(Number(error.expected ?? 0))} still to download, ${formatBytes(Number(error.found ?? 0))} free); files it already has are still served. Ask its operator to free space (modelfetch gc) or fetch from the upstream hub directly.`);
      case 'ERR_OFFLINE':
        return new HttpError(504, 'Offline', `${error.message}${hint}`);
      case 'ERR_STALL':
        return new HttpError(504, 'UpstreamUnavailable', `Upstream timed out: ${error.message}`);
      case 'ERR_NETWORK':
      case 'ERR_TLS':
      case 'ERR_PROXY':
      case 'ERR_HTTP':
      case 'ERR_BAD_RESPONSE':
      case 'ERR_REDIRECT':
      case 'ERR_RANGE_IGNORED':
      case 'ERR_BAD_RANGE':
      case 'ERR_ETAG_CHANGED':
      case 'ERR_INTEGRITY':
      case 'ERR_SIZE':
        return new HttpError(502, 'UpstreamUnavailable', `Upstream failed: ${error.message}`);
      default:
        return new HttpError(500, undefined, error.message);
    }
  }
  return new HttpError(500, undefined, 'Internal error');
}

export function sendError(res: ServerResponse, error: HttpError): number {
  const body = Buffer.from(JSON.stringify({ error: error.message }));
  if (res.headersSent) {
    res.destroy();
    return 0;
  }
  res.statusCode = error.status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', String(body.length));
  if (error.errorCode) res.setHeader('X-Error-Code', error.errorCode);
  res.setHeader('X-Error-Message', error.message.replace(/[^\x20-\x7e]/g, '?').slice(0, 500));
  res.end(res.req?.method === 'HEAD' ? undefined : body);
  return res.req?.method === 'HEAD' ? 0 : body.length;
}
