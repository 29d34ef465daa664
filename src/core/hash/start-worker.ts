import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

/**
 * Starts the worker module `name` that sits beside the module at `besideUrl` (its import.meta.url).
 *
 * Built (`dist/…/x.js`), the worker is `x-worker.js` next to it and runs as it is. From source
 * (`src/…/x.ts`, under tsx or the test runner) it is `x-worker.ts`, and the thread needs a TypeScript
 * loader of its own: on Node 20 no thread inherits one (`node --import tsx` registers tsx on the main
 * thread only; the test runner transforms in-process). The thread registers tsx's require hook, which
 * works in the thread itself (an ESM loader would start one more thread and take seconds), then loads
 * the worker. tsx is a dev dependency, so it is there wherever the source runs.
 */
export function startWorker(besideUrl: string | URL, name: string): Worker {
  const beside = String(besideUrl);
  const fromSource = /\.[cm]?ts$/.test(new URL(beside).pathname);
  const url = new URL(`./${name}.${fromSource ? 'ts' : 'js'}`, beside);
  if (!fromSource) return new Worker(url);
  const tsx = createRequire(beside).resolve('tsx/cjs/api');
  // Anything the bootstrap throws reaches the parent as the worker's 'error' event.
  // The bootstrap is CommonJS: a parent started with `--input-type=module` (node -e) must not pass that on.
  const execArgv = process.execArgv.filter((arg) => !arg.startsWith('--input-type'));
  return new Worker(`require(${JSON.stringify(tsx)}).register();\nrequire(${JSON.stringify(fileURLToPath(url))});\n`, { eval: true, execArgv });
}
