import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Global setup: the whole run works in one fresh `mf-tests-*` folder inside the temp folder
 * (TMPDIR, which `os.tmpdir()` and child processes read, is pointed at it before any test file
 * starts), and that folder is removed afterwards, so `npm test` leaves the temp folder as it found
 * it even when a test fails before its own clean-up. What tests left in it is listed; anything
 * new named `mf-*` directly in the temp folder escaped and fails the run.
 */
function ours(dir: string): string[] {
  return readdirSync(dir).filter((name) => name.startsWith('mf-'));
}

/** Makes every folder under `dir` writable again (a test may leave one read-only on purpose). */
function unlock(dir: string): void {
  try {
    chmodSync(dir, 0o700);
    for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) unlock(join(dir, entry.name));
  } catch {
    // Best effort: the rm that follows reports what is still in the way.
  }
}

function remove(dir: string): void {
  try {
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  } catch {
    unlock(dir);
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  }
}

export default function setup(): () => void {
  const outer = tmpdir();
  const before = new Set(ours(outer));
  const runRoot = mkdtempSync(join(outer, 'mf-tests-'));
  // Like /tmp itself, other users may pass through it: a test runs a child as `nobody` (EACCES cases).
  chmodSync(runRoot, 0o755);
  process.env.TMPDIR = runRoot;
  return () => {
    process.env.TMPDIR = outer;
    const leftovers = ours(runRoot);
    if (leftovers.length > 0 && process.env.MODELFETCH_LIST_TEMP === '1') console.log(`\n  Left in the run's temp folder (removed now): ${leftovers.join(', ')}\n`);
    remove(runRoot);
    const escaped = ours(outer).filter((name) => !before.has(name));
    if (escaped.length > 0) {
      throw new Error(`The tests left ${escaped.length} mf-* entries in ${outer} (${escaped.slice(0, 8).join(', ')}${escaped.length > 8 ? ', …' : ''}); every test must remove what it creates.`);
    }
  };
}
