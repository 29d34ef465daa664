import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { runMeasured, type RunOptions, type RunResult } from './proc.js';

/**
 * The built CLI (`node bin/modelfetch.js`, which loads dist/), as a user runs it. Which commands and
 * options exist is read from its own `--help`, so a case can say "skipped: get not available" until
 * the feature lands instead of guessing.
 */
export class ModelfetchCli {
  readonly bin: string;
  private readonly helpCache = new Map<string, string>();

  constructor(
    readonly root: string,
    /** Run from source instead of dist/ (the demo, which needs no build). */
    readonly fromSource = false,
  ) {
    this.bin = fromSource ? join(root, 'src/cli/run.ts') : join(root, 'bin/modelfetch.js');
  }

  /** Node arguments that run the CLI with `args`. */
  nodeArgs(args: string[]): string[] {
    return this.fromSource ? ['--import', 'tsx', this.bin, ...args] : [this.bin, ...args];
  }

  help(command?: string): string {
    const key = command ?? '';
    let text = this.helpCache.get(key);
    if (text === undefined) {
      try {
        text = execFileSync(process.execPath, this.nodeArgs(command ? [command, '--help'] : ['--help']), {
          cwd: this.root,
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'pipe'],
        });
      } catch (error) {
        const out = error as { stdout?: string };
        text = out.stdout ?? '';
      }
      this.helpCache.set(key, text);
    }
    return text;
  }

  /** Top-level command names listed by `modelfetch --help`. */
  commands(): Set<string> {
    const names = new Set<string>();
    const text = this.help();
    const section = text.split(/^Commands:\s*$/m)[1] ?? '';
    for (const line of section.split('\n')) {
      const match = /^ {2}([a-z][\w-]*)/.exec(line);
      if (match) names.add(match[1]!);
    }
    return names;
  }

  has(command: string): boolean {
    return this.commands().has(command);
  }

  /** Whether `modelfetch <command> --help` lists `flag` (e.g. `--sha256`). */
  hasOption(command: string, flag: string): boolean {
    return new RegExp(`(^|[\\s,])${flag.replace(/[-]/g, '\\-')}([\\s,=<[]|$)`, 'm').test(this.help(command));
  }

  /** Arguments for `get URL` writing to `output`, in whichever form the command documents. */
  getArgs(url: string, output: string, extra: string[] = []): string[] {
    if (this.hasOption('get', '--output')) return ['get', url, '--output', output, ...extra];
    if (this.hasOption('get', '-o')) return ['get', url, '-o', output, ...extra];
    return ['get', url, output, ...extra];
  }

  run(args: string[], options: RunOptions = {}): Promise<RunResult> {
    return runMeasured(process.execPath, this.nodeArgs(args), { cwd: this.root, ...options });
  }
}

/** The last JSON object the CLI printed with `--json` (one object per line), if any. */
export function lastJson(stdout: string): Record<string, unknown> | undefined {
  const lines = stdout.trim().split('\n').reverse();
  for (const line of lines) {
    const text = line.trim();
    if (!text.startsWith('{')) continue;
    try {
      return JSON.parse(text) as Record<string, unknown>;
    } catch {
      continue;
    }
  }
  return undefined;
}

/** Peak RSS of a modelfetch run: what it reported with `--json` (`peakRssBytes`), else what /proc showed. */
export function peakRssOf(result: RunResult): number | undefined {
  const reported = lastJson(result.stdout)?.peakRssBytes;
  if (typeof reported === 'number' && reported > 0) return Math.max(reported, result.peakRssBytes ?? 0);
  return result.peakRssBytes;
}
