import type { Command } from 'commander';
import type { CliIo } from './main.js';
import { examples } from './examples.js';

export function registerKeygenCommand(program: Command, io: CliIo): void {
  program
    .command('keygen')
    .description('Create an Ed25519 key pair for signing lockfiles: NAME.key (private, mode 0600) and NAME.pub')
    .addHelpText('after', examples(['modelfetch keygen --out release        # release.key (keep it secret) and release.pub']))
    .option('--out <name>', 'path and base name of the key files', 'modelfetch')
    .action(async (opts: { out: string }) => {
      const { writeKeyPair } = await import('../preload/signature.js');
      const keys = await writeKeyPair(opts.out);
      io.stdout.write(`private key: ${keys.privateKeyPath} (keep it secret)\npublic key:  ${keys.publicKeyPath}\n`);
    });
}
