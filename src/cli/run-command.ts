import type { Command } from 'commander';
import { ModelfetchError } from '../core/errors.js';
import type { CliIo } from './main.js';
import type { SyncReport } from '../preload/sync.js';
import { addSyncOptions, syncFromFlags, type SyncFlags } from './sync.js';
import { examples } from './examples.js';

interface RunFlags extends SyncFlags {
  healthUrl?: string;
  healthInterval: number;
  healthGrace: number;
  unhealthyAfter: number;
  restarts: number;
  backoff: number;
  backoffMax: number;
  stopTimeout: number;
}

/** A whole number ≥ `min` for `flag`; commander shows the default as a number, and a bad value is a usage error. */
function count(flag: string, min = 0): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < min) throw new ModelfetchError('ERR_USAGE', `${flag} must be an integer ≥ ${min}, got ${JSON.stringify(value)}`);
    return n;
  };
}

/** `modelfetch run` (in this file because src/cli/run.ts is the CLI's entry point). */
export function registerRunCommand(program: Command, io: CliIo): void {
  addSyncOptions(program.command('run').description('Sync the lockfile\'s models, then run COMMAND offline against them, restarting it when it dies or stays unhealthy'), io)
    .addHelpText('after', examples(['modelfetch run -- python serve.py', 'modelfetch run --health-url http://127.0.0.1:8000/health --restarts 5 -- ./start.sh']))
    .argument('<command...>', 'the service to run, after --')
    .option('--health-url <url>', 'poll this URL; a non-2xx answer or no answer counts as unhealthy')
    .option('--health-interval <ms>', 'between health checks', count('--health-interval', 1), 5000)
    .option('--health-grace <ms>', 'failed checks do not count for this long after each start', count('--health-grace'), 60000)
    .option('--unhealthy-after <n>', 'consecutive failed checks that make the command unhealthy', count('--unhealthy-after', 1), 3)
    .option('--restarts <n>', 'restarts allowed before giving up', count('--restarts'), 3)
    .option('--backoff <ms>', 'first restart delay; doubles each time', count('--backoff'), 1000)
    .option('--backoff-max <ms>', 'longest restart delay', count('--backoff-max'), 30000)
    .option('--stop-timeout <ms>', 'SIGKILL follows a stop signal or an unhealthy verdict after this long', count('--stop-timeout'), 10000)
    .action(async (command: string[], flags: RunFlags) => {
      const numbers = {
        healthIntervalMs: flags.healthInterval,
        healthGraceMs: flags.healthGrace,
        unhealthyThreshold: flags.unhealthyAfter,
        restarts: flags.restarts,
        backoffMs: flags.backoff,
        backoffMaxMs: flags.backoffMax,
        stopTimeoutMs: flags.stopTimeout,
      };
      const [{ runWithModels }, nodeIo] = await Promise.all([import('../supervise/run-with-models.js'), import('../supervise/node-supervisor-io.js')]);
      const [name, ...args] = command;
      // The synced revisions stay marked in use (and recorded as used) while the command runs, so gc leaves them alone.
      const held: Array<{ release(): Promise<void> }> = [];
      const hold = async (cacheDir: string, report: SyncReport): Promise<void> => {
        const [{ RepoPaths }, { holdRevision }] = await Promise.all([import('../cache/layout.js'), import('../cache/usage.js')]);
        for (const r of report.revisions) held.push(await holdRevision(new RepoPaths(cacheDir, r.repoType, r.repoId), r.commit));
      };
      const result = await runWithModels({
        command: name!,
        args,
        env: io.env,
        ensureModels: () => syncFromFlags(flags, io, hold),
        ...numbers,
        ...(flags.healthUrl !== undefined && { healthUrl: flags.healthUrl }),
        log: (line) => void io.stderr.write(`modelfetch run: ${line}\n`),
        spawn: nodeIo.spawnChild,
        clock: nodeIo.systemClock,
        probe: nodeIo.httpProbe,
        onStopSignal: nodeIo.onProcessStopSignal,
      }).finally(() => Promise.all(held.map((h) => h.release())));
      io.exitCode = result.exitCode;
    });
}
