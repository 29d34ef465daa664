import { stat } from 'node:fs/promises';
import type { Command } from 'commander';
import { ModelfetchError } from '../core/errors.js';
import { formatBytes } from '../core/format-bytes.js';
import type { ConvertResult } from '../safetensors/convert.js';
import { parseTargetDtype } from '../safetensors/plan.js';
import type { RepoType } from '../core/types.js';
import { hubFlagOptions } from './inspect.js';
import { abortOnInterrupt } from './interrupt.js';
import type { CliIo } from './main.js';
import { parseRepoType } from './units.js';
import { examples } from './examples.js';

/**
 * `modelfetch convert <snapshot|folder|org/name[@rev]> --dtype f16|bf16 [--out DIR] [--keep GLOB…]`.
 * A repo is pulled first (a cache hit costs nothing); without --out the result is a derived snapshot
 * in the cache, whose path is printed.
 */

interface ConvertFlags {
  dtype: string;
  out?: string;
  keep?: string[];
  repoType?: RepoType;
  cacheDir?: string;
  endpoint?: string;
  token?: string;
  offline?: boolean;
  json?: boolean;
  quiet?: boolean;
}

export function describeConversion(result: ConvertResult): string {
  if (result.reused) return result.derivedId ? `${result.dtype} snapshot already in the cache\n` : `already ${result.dtype} in ${result.path}\n`;
  if (!result.filesConverted) return `nothing to convert: every float tensor is already ${result.dtype}\n`;
  return `converted ${result.tensorsConverted} tensors in ${result.filesConverted} file(s) to ${result.dtype}: ${formatBytes(result.bytesBefore)} -> ${formatBytes(result.bytesAfter)}\n`;
}

export function registerConvertCommand(program: Command, io: CliIo): void {
  program
    .command('convert')
    .description('Convert a model\'s F32/F16/BF16 safetensors weights to f16 or bf16, into a new folder or a derived snapshot in the cache; prints its path')
    .addHelpText('after', examples(['modelfetch convert org/name --dtype f16                 # a derived snapshot in the cache', "modelfetch convert ./model --dtype bf16 --out ./model-bf16 --keep '*norm*'"]))
    .argument('<source>', 'a cache snapshot or model folder, or org/name[@rev] (pulled first)')
    .requiredOption('--dtype <dtype>', 'f16 or bf16')
    .option('--out <dir>', 'write the converted model into this new (or empty) folder instead of the cache')
    .option('--keep <glob...>', 'leave tensors whose names match as they are (e.g. "*norm*")')
    .option('--repo-type <type>', 'model, dataset or space', parseRepoType)
    .option('--cache-dir <dir>', 'hub cache root (default: HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub)')
    .option('--endpoint <url>', 'hub endpoint for pulling (default: HF_ENDPOINT or https://huggingface.co)')
    .option('--token <token>', 'access token (default: HF_TOKEN, HF_TOKEN_PATH, HF_HOME/token)')
    .option('--offline', 'make no request; the model must be in the cache (also HF_HUB_OFFLINE=1)')
    .option('--json', 'print one JSON object with the result')
    .option('--quiet', 'print only the path')
    .action(async (source: string, flags: ConvertFlags) => {
      const dtype = parseTargetDtype(flags.dtype);
      const chatty = !flags.quiet && !flags.json;
      const { cacheSnapshotOf, convertSnapshot } = await import('../safetensors/convert.js');
      const interrupt = abortOnInterrupt();
      const common = {
        dtype,
        signal: interrupt.signal,
        ...(flags.keep && { keep: flags.keep }),
        ...(chatty && { onFile: (event: { path: string; action: string }) => void (event.action !== 'keep' && io.stderr.write(`${event.action === 'convert' ? 'converting' : 'rewriting'} ${event.path}\n`)) }),
      };
      let result: ConvertResult;
      try {
        if (await stat(source).then(() => true, () => false)) {
          const snapshot = cacheSnapshotOf(source);
          if (!flags.out && !snapshot) throw new ModelfetchError('ERR_USAGE', `${source} is not a snapshot in a hub cache`, { hint: 'Give --out DIR for the converted copy of a plain folder.' });
          result = await convertSnapshot({ ...common, from: source, ...(flags.out ? { out: flags.out } : { cache: snapshot! }) });
        } else {
          const { pull } = await import('../pull/index.js');
          const [{ RepoPaths }, { resolveCacheDir }] = await Promise.all([import('../cache/layout.js'), import('../core/env.js')]);
          const pulled = await pull({
            repo: source,
            env: io.env,
            signal: interrupt.signal,
            ...hubFlagOptions(flags),
          });
          const repo = new RepoPaths(flags.cacheDir ?? resolveCacheDir(io.env), pulled.repoType, pulled.repoId);
          result = await convertSnapshot({ ...common, from: pulled.path, ...(flags.out ? { out: flags.out } : { cache: { repo, commit: pulled.commit } }) });
        }
      } catch (error) {
        if (flags.json && error instanceof ModelfetchError) io.stdout.write(`${JSON.stringify({ ok: false, error: error.toJSON() })}\n`);
        throw error;
      } finally {
        interrupt.dispose();
      }
      if (flags.json) {
        io.stdout.write(`${JSON.stringify({ ok: true, ...result })}\n`);
        return;
      }
      if (chatty) io.stderr.write(describeConversion(result));
      io.stdout.write(`${result.path}\n`);
    });
}
