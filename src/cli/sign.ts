import type { Command } from 'commander';
import type { CliIo } from './main.js';
import { examples } from './examples.js';

export function registerSignCommand(program: Command, io: CliIo): void {
  program
    .command('sign')
    .description("Write a detached Ed25519 signature ({lock}.sig) over the lockfile's canonical bytes")
    .addHelpText('after', examples(['modelfetch sign --key release.key      # writes modelfetch.lock.json.sig']))
    .option('--lock <file>', 'lockfile to sign', 'modelfetch.lock.json')
    .requiredOption('--key <private>', 'private key written by `modelfetch keygen`')
    .action(async (opts: { lock: string; key: string }) => {
      const { signLockfile } = await import('../preload/lock-signature.js');
      io.stdout.write(`signed ${opts.lock}: ${await signLockfile(opts.lock, opts.key)}\n`);
    });
}
