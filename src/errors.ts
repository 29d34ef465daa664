import { redactText, redactUrl } from './redact.js';

/** Stable error codes. Scripts and the CLI's exit codes depend on them; never rename one. */
export const ERROR_CODES = {
  ERR_INTEGRITY: 'downloaded bytes do not match the expected digest',
  ERR_SIZE: 'downloaded size does not match the expected size',
  ERR_RANGE_IGNORED: 'server ignored a Range request',
  ERR_BAD_RANGE: 'server answered a Range request with the wrong range',
  ERR_ETAG_CHANGED: 'file changed upstream during the download',
  ERR_NOT_FOUND: 'not found',
  ERR_GATED: 'access is restricted',
  ERR_AUTH: 'authentication failed',
  ERR_HTTP: 'unexpected HTTP status',
  ERR_BAD_RESPONSE: 'malformed response',
  ERR_REDIRECT: 'refused redirect',
  ERR_NETWORK: 'network failure',
  ERR_TLS: 'TLS certificate not trusted',
  ERR_PROXY: 'proxy failure',
  ERR_STALL: 'no data received for too long',
  ERR_NO_SPACE: 'no space left on device',
  ERR_UNSAFE_PATH: 'unsafe path',
  ERR_INVALID_DIGEST: 'invalid digest, commit or ETag',
  ERR_OFFLINE: 'not available offline',
  ERR_INCOMPLETE: 'files are missing',
  ERR_LOCKED: 'resource is locked',
  ERR_USAGE: 'invalid usage',
  ERR_SIGNATURE: 'signature check failed',
  ERR_ABORTED: 'aborted',
  ERR_IO: 'file system error',
  ERR_BAD_SAFETENSORS: 'malformed safetensors file',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ModelfetchErrorOptions {
  expected?: string | number;
  found?: string | number;
  url?: string;
  /** What the user can do about it. Shown by the CLI under the message. */
  hint?: string;
  status?: number;
  cause?: unknown;
}

/** The one error class the project throws. Messages and URLs are redacted on construction. */
export class ModelfetchError extends Error {
  readonly code: ErrorCode;
  readonly expected?: string | number;
  readonly found?: string | number;
  readonly url?: string;
  readonly hint?: string;
  readonly status?: number;

  constructor(code: ErrorCode, message: string, options: ModelfetchErrorOptions = {}) {
    super(redactText(message), options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ModelfetchError';
    this.code = code;
    if (options.expected !== undefined) this.expected = options.expected;
    if (options.found !== undefined) this.found = options.found;
    if (options.url !== undefined) this.url = redactUrl(options.url);
    if (options.hint !== undefined) this.hint = redactText(options.hint);
    if (options.status !== undefined) this.status = options.status;
  }

  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      message: this.message,
      ...(this.expected !== undefined && { expected: this.expected }),
      ...(this.found !== undefined && { found: this.found }),
      ...(this.url !== undefined && { url: this.url }),
      ...(this.status !== undefined && { status: this.status }),
      ...(this.hint !== undefined && { hint: this.hint }),
    };
  }
}

export function isModelfetchError(error: unknown, code?: ErrorCode): error is ModelfetchError {
  return error instanceof ModelfetchError && (code === undefined || error.code === code);
}

/** Maps a Node.js system error to a ModelfetchError; ENOSPC and friends get their own codes. */
export function fromSystemError(error: unknown, what: string): ModelfetchError {
  if (error instanceof ModelfetchError) return error;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new ModelfetchError('ERR_NO_SPACE', `No space left on device while ${what}`, {
      hint: 'Free disk space or point --cache-dir at a larger disk, then run the same command again; finished ranges are kept.',
      cause: error,
    });
  }
  const detail = error instanceof Error ? error.message : String(error);
  return new ModelfetchError('ERR_IO', `File system error while ${what}: ${detail}`, { cause: error });
}

/** Exit codes of the CLI, one per family of failure, so start scripts can branch on them. */
export function exitCodeFor(error: unknown): number {
  if (!(error instanceof ModelfetchError)) return 1;
  switch (error.code) {
    case 'ERR_USAGE':
      return 2;
    case 'ERR_INTEGRITY':
    case 'ERR_SIZE':
    case 'ERR_SIGNATURE':
      return 3;
    case 'ERR_NOT_FOUND':
      return 4;
    case 'ERR_GATED':
    case 'ERR_AUTH':
      return 5;
    case 'ERR_NETWORK':
    case 'ERR_TLS':
    case 'ERR_PROXY':
    case 'ERR_STALL':
    case 'ERR_HTTP':
    case 'ERR_BAD_RESPONSE':
    case 'ERR_RANGE_IGNORED':
    case 'ERR_BAD_RANGE':
    case 'ERR_ETAG_CHANGED':
    case 'ERR_REDIRECT':
      return 6;
    case 'ERR_NO_SPACE':
      return 7;
    case 'ERR_OFFLINE':
    case 'ERR_INCOMPLETE':
      return 8;
    case 'ERR_UNSAFE_PATH':
    case 'ERR_INVALID_DIGEST':
      return 9;
    case 'ERR_LOCKED':
      return 10;
    case 'ERR_ABORTED':
      return 130;
    case 'ERR_IO':
      return 1;
    case 'ERR_BAD_SAFETENSORS':
      return 3;
  }
}
