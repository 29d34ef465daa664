import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runProcess, type ProcessRun } from './process.js';

/** Runs the source CLI in a child process with only PATH and HOME inherited, plus `env`. */
const runTs = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'run.ts');

export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<ProcessRun> {
  return runProcess(process.execPath, ['--import', 'tsx', runTs, ...args], { PATH: process.env.PATH, HOME: process.env.HOME, ...env });
}
