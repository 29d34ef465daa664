import type { Command } from 'commander';
import type { CliIo } from './main.js';
import { examples } from './examples.js';

export function registerLockCommand(program: Command, io: CliIo): void {
  program
    .command('lock')
    .description('Resolve modelfetch.yaml to exact commits and file digests in a lockfile (deterministic canonical JSON)')
    .addHelpText('after', examples(['modelfetch lock                        # modelfetch.yaml -> modelfetch.lock.json', 'modelfetch lock --manifest models.yaml --out models.lock.json']))
    .option('--manifest <file>', 'manifest', 'modelfetch.yaml')
    .option('--out <file>', 'lockfile to write', 'modelfetch.lock.json')
    .option('--endpoint <url>', 'Hugging Face hub or mirror (default HF_ENDPOINT or huggingface.co; ModelScope: MODELSCOPE_DOMAIN); not recorded in the lockfile')
    .option('--token <token>', 'Hugging Face token (default HF_TOKEN or the token file)')
    .action(async (flags: { manifest: string; out: string; endpoint?: string; token?: string }) => {
      const [{ readManifest }, { lockManifest, writeLockfile }, { resolveFromSources }] = await Promise.all([import('../preload/manifest.js'), import('../preload/lock.js'), import('../preload/lock-sources.js')]);
      const manifest = await readManifest(flags.manifest);
      const resolve = resolveFromSources({ env: io.env, ...(flags.endpoint !== undefined && { endpoint: flags.endpoint }), ...(flags.token !== undefined && { token: flags.token }) });
      const lock = await lockManifest(manifest, resolve);
      const { changed } = await writeLockfile(flags.out, lock);
      const files = lock.models.reduce((n, m) => n + m.files.length, 0);
      io.stdout.write(`${changed ? 'wrote' : 'unchanged'} ${flags.out}: ${lock.models.length} model${lock.models.length === 1 ? '' : 's'}, ${files} file${files === 1 ? '' : 's'}\n`);
      for (const model of lock.models) io.stdout.write(`  ${model.repo}@${model.revision} -> ${model.commit}\n`);
    });
}
