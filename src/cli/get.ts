import type { Command } from 'commander';
import { ModelfetchError } from '../core/errors.js';
import { abortOnInterrupt } from './interrupt.js';
import type { CliIo } from './main.js';
import { createProgressRenderer, progressModeFor } from './progress.js';
import { examples } from './examples.js';
import { parseConnections } from '../pull/options.js';

interface GetFlags {
  output?: string;
  sha256?: string;
  sha256Url?: string;
  connections?: string;
  header: string[];
  json?: boolean;
  quiet?: boolean;
  force?: boolean;
  ignoreDiskSpace?: boolean;
  acceptHtml?: boolean;
}

/** Parses `Name: value` into a header pair. */
export function parseHeaderFlag(text: string): [string, string] {
  const at = text.indexOf(':');
  const name = at > 0 ? text.slice(0, at).trim() : '';
  if (!name || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) {
    throw new ModelfetchError('ERR_USAGE', `--header must look like "Name: value"`, { hint: 'e.g. --header "Authorization: Bearer $HF_TOKEN"' });
  }
  return [name, text.slice(at + 1).trim()];
}

export function registerGetCommand(program: Command, io: CliIo): void {
  program
    .command('get')
    .description('Download a file from one or more URLs (mirrors of the same file), in parallel, resumable and verified')
    .addHelpText('after', examples(['modelfetch get https://example.com/model.bin --sha256 <hex>', 'modelfetch get https://a.example/m.bin https://b.example/m.bin -o m.bin   # two mirrors at once']))
    .argument('<url...>', 'URLs of the same file; several are used together as mirrors')
    .option('-o, --output <path>', 'where to write the file (default: the name in the URL); a folder (or a path ending in /) gets the name in the URL inside it')
    .option('--sha256 <hex>', 'expected SHA-256; a mismatch fails and nothing is written')
    .option('--sha256-url <url>', 'take the expected SHA-256 from a checksum file ("hex" or "hex  filename")')
    .option('--connections <n>', 'connections per host (default 16)')
    .option('--header <header>', 'request header "Name: value", sent only to the URL\'s own origin (repeatable)', (value: string, all: string[]) => [...all, value], [] as string[])
    .option('--json', 'print one JSON object with the result on stdout')
    .option('--quiet', 'no progress output')
    .option('--force', 'replace an existing output file that does not match')
    .option('--ignore-disk-space', 'skip the free-space check made before the first byte')
    .option('--accept-html', 'keep a web page (text/html) answer; by default it is refused, since a model file was asked for')
    .action(async (urls: string[], flags: GetFlags) => {
      const connections = flags.connections === undefined ? undefined : parseConnections(flags.connections);
      const headers = Object.fromEntries(flags.header.map(parseHeaderFlag));
      const renderer = createProgressRenderer(io.stderr, progressModeFor(io.stderr, flags.quiet === true));
      const interrupt = abortOnInterrupt();
      try {
        // Imported here so other commands' start-up never loads the engine (undici alone costs ~100 ms).
        const { get } = await import('../get.js');
        const result = await get({
          urls,
          ...(flags.output !== undefined && { output: flags.output }),
          ...(flags.sha256 !== undefined && { sha256: flags.sha256 }),
          ...(flags.sha256Url !== undefined && { sha256Url: flags.sha256Url }),
          ...(connections !== undefined && { connections }),
          ...(Object.keys(headers).length > 0 && { headers }),
          ...(flags.force && { force: true }),
          ...(flags.ignoreDiskSpace && { ignoreDiskSpace: true }),
          ...(flags.acceptHtml && { acceptHtml: true }),
          env: io.env,
          signal: interrupt.signal,
          onProgress: renderer.onProgress,
          onRetry: renderer.onRetry,
          onRateLimitWait: renderer.onRateLimitWait,
        });
        renderer.finish();
        if (flags.json) {
          const { path, size, sha256, bytesFetched, bytesResumed, elapsedMs, connections: used } = result;
          const peakRssBytes = process.resourceUsage().maxRSS * 1024;
          io.stdout.write(`${JSON.stringify({ path, size, sha256, bytesFetched, bytesResumed, elapsedMs, connections: used, peakRssBytes })}\n`);
        } else {
          io.stdout.write(`${result.path}\n`);
        }
      } finally {
        renderer.finish();
        interrupt.dispose();
      }
    });
}
