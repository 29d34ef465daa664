import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Runs a command with a size-limited tmpfs mounted over `mountPoint`, inside a private mount
 * namespace (`unshare -rm`): a real full disk (ENOSPC from the kernel), no root on the host needed
 * where user namespaces are allowed, nothing left mounted afterwards. The files left on the small
 * disk are listed (from inside the namespace) after the command exits.
 */

let probed: boolean | undefined;

/** Whether this machine lets us mount a tmpfs in a private namespace. Under MODELFETCH_REQUIRE_TOOLS=1 a no is an error. */
export function canMountSmallDisk(): boolean {
  if (probed === undefined) {
    try {
      execFileSync('unshare', ['-rm', 'sh', '-c', 'd=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs "$d" && umount "$d" && rmdir "$d"'], { stdio: 'ignore', timeout: 10_000 });
      probed = true;
    } catch {
      probed = false;
    }
  }
  if (!probed && process.env.MODELFETCH_REQUIRE_TOOLS === '1') throw new Error('unshare -rm with a tmpfs mount is required (MODELFETCH_REQUIRE_TOOLS=1) but not permitted here');
  return probed;
}

export interface SmallDiskRun {
  code: number;
  stdout: string;
  stderr: string;
  /** `relative/path size` of every file left on the small disk, sorted. */
  leftover: string[];
}

export async function runOnSmallDisk(options: { sizeBytes: number; mountPoint: string; argv: string[]; env?: NodeJS.ProcessEnv; cwd?: string; /** Mount it read-only (EROFS from the kernel, which stops root too). */ readOnly?: boolean }): Promise<SmallDiskRun> {
  const reportDir = await mkdtemp(join(tmpdir(), 'mf-smalldisk-report-'));
  const report = join(reportDir, 'files.txt');
  const script = 'mp="$1"; rep="$2"; shift 2; mount -t tmpfs -o "size=$SMALL_DISK_BYTES" tmpfs "$mp" || exit 99; "$@"; rc=$?; (cd "$mp" && find . -type f -printf "%P %s\\n" | sort) > "$rep"; exit $rc';
  const child = spawn('unshare', ['-rm', 'sh', '-c', script, 'sh', options.mountPoint, report, ...options.argv], {
    cwd: options.cwd,
    env: { ...(options.env ?? process.env), SMALL_DISK_BYTES: `${options.sizeBytes}${options.readOnly ? ',ro' : ''}` },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  try {
    const code = await new Promise<number>((resolve) => child.on('exit', (c) => resolve(c ?? 1)));
    const leftover = (await readFile(report, 'utf8').catch(() => '')).split('\n').filter(Boolean);
    return { code, stdout, stderr, leftover };
  } finally {
    await rm(reportDir, { recursive: true, force: true });
  }
}
