import type { Command } from 'commander';
import { formatBytes } from '../core/format-bytes.js';
import type { InspectOptions, InspectReport } from '../safetensors/inspect.js';
import { abortOnInterrupt } from './interrupt.js';
import type { CliIo } from './main.js';
import { parseRepoType, renderTable } from './units.js';
import { ModelfetchError } from '../core/errors.js';
import { examples } from './examples.js';
import { parseConnections } from '../pull/options.js';

/** `modelfetch inspect <target> [--json]`: what a model holds, from its safetensors headers only. */

interface InspectFlags {
  json?: boolean;
  repoType?: InspectOptions['repoType'];
  cacheDir?: string;
  endpoint?: string;
  token?: string;
  offline?: boolean;
  connections?: string;
}

/** The hub and cache flags `inspect` and `convert` share, as library options. */
export function hubFlagOptions(flags: Pick<InspectFlags, 'repoType' | 'cacheDir' | 'endpoint' | 'token' | 'offline'>): Pick<InspectOptions, 'repoType' | 'cacheDir' | 'endpoint' | 'token' | 'offline'> {
  return {
    ...(flags.repoType && { repoType: flags.repoType }),
    ...(flags.cacheDir && { cacheDir: flags.cacheDir }),
    ...(flags.endpoint && { endpoint: flags.endpoint }),
    ...(flags.token && { token: flags.token }),
    ...(flags.offline && { offline: true }),
  };
}

/** 1234567 → "1.23 M" (parameters, not bytes: powers of 1000). */
export function formatCount(n: number): string {
  const units = ['', ' K', ' M', ' B', ' T'];
  let value = n;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return unit === 0 ? String(n) : `${value.toFixed(2)}${units[unit]}`;
}

function render(report: InspectReport): string {
  const files = renderTable(
    ['FILE', 'TENSORS', 'PARAMETERS', 'SIZE', 'AS F16/BF16'],
    report.files.map((f) => [f.path, String(f.tensors), formatCount(f.parameters), formatBytes(f.size), formatBytes(f.sizeAfter.F16)]),
    [1, 2, 3, 4],
  );
  const dtypes = renderTable(
    ['DTYPE', 'TENSORS', 'PARAMETERS', 'SIZE'],
    Object.entries(report.dtypes)
      .sort((a, b) => b[1].bytes - a[1].bytes)
      .map(([dtype, t]) => [dtype, String(t.tensors), formatCount(t.parameters), formatBytes(t.bytes)]),
    [1, 2, 3],
  );
  let out = `${report.target}: ${report.files.length} safetensors file(s), ${report.tensors} tensors, ${formatCount(report.parameters)} parameters, ${formatBytes(report.bytes)}\n\n${files}\n${dtypes}\n`;
  for (const index of report.indexes) out += `index ${index.path}: ${index.tensors} tensors in ${index.shards} shard(s), all present\n`;
  const metadata = report.files.filter((f) => f.metadata && Object.keys(f.metadata).length);
  for (const file of metadata.slice(0, 1)) {
    const same = metadata.every((f) => JSON.stringify(f.metadata) === JSON.stringify(file.metadata));
    out += `__metadata__${same ? '' : ` (${file.path})`}: ${Object.entries(file.metadata!).map(([k, v]) => `${k}=${v.length > 80 ? `${v.slice(0, 77)}...` : v}`).join(', ')}\n`;
  }
  out += `after convert --dtype f16: ${formatBytes(report.sizeAfter.F16)}; --dtype bf16: ${formatBytes(report.sizeAfter.BF16)} (now ${formatBytes(report.bytes)})\n`;
  return out;
}

export function registerInspectCommand(program: Command, io: CliIo): void {
  program
    .command('inspect')
    .description('Show what a model holds (tensors, dtypes, parameters, size after f16/bf16) from its safetensors headers, without downloading weights')
    .addHelpText('after', examples(['modelfetch inspect Qwen/Qwen2.5-0.5B                  # two range reads per shard, no weights', 'modelfetch inspect ./checkpoints/model.safetensors --json']))
    .argument('<target>', 'org/name[@rev], a model folder or .safetensors file, or a URL to one .safetensors file')
    .option('--json', 'print one JSON object')
    .option('--repo-type <type>', 'model, dataset or space', parseRepoType)
    .option('--cache-dir <dir>', 'hub cache root (default: HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub)')
    .option('--endpoint <url>', 'hub endpoint (default: HF_ENDPOINT or https://huggingface.co)')
    .option('--token <token>', 'access token (default: HF_TOKEN, HF_TOKEN_PATH, HF_HOME/token)')
    .option('--offline', 'make no request; the headers must be in the cache (also HF_HUB_OFFLINE=1)')
    .option('--connections <n>', 'connection budget per host')
    .action(async (target: string, flags: InspectFlags) => {
      const connections = flags.connections === undefined ? undefined : parseConnections(flags.connections);
      const { inspect } = await import('../safetensors/inspect.js');
      const interrupt = abortOnInterrupt();
      try {
        const report = await inspect({
          target,
          env: io.env,
          signal: interrupt.signal,
          ...hubFlagOptions(flags),
          ...(connections !== undefined && { connections }),
        });
        io.stdout.write(flags.json ? `${JSON.stringify(report)}\n` : render(report));
      } catch (error) {
        if (flags.json && error instanceof ModelfetchError) io.stdout.write(`${JSON.stringify({ ok: false, error: error.toJSON() })}\n`);
        throw error;
      } finally {
        interrupt.dispose();
      }
    });
}
