import { describe, expect, it } from 'vitest';
import { exitCodeFor, fromSystemError, isFileSystemError, ModelfetchError } from './errors.js';

function systemError(code: string, syscall: string, extra: Record<string, unknown> = {}): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${syscall}`), { code, syscall, ...extra });
}

describe('fromSystemError: one mapping from OS errors to coded sentences with hints', () => {
  const cases: Array<[string, string, string, string]> = [
    // errno, code, message fragment, hint fragment
    ['ENOSPC', 'ERR_NO_SPACE', 'No space left on the device (ENOSPC) while writing /d/f', 'Free space on that disk, or write to a larger one'],
    ['EDQUOT', 'ERR_NO_SPACE', 'Disk quota exceeded (EDQUOT) while writing /d/f', 'Free space within your quota'],
    ['EROFS', 'ERR_READ_ONLY', 'The file system is read-only (EROFS) while writing /d/f', 'Choose a location on a writable disk'],
    ['EACCES', 'ERR_PERMISSION', 'Permission denied (EACCES) while writing /d/f', 'Check the owner and permissions of /d/f'],
    ['EPERM', 'ERR_PERMISSION', 'Permission denied (EPERM) while writing /d/f', 'Check the owner and permissions of /d/f'],
    ['EISDIR', 'ERR_IO', 'A folder is in the way (EISDIR) while writing /d/f', '/d/f is a folder where a file belongs'],
    ['ENOTDIR', 'ERR_IO', 'A file is in the way (ENOTDIR) while writing /d/f', 'A part of /d/f is a file where a folder belongs'],
    ['EMFILE', 'ERR_IO', 'Too many open files (EMFILE) while writing /d/f', 'ulimit -n'],
    ['ENOENT', 'ERR_IO', 'No such file or folder (ENOENT) while writing /d/f', 'Check that /d/f and the folders above it exist'],
  ];
  for (const [errno, code, message, hint] of cases) {
    it(`${errno} → ${code}`, () => {
      const mapped = fromSystemError(systemError(errno, 'open', { path: '/d/f' }), 'writing /d/f');
      expect(mapped.code).toBe(code);
      expect(mapped.message).toContain(message);
      expect(mapped.hint).toContain(hint);
      expect(mapped.hint).not.toContain('--cache-dir');
    });
  }

  it('names the path from the error when the caller did not say what it was doing', () => {
    const mapped = fromSystemError(systemError('EACCES', 'mkdir', { path: '/srv/hub' }));
    expect(mapped.message).toBe('Permission denied (EACCES) while creating the folder /srv/hub');
    expect(mapped.hint).toContain('Check the owner and permissions of /srv (');
  });

  it('EADDRINUSE names the address and port, and serve\'s --port', () => {
    const mapped = fromSystemError(systemError('EADDRINUSE', 'listen', { address: '127.0.0.1', port: 8080 }));
    expect(mapped.code).toBe('ERR_PORT_IN_USE');
    expect(mapped.message).toBe('Address 127.0.0.1:8080 is already in use (EADDRINUSE)');
    expect(mapped.hint).toContain('--port');
    expect(exitCodeFor(mapped)).toBe(1);
  });

  it('EACCES on listen is a privileged port, not a file permission', () => {
    const mapped = fromSystemError(systemError('EACCES', 'listen', { address: '0.0.0.0', port: 80 }));
    expect(mapped.code).toBe('ERR_PERMISSION');
    expect(mapped.hint).toContain('Ports below 1024');
  });

  it('a ModelfetchError passes through unchanged', () => {
    const error = new ModelfetchError('ERR_USAGE', 'x');
    expect(fromSystemError(error)).toBe(error);
  });

  it('tells file-system errors from network ones', () => {
    expect(isFileSystemError(systemError('EROFS', 'open'))).toBe(true);
    expect(isFileSystemError(systemError('ECONNREFUSED', 'connect'))).toBe(false);
    expect(isFileSystemError(new Error('plain'))).toBe(false);
  });
});
