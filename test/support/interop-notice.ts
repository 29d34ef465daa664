import { interopProblem } from './python.js';

/**
 * Global setup: the Python interop tests skip when `.venv-interop/` is missing. Say so once, under
 * the run's summary, with how to get it; under MODELFETCH_REQUIRE_TOOLS=1 the run fails instead.
 */
export default function setup(): (() => void) | undefined {
  const problem = interopProblem();
  if (problem === undefined) return undefined;
  const fix = 'scripts/install-system-deps.sh creates it (huggingface_hub, hf_xet, safetensors, numpy, transformers)';
  if (process.env.MODELFETCH_REQUIRE_TOOLS === '1') throw new Error(`The Python interop tests need a venv (MODELFETCH_REQUIRE_TOOLS=1), but ${problem}; ${fix}.`);
  return () => {
    console.log(`\n  Skipped: the Python interop tests (huggingface_hub, transformers reading and writing modelfetch's cache), because ${problem}; ${fix}.\n`);
  };
}
