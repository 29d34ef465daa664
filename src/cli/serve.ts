import { InvalidArgumentError, type Command } from 'commander';
import { resolveCacheDir } from '../core/env.js';
import { readHfToken, resolveHfEndpoint } from '../core/env.js';
import type { CliIo } from './main.js';
import { examples } from './examples.js';
import { untilInterrupted } from './interrupt.js';
import { parsePort } from './units.js';

function parsePositiveInteger(value: string): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1) throw new InvalidArgumentError('expected a whole number of at least 1');
  return number;
}

function parseSeconds(value: string): number {
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds < 0) throw new InvalidArgumentError('expected a number of seconds');
  return seconds;
}

interface ServeFlags {
  cacheDir?: string;
  upstream?: string;
  host: string;
  port: number;
  offline?: boolean;
  tokenPassthrough?: boolean;
  revalidateAfter: number;
  grace: number;
  public?: string[];
  adminToken?: string;
  maxConnections: number;
  sendTimeout: number;
  swarm?: boolean;
  swarmPrivate?: boolean;
  swarmPort?: number;
  /** commander's negation of --no-xet: false when given. */
  xet?: boolean;
}

/** `modelfetch serve`: runs the mirror until SIGTERM / SIGINT, then shuts down gracefully. */
export function registerServeCommand(program: Command, io: CliIo): void {
  program
    .command('serve')
    .description('Serve the cache over the Hugging Face Hub API (point HF_ENDPOINT at it), filling misses from upstream')
    .addHelpText('after', examples(['modelfetch serve --host 0.0.0.0 --port 8080     # then HF_ENDPOINT=http://<host>:8080 on clients', 'modelfetch serve --offline                      # serve only what is cached']))
    .option('--cache-dir <dir>', 'cache root (default: HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub)')
    .option('--upstream <url>', 'hub to fill misses from (default: HF_ENDPOINT, else https://huggingface.co)')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on (0 picks a free one)', (value) => parsePort(value, '--port'), 8080)
    .option('--offline', 'never contact upstream; serve only what is cached')
    .option('--token-passthrough', "forward clients' tokens upstream instead of the server's HF_TOKEN")
    .option('--revalidate-after <seconds>', 'ask upstream again where a branch points after this long', parseSeconds, 60)
    .option('--grace <seconds>', 'on SIGTERM, let responses in flight finish for this long', parseSeconds, 10)
    .option('--public <repo...>', 'repos anyone may read (org/name, org/*, *; datasets/… spaces/…): served without asking upstream, also offline')
    .option('--admin-token <token>', 'bearer token that shows every repo on the status page (default: MODELFETCH_ADMIN_TOKEN)')
    .option('--max-connections <n>', 'open connections beyond this are answered 503', parsePositiveInteger, 1024)
    .option('--send-timeout <seconds>', 'cut off a client that takes no bytes of its response for this long', parseSeconds, 30)
    .option('--no-xet', 'fetch Xet-backed upstream files through the plain path (also HF_HUB_DISABLE_XET=1)')
    .option('--swarm', 'also share verified files over BitTorrent: tracker, .torrent per file, blobs as web seed (/api/swarm/…)')
    .option('--swarm-private', 'with --swarm, share files of gated and private repos too (still only with clients allowed to read them)')
    .option('--swarm-port <port>', 'with --swarm: TCP port (all interfaces) peers reach this node on when it fetches through an upstream mirror\'s swarm (default: any free port)', (value) => parsePort(value, '--swarm-port'))
    .action(async (flags: ServeFlags) => {
      const cacheDir = flags.cacheDir ?? resolveCacheDir(io.env);
      const upstream = resolveHfEndpoint(flags.upstream, io.env);
      const token = await readHfToken(undefined, io.env);
      const adminToken = flags.adminToken ?? io.env.MODELFETCH_ADMIN_TOKEN;
      // Loaded here, not at the top: undici and prom-client would slow every other command's start.
      const { createMirrorServer } = await import('../server/mirror-server.js');
      const mirror = createMirrorServer({
        cacheDir,
        host: flags.host,
        port: flags.port,
        upstream,
        offline: flags.offline === true,
        tokenPassthrough: flags.tokenPassthrough === true,
        ...(token && { token }),
        revalidateAfterMs: flags.revalidateAfter * 1000,
        graceMs: flags.grace * 1000,
        ...(flags.public && { publicRepos: flags.public }),
        ...(adminToken && { adminToken }),
        maxConnections: flags.maxConnections,
        sendTimeoutMs: flags.sendTimeout * 1000,
        ...((flags.swarm || flags.swarmPrivate || flags.swarmPort !== undefined) && { swarm: { private: flags.swarmPrivate === true, ...(flags.swarmPort !== undefined && { port: flags.swarmPort }) } }),
        processMetrics: true,
        ...(flags.xet === false && { xet: false }),
        env: io.env,
        log: (line) => io.stdout.write(`${line}\n`),
      });
      const url = await mirror.listen();
      io.stderr.write(`modelfetch mirror listening on ${url} (cache ${cacheDir}, ${flags.offline ? 'offline' : `upstream ${upstream}`})\n`);
      const signal = await untilInterrupted();
      io.stderr.write(`modelfetch mirror: ${signal}, finishing responses in flight\n`);
      await mirror.close().catch(() => undefined);
    });
}
