import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { exitCodeFor, fromSystemError, isSystemError, ModelfetchError } from '../core/errors.js';
import { redactText } from '../core/redact.js';
import { examples } from './examples.js';
import { registerLsCommand } from './ls.js';
import { registerVerifyCommand } from './verify.js';
import { registerGcCommand } from './gc.js';
import { registerRmCommand } from './rm.js';
import { registerGetCommand } from './get.js';
import { registerPullCommand } from './pull.js';
import { registerDownloadCommand } from './download.js';
import { registerServeCommand } from './serve.js';
import { registerKeygenCommand } from './keygen.js';
import { registerSignCommand } from './sign.js';
import { registerLockCommand } from './lock.js';
import { registerSyncCommand } from './sync.js';
import { registerBakeCommand } from './bake.js';
import { registerRunCommand } from './run-command.js';
import { registerInspectCommand } from './inspect.js';
import { registerConvertCommand } from './convert.js';
import { configureNetwork, networkSettingsFrom, trustedCas } from '../transfer/proxy.js';

export interface CliIo {
  /** For prompts (`rm` asks on a terminal); absent or not a TTY means no one can answer. */
  stdin?: NodeJS.ReadableStream & { isTTY?: boolean };
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  env: NodeJS.ProcessEnv;
  /** Set by a command whose exit status is not 0 without an error (e.g. `run` passes on its child's). */
  exitCode?: number;
}

/** The version in package.json (two levels up from both src/cli and dist/cli). */
function packageVersion(): string {
  try {
    const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return manifest.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** Builds the command tree. Each command registers itself from its own file under src/cli/. */
export function buildProgram(io: CliIo): Command {
  const program = new Command('modelfetch')
    .description('Fast, resumable, verified model downloads into the standard Hugging Face cache')
    .version(packageVersion(), '-V, --version')
    .option('--verbose', 'on an error, also print its stack and causes (also DEBUG=modelfetch)')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .addHelpText('after', examples(['modelfetch pull org/name                 # a Hub repo into the cache; prints the snapshot path', 'modelfetch get https://host/model.bin     # one file from a URL', 'modelfetch <command> --help              # options and examples of a command']));
  registerLsCommand(program, io);
  registerVerifyCommand(program, io);
  registerGcCommand(program, io);
  registerRmCommand(program, io);
  registerGetCommand(program, io);
  registerPullCommand(program, io);
  registerDownloadCommand(program, io);
  registerServeCommand(program, io);
  registerKeygenCommand(program, io);
  registerSignCommand(program, io);
  registerLockCommand(program, io);
  registerSyncCommand(program, io);
  registerBakeCommand(program, io);
  registerRunCommand(program, io);
  registerInspectCommand(program, io);
  registerConvertCommand(program, io);
  addNetworkOptions(program, io);
  return program;
}

/** The commands that reach the network take --proxy and --ca-file; every command honours the env. */
const NETWORK_COMMANDS = new Set(['get', 'pull', 'download', 'serve', 'sync', 'lock', 'run', 'verify', 'inspect', 'convert']);

function addNetworkOptions(program: Command, io: CliIo): void {
  for (const command of program.commands) {
    if (!NETWORK_COMMANDS.has(command.name())) continue;
    command
      .option('--proxy <url>', 'proxy for every request (overrides HTTPS_PROXY/HTTP_PROXY; NO_PROXY still applies)')
      .option('--ca-file <file>', 'PEM bundle of extra certificate authorities to trust (overrides REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, SSL_CERT_FILE)');
  }
  program.hook('preAction', (_program, action) => {
    const flags = action.opts<{ proxy?: string; caFile?: string }>();
    const settings = networkSettingsFrom(io.env, { ...(flags.proxy && { proxy: flags.proxy }), ...(flags.caFile && { caFile: flags.caFile }) });
    // An unreadable CA bundle is a usage error before a network command starts (others meet it on first use).
    if (NETWORK_COMMANDS.has(action.name())) trustedCas(settings);
    configureNetwork(settings);
  });
}

/** The process's streams; stdin is touched only when a command reads it (opening it can hold the process open). */
function defaultIo(): CliIo {
  return {
    get stdin() {
      return process.stdin;
    },
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
  };
}

/** Runs the CLI and returns the process exit code. */
export async function main(argv: string[], io: CliIo = defaultIo()): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return io.exitCode ?? 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    const reported = isSystemError(error) ? fromSystemError(error) : error;
    const verbose = program.opts<{ verbose?: boolean }>().verbose === true || debugEnabled(io.env.DEBUG);
    reportError(reported, io, verbose);
    return exitCodeFor(reported);
  }
}

/** DEBUG as the `debug` package reads it: a list of names and wildcards (`modelfetch`, `modelfetch:*`, `*`). */
function debugEnabled(value: string | undefined): boolean {
  return (value ?? '').split(/[\s,]+/).some((name) => name === '*' || name === 'modelfetch' || name === 'modelfetch*' || name === 'modelfetch:*');
}

/** The error's stack and its causes' (redacted), for --verbose. */
function stackOf(error: unknown): string {
  const lines: string[] = [];
  for (let at: unknown = error, depth = 0; at !== undefined && depth < 8; depth += 1) {
    lines.push(at instanceof Error ? (at.stack ?? `${at.name}: ${at.message}`) : String(at));
    at = at instanceof Error ? at.cause : undefined;
    if (at !== undefined) lines.push('caused by:');
  }
  return redactText(lines.join('\n'));
}

/** One sentence and a hint on stderr; the stack only when asked for (--verbose or DEBUG=modelfetch). */
export function reportError(error: unknown, io: CliIo, verbose = false): void {
  if (error instanceof ModelfetchError) {
    io.stderr.write(`modelfetch: ${error.message} [${error.code}]\n`);
    if (error.hint) io.stderr.write(`  ${error.hint}\n`);
  } else {
    const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    io.stderr.write(`modelfetch: unexpected error: ${redactText(message)}\n`);
    if (!verbose) io.stderr.write('  This is a bug in modelfetch; run again with --verbose for the details to report.\n');
  }
  if (verbose) io.stderr.write(`${stackOf(error)}\n`);
}
