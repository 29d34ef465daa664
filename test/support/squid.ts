import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { request } from 'node:http';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A real squid on loopback: no disk cache, its own folder in the temp folder, access log to a file there. */
export interface Squid {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  /**
   * The access log, complete up to now. squid logs a CONNECT when its tunnel closes and sends the
   * line on its own time, so a marker request is made and awaited: every earlier line is in.
   */
  accessLog(): Promise<string[]>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const address = server.address();
  await new Promise<void>((done) => server.close(() => done()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      done(true);
    });
    socket.once('error', () => done(false));
  });
}

/** A plain GET through the proxy to a port nobody listens on: squid answers 503 and logs the URL. */
function markerRequest(proxyPort: number, marker: string): Promise<void> {
  return new Promise((done) => {
    const req = request({ host: '127.0.0.1', port: proxyPort, path: `http://127.0.0.1:1/${marker}`, headers: { host: '127.0.0.1:1' }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => done());
    });
    req.on('error', () => done());
    req.end();
  });
}

/** squid refuses to run as root; started by root it would drop to a user that cannot reach the private temp folder. */
function squidUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  for (const name of ['proxy', 'nobody']) {
    try {
      return { uid: Number(execFileSync('id', ['-u', name], { encoding: 'utf8' })), gid: Number(execFileSync('id', ['-g', name], { encoding: 'utf8' })) };
    } catch {
      // try the next one
    }
  }
  throw new Error('no unprivileged user to run squid as');
}

export async function startSquid(): Promise<Squid> {
  const dir = await mkdtemp(join(tmpdir(), 'mf-squid-'));
  const port = await freePort();
  // Its own shared-memory names, so squids of parallel runs never collide.
  const serviceName = `mfsquid${port}`;
  let child: ChildProcess | undefined;
  const files: number[] = [];
  let stderr = '';
  const stop = async (): Promise<void> => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((done) => child?.once('exit', done));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child?.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    for (const fd of files.splice(0)) closeSync(fd);
    for (const name of await readdir('/dev/shm').catch(() => [] as string[])) {
      if (name.startsWith(`${serviceName}-`)) await rm(join('/dev/shm', name), { force: true });
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const config = [
      `http_port 127.0.0.1:${port}`,
      'pid_filename none',
      'cache deny all',
      // Config and log are handed over as open descriptors: the folder stays private to this user.
      'access_log stdio:/proc/self/fd/4',
      'cache_log /proc/self/fd/2',
      'cache_store_log none',
      'buffered_logs off',
      'pinger_enable off',
      // The fixtures listen on loopback on any port: CONNECT to them is what is under test.
      'http_access allow localhost',
      'http_access deny all',
      'visible_hostname localhost',
      'shutdown_lifetime 0 seconds',
    ].join('\n');
    const configFile = join(dir, 'squid.conf');
    const logFile = join(dir, 'access.log');
    await writeFile(configFile, `${config}\n`, { mode: 0o644 });
    await writeFile(logFile, '', { mode: 0o666 });
    await chmod(logFile, 0o666);
    files.push(openSync(configFile, 'r'), openSync(logFile, 'a'));
    const user = squidUser();
    child = spawn('squid', ['-N', '-n', serviceName, '-f', '/proc/self/fd/3'], { stdio: ['ignore', 'ignore', 'pipe', files[0], files[1]], ...user });
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    for (let i = 0; i < 300 && !(await accepts(port)); i++) {
      if (child.exitCode !== null) throw new Error(`squid exited with ${child.exitCode}: ${stderr}`);
      await new Promise((done) => setTimeout(done, 50));
    }
    if (!(await accepts(port))) throw new Error(`squid did not start listening: ${stderr}`);
    const lines = async (): Promise<string[]> => (await readFile(logFile, 'utf8')).split('\n').filter(Boolean);
    let markers = 0;
    return {
      url: `http://127.0.0.1:${port}`,
      accessLog: async () => {
        const marker = `mf-log-marker-${(markers += 1)}`;
        await markerRequest(port, marker);
        for (let i = 0; i < 400 && !(await lines()).some((line) => line.includes(marker)); i++) await new Promise((done) => setTimeout(done, 25));
        const all = await lines();
        if (!all.some((line) => line.includes(marker))) throw new Error('squid did not log the marker request');
        return all.filter((line) => !line.includes('mf-log-marker-'));
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
