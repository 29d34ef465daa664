import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { onTestFinished } from 'vitest';

/** aria2c as a BitTorrent peer in tests: loopback only, no DHT, no local discovery, no peer exchange. */
const ARIA_ISOLATED = ['--enable-dht=false', '--enable-dht6=false', '--bt-enable-lpd=false', '--enable-peer-exchange=false', '--console-log-level=warn', '--summary-interval=0', '--follow-torrent=false'];

/** A TCP port free on 127.0.0.1 right now (for programs that need one given, like aria2c's --listen-port). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Starts aria2c with `args`; killed when the running test ends, passed or failed. */
export function startAria2c(args: string[]): { child: ChildProcess; exited: Promise<number>; output: () => string } {
  const child = spawn('aria2c', [...ARIA_ISOLATED, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
  onTestFinished(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return { child, exited, output: () => output };
}
