import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { connect, createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { servedPath, startFixtureServer, type FixtureServer } from '../../test/support/fixture-server.js';

/**
 * The static file server the reference tools and modelfetch download from: nginx with a generated
 * config (sendfile, strong ETags, `limit_rate` per connection) when it is installed, else the project's
 * fixture server with its per-response throttle. Both count the body bytes they sent.
 */

export interface ServedEntry {
  name: string;
  path: string;
  size: number;
  sha256: string;
}

export interface ReferenceServer {
  readonly kind: 'nginx' | 'fixture';
  /** URL of a file, either at full speed or throttled to the per-connection rate. */
  url(name: string, throttled: boolean): string;
  /** Makes a file in the data directory servable (the fixture server needs to be told). */
  add(entry: ServedEntry): void;
  /** Body bytes sent since the last reset, by completed or aborted responses. */
  bodyBytesSent(): Promise<number>;
  resetCount(): Promise<void>;
  close(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => (socket.destroy(), resolve(true)));
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** nginx serving `dataDir` at `/` and again at `/throttled/` with `limit_rate`. */
export async function startNginx(dataDir: string, stateDir: string, rateBytesPerSec: number): Promise<ReferenceServer> {
  await mkdir(join(stateDir, 'tmp'), { recursive: true });
  // Worker processes drop privileges: let them read the generated data.
  await chmod(dataDir, 0o755);
  const port = await freePort();
  const log = join(stateDir, 'access.log');
  const conf = join(stateDir, 'nginx.conf');
  const tmp = join(stateDir, 'tmp');
  await writeFile(log, '');
  await writeFile(
    conf,
    [
      process.getuid?.() === 0 ? 'user root;' : '',
      'worker_processes auto;',
      `pid ${join(stateDir, 'nginx.pid')};`,
      `error_log ${join(stateDir, 'error.log')} warn;`,
      'events { worker_connections 1024; }',
      'http {',
      '  default_type application/octet-stream;',
      "  log_format bench '$request_uri $status $body_bytes_sent';",
      `  access_log ${log} bench;`,
      '  sendfile on; tcp_nopush on; etag on;',
      '  keepalive_requests 100000;',
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${tmp}/${t};`),
      '  server {',
      `    listen 127.0.0.1:${port};`,
      `    root ${dataDir};`,
      `    location /throttled/ { alias ${dataDir}/; limit_rate ${rateBytesPerSec}; }`,
      '  }',
      '}',
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn('nginx', ['-p', stateDir, '-c', conf, '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await Promise.race([waitForPort(port), exited.then(() => Promise.reject(new Error(`nginx exited: ${stderr.trim()}`)))]);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  let offset = 0;
  const readTotal = async (): Promise<{ total: number; length: number }> => {
    const text = await readFile(log, 'utf8');
    let total = 0;
    for (const line of text.slice(offset).split('\n')) {
      const bytes = Number(line.split(' ')[2]);
      if (Number.isFinite(bytes)) total += bytes;
    }
    return { total, length: text.length };
  };
  return {
    kind: 'nginx',
    url: (name, throttled) => `http://127.0.0.1:${port}/${throttled ? 'throttled/' : ''}${name}`,
    add: () => {},
    bodyBytesSent: async () => {
      // nginx logs a response when it ends; an aborted one ends when its next write fails.
      let last = -1;
      for (let i = 0; i < 50; i++) {
        const { total, length } = await readTotal();
        if (length === last) return total;
        last = length;
        await sleep(200);
      }
      return (await readTotal()).total;
    },
    resetCount: async () => {
      await sleep(300);
      offset = (await readFile(log, 'utf8')).length;
    },
    close: async () => {
      child.kill('SIGQUIT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** The project's fixture server, for machines without nginx. */
export async function startFixtureReference(rateBytesPerSec: number): Promise<ReferenceServer> {
  const server: FixtureServer = await startFixtureServer();
  server.addFault({ match: (req) => (req.url ?? '').startsWith('/throttled/'), fault: { throttleBytesPerSec: rateBytesPerSec } });
  return fixtureReference(server);
}

function fixtureReference(server: FixtureServer): ReferenceServer {
  return {
    kind: 'fixture',
    url: (name, throttled) => `${server.origin}/${throttled ? 'throttled/' : ''}${name}`,
    add: (entry) => {
      const file = servedPath(entry.path, entry);
      server.setFile(`/${entry.name}`, file);
      server.setFile(`/throttled/${entry.name}`, file);
    },
    bodyBytesSent: async () => {
      await sleep(300);
      return server.bodyBytesServed();
    },
    resetCount: async () => server.resetLog(),
    close: () => server.close(),
  };
}
