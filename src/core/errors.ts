import { accessSync, constants, lstatSync } from 'node:fs';
import { dirname } from 'node:path';
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
  ERR_PERMISSION: 'permission denied',
  ERR_READ_ONLY: 'read-only file system',
  ERR_PORT_IN_USE: 'address already in use',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/**
 * Which of several answers sharing a code this is (the Hub tells them apart by `X-Error-Code`), for
 * callers that answer each differently. Set where the error is made; never read from the message.
 */
export type ErrorReason = 'repo-not-found' | 'revision-not-found' | 'entry-not-found' | 'gated';

export interface ModelfetchErrorOptions {
  expected?: string | number;
  found?: string | number;
  url?: string;
  /** What the user can do about it. Shown by the CLI under the message. */
  hint?: string;
  status?: number;
  /** How long the server asked the client to wait before trying again (its Retry-After), in ms. */
  retryAfterMs?: number;
  reason?: ErrorReason;
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
  /** The server's Retry-After, in ms, when the answer behind this error carried one (the retry policy reads it). */
  readonly retryAfterMs?: number;
  readonly reason?: ErrorReason;

  constructor(code: ErrorCode, message: string, options: ModelfetchErrorOptions = {}) {
    super(redactText(message), options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ModelfetchError';
    this.code = code;
    if (options.expected !== undefined) this.expected = options.expected;
    if (options.found !== undefined) this.found = options.found;
    if (options.url !== undefined) this.url = redactUrl(options.url);
    if (options.hint !== undefined) this.hint = redactText(options.hint);
    if (options.status !== undefined) this.status = options.status;
    if (options.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs;
    if (options.reason !== undefined) this.reason = options.reason;
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

/** A Node.js system error: `code` (`ENOSPC`, …), and where it happened when the OS call had a path or port. */
type SystemError = NodeJS.ErrnoException & { address?: string; port?: number; dest?: string };

export function isSystemError(error: unknown): error is SystemError {
  return error instanceof Error && !(error instanceof ModelfetchError) && /^E[A-Z0-9]+$/.test(String((error as SystemError).code ?? ''));
}

const FILE_SYSTEM_CODES = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EACCES', 'EPERM', 'EISDIR', 'ENOTDIR', 'ENOENT', 'EEXIST', 'EMFILE', 'ENFILE', 'ENAMETOOLONG', 'ELOOP', 'EIO', 'EFBIG', 'ETXTBSY', 'EBUSY']);

/** A system error from the file system (as opposed to the network, whose errors are retried). */
export function isFileSystemError(error: unknown): error is SystemError {
  return isSystemError(error) && FILE_SYSTEM_CODES.has(error.code ?? '') && error.syscall !== 'connect' && error.syscall !== 'getaddrinfo';
}

/**
 * Node's recursive mkdir reports ENOENT when the real failure was EROFS, EACCES or ENOTDIR: on any
 * error but EEXIST it stats the path it could not make and reports that stat's ENOENT instead. The
 * deepest folder that does exist tells the truth: not a folder (ENOTDIR), or not writable (access(2)
 * gives EROFS on a read-only file system, even to root, and EACCES without permission).
 */
function realMkdirError(error: SystemError): SystemError {
  if (error.code !== 'ENOENT' || error.syscall !== 'mkdir' || !error.path) return error;
  let at = error.path;
  for (;;) {
    const parent = dirname(at);
    if (parent === at) return error;
    at = parent;
    let info;
    try {
      info = lstatSync(at);
    } catch {
      continue;
    }
    const found = (code: string): SystemError => Object.assign(new Error(`${code}: ${error.syscall} '${at}'`), { code, syscall: error.syscall, path: at });
    if (!info.isDirectory()) return found('ENOTDIR');
    try {
      accessSync(at, constants.W_OK | constants.X_OK);
    } catch (denied) {
      return found((denied as SystemError).code ?? 'EACCES');
    }
    return error;
  }
}

const SYSCALL_VERBS: Record<string, string> = {
  mkdir: 'creating the folder',
  open: 'opening',
  write: 'writing',
  read: 'reading',
  rename: 'moving',
  link: 'linking',
  symlink: 'linking',
  unlink: 'removing',
  rmdir: 'removing',
  rm: 'removing',
  scandir: 'reading the folder',
  opendir: 'reading the folder',
  stat: 'reading',
  lstat: 'reading',
  copyfile: 'copying',
  fsync: 'syncing',
  ftruncate: 'sizing',
  access: 'checking',
};

/**
 * The one mapping from an operating-system error to a ModelfetchError with a stable code, a
 * sentence naming the path (or address and port) and a hint. Every command's errors pass through it
 * (library code where it knows `what` it was doing; the CLI for anything that got past). Hints name
 * no command's flags, only what is true whichever command ran; commands add their own where they know better.
 */
export function fromSystemError(error: unknown, what?: string): ModelfetchError {
  if (error instanceof ModelfetchError) return error;
  if (!isSystemError(error)) {
    const detail = error instanceof Error ? error.message : String(error);
    return new ModelfetchError('ERR_IO', `File system error${what ? ` while ${what}` : ''}: ${detail}`, { cause: error });
  }
  const real = realMkdirError(error);
  const code = real.code ?? '';
  const path = real.path;
  const doing = what ?? `${SYSCALL_VERBS[error.syscall ?? ''] ?? error.syscall ?? 'accessing'}${error.path ? ` ${error.path}` : ''}`;
  // Where the OS said it failed (for a recursive mkdir, the folder that refused), unless the description already says it.
  const at = path && !doing.includes(path) ? `, at ${path}` : '';
  const where = real.port !== undefined ? `${real.address ?? ''}:${real.port}` : '';
  const make = (errorCode: ErrorCode, reason: string, hint: string): ModelfetchError =>
    new ModelfetchError(errorCode, `${reason} (${code}) while ${doing}${at}`, { hint, cause: error });
  switch (code) {
    case 'ENOSPC':
      return make('ERR_NO_SPACE', 'No space left on the device', 'Free space on that disk, or write to a larger one, then run the same command again.');
    case 'EDQUOT':
      return make('ERR_NO_SPACE', 'Disk quota exceeded', 'Free space within your quota, or write to another disk, then run the same command again.');
    case 'EROFS':
      return make('ERR_READ_ONLY', 'The file system is read-only', 'Choose a location on a writable disk (or remount this one read-write), then run the same command again.');
    case 'EACCES':
    case 'EPERM':
      if (real.syscall === 'listen' || real.syscall === 'bind') {
        return new ModelfetchError('ERR_PERMISSION', `Not allowed to listen on ${where} (${code})`, { hint: 'Ports below 1024 need privileges; choose a port of 1024 or above.', cause: error });
      }
      // A folder that cannot be made is refused by the folder above it.
      return make('ERR_PERMISSION', 'Permission denied', `Check the owner and permissions of ${path ? (real.syscall === 'mkdir' ? dirname(path) : path) : 'that path'} (you are not allowed to change it), or choose a location you can write to.`);
    case 'EADDRINUSE':
      return new ModelfetchError('ERR_PORT_IN_USE', `Address ${where} is already in use (${code})`, { hint: 'Another program (or another modelfetch serve) listens there: stop it, or choose another --port (0 picks a free one).', cause: error });
    case 'EADDRNOTAVAIL':
      return new ModelfetchError('ERR_USAGE', `Address ${where} is not an address of this machine (${code})`, { hint: 'Choose another --host (127.0.0.1 for this machine only, 0.0.0.0 for every interface).', cause: error });
    case 'EISDIR':
      return make('ERR_IO', 'A folder is in the way', `${path ?? 'The path'} is a folder where a file belongs; choose another path or move the folder.`);
    case 'ENOTDIR':
      return make('ERR_IO', 'A file is in the way', `A part of ${path ?? 'the path'} is a file where a folder belongs; choose another path or move the file.`);
    case 'ENOENT':
      return make('ERR_IO', 'No such file or folder', `Check that ${path ?? 'the path'} and the folders above it exist and are spelled right.`);
    case 'EEXIST':
      return make('ERR_IO', 'Something is already there', `Remove ${path ?? 'it'} or choose another path.`);
    case 'EMFILE':
    case 'ENFILE':
      return make('ERR_IO', 'Too many open files', 'Raise the open-file limit (ulimit -n) or use fewer connections, then run the same command again.');
    case 'ENAMETOOLONG':
      return make('ERR_IO', 'A file name is too long', 'Choose a shorter path.');
    case 'ELOOP':
      return make('ERR_IO', 'Too many levels of symbolic links', `Check the links along ${path ?? 'the path'}.`);
    default:
      return make('ERR_IO', `File system error (${real.message})`, 'Check the disk and the path, then run the same command again.');
  }
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
    case 'ERR_PERMISSION':
    case 'ERR_READ_ONLY':
    case 'ERR_PORT_IN_USE':
      return 1;
    case 'ERR_BAD_SAFETENSORS':
      return 3;
  }
}
