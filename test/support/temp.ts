import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';

/**
 * A fresh folder in the temp folder, removed when the running test finishes, passed or failed.
 * Outside a test (in a hook or at collection) nothing can be attached to, so the folder stays until
 * the run's temp folder is removed (test/support/temp-guard.ts).
 */
export async function testTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  try {
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
  } catch {
    // Not inside a test.
  }
  return dir;
}
