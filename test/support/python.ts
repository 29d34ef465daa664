import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runProcess } from './process.js';

/**
 * The Python interpreter of the interop venv (`.venv-interop/`, made by scripts/install-system-deps.sh
 * from the offline wheel index) when it has huggingface_hub. Without it the interop tests skip, except
 * under MODELFETCH_REQUIRE_TOOLS=1 (CI), where a missing venv is an error.
 */
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export const interopVenv = process.env.MODELFETCH_INTEROP_VENV ?? join(repoRoot, '.venv-interop');

/** Why the interop venv cannot be used (a sentence fragment), or undefined when it can. */
export function interopProblem(): string | undefined {
  const python = join(interopVenv, 'bin', 'python');
  if (!existsSync(python)) return `${interopVenv} does not exist`;
  try {
    execFileSync(python, ['-c', 'import huggingface_hub'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return `${interopVenv} cannot import huggingface_hub`;
  }
}

let cached: string | null | undefined;

export function interopPython(): string | undefined {
  let problem: string | undefined;
  if (cached === undefined) {
    problem = interopProblem();
    cached = problem === undefined ? join(interopVenv, 'bin', 'python') : null;
  }
  if (cached === null && process.env.MODELFETCH_REQUIRE_TOOLS === '1') {
    throw new Error(`Python huggingface_hub is required (MODELFETCH_REQUIRE_TOOLS=1) but ${problem ?? `${interopVenv} is missing or broken`}; run scripts/install-system-deps.sh`);
  }
  return cached ?? undefined;
}

/** Whether the venv also has transformers (it installs without torch from the offline index). */
export function hasTransformers(python: string): boolean {
  try {
    execFileSync(python, ['-c', 'import transformers'], { stdio: 'ignore' });
    return true;
  } catch {
    if (process.env.MODELFETCH_REQUIRE_TOOLS === '1') throw new Error(`transformers is required (MODELFETCH_REQUIRE_TOOLS=1) but ${python} cannot import it; run scripts/install-system-deps.sh`);
    return false;
  }
}

/** Runs a Python snippet with only `env` (plus quiet, Xet-free defaults); rejects with its stderr when it fails. */
export async function runPython(python: string, code: string, env: NodeJS.ProcessEnv): Promise<string> {
  const run = await runProcess(python, ['-c', code], { PATH: process.env.PATH, HOME: process.env.HOME, HF_HUB_DISABLE_TELEMETRY: '1', HF_HUB_DISABLE_XET: '1', HF_HUB_DISABLE_PROGRESS_BARS: '1', TRANSFORMERS_NO_ADVISORY_WARNINGS: '1', ...env });
  if (run.code !== 0) throw new Error(`python exited ${run.code}: ${run.stderr.slice(-2000)}`);
  return run.stdout;
}
