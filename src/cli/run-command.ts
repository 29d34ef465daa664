import type { Command } from 'commander';
import type { CliIo } from './main.js';
import type { SyncReport } from '../preload/sync.js';
import { addSyncOptions, syncFromFlags, type SyncFlags } from './sync.js';

interface RunFlags extends SyncFlags {
  healthUrl?: string;
  healthInterval: string;
  healthGrace: string;
  unhealthyAfter: string;
  restarts: string;
  backoff: string;
  backoffMax: string;
  stopTimeout: string;
}

function count(value: string, flag: string, min = 0): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min) throw new Error(`${flag} must be an integer ≥ ${min}, got ${JSON.stringify(value)}`);
  return n;
}

/** `modelfetch run` (in this file because src/cli/run.ts is the CLI's entry point). */
export function registerRunCommand(program: Command, io: CliIo): void {
  addSyncOptions(program.command('run').description('Sync the lockfile\'s models, then run COMMAND offline against them, restarting it when it dies or stays unhealthy'), io)
    .argument('<command...>', 'the service to run, after --')
    .option('--health-url <url>', 'poll this URL; a non-2xx answer or no answer counts as unhealthy')
    .option('--health-interval <ms>', 'between health checks', '5000')
    .option('--health-grace <ms>', 'failed checks do not count for this long after each start', '60000')
    .option('--unhealthy-after <n>', 'consecutive failed checks that make the command unhealthy', '3')
    .option('--restarts <n>', 'restarts allowed before giving up', '3')
    .option('--backoff <ms>', 'first restart delay; doubles each time', '1000')
    .option('--backoff-max <ms>', 'longest restart delay', '30000')
    .option('--stop-timeout <ms>', 'SIGKILL follows a stop signal or an unhealthy verdict after this long', '10000')
    .action(async (command: string[], flags: RunFlags) => {
      const { ModelfetchError } = await import('../errors.js');
      const numbers = (() => {
        try {
          return {
            healthIntervalMs: count(flags.healthInterval, '--health-interval', 1),
            healthGraceMs: count(flags.healthGrace, '--health-grace'),
            unhealthyThreshold: count(flags.unhealthyAfter, '--unhealthy-after', 1),
            restarts: count(flags.restarts, '--restarts'),
            backoffMs: count(flags.backoff, '--backoff'),
            backoffMaxMs: count(flags.backoffMax, '--backoff-max'),
            stopTimeoutMs: count(flags.stopTimeout, '--stop-timeout'),
          };
        } catch (error) {
          throw new ModelfetchError('ERR_USAGE', (error as Error).message);
        }
      })();
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
