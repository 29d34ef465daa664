import { execFileSync } from 'node:child_process';

/**
 * Whether a third-party program (nginx, aria2c, chromium, umoci…) is on this machine.
 * Under MODELFETCH_REQUIRE_TOOLS=1 (set by CI, which installs them) a missing one is an error, so a
 * test that needs a real peer can never pass by skipping.
 */
export function hasTool(name: string): boolean {
  let found = false;
  try {
    execFileSync('sh', ['-c', `command -v ${JSON.stringify(name)}`], { stdio: 'ignore' });
    found = true;
  } catch {
    found = false;
  }
  if (!found && process.env.MODELFETCH_REQUIRE_TOOLS === '1') {
    throw new Error(`${name} is required (MODELFETCH_REQUIRE_TOOLS=1) but not installed; run scripts/install-system-deps.sh`);
  }
  return found;
}
