import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import type { ModelfetchCli } from './modelfetch-cli.js';
import { freePort, waitForPort } from './reference-server.js';

/** `modelfetch serve` over a cache directory, on a free loopback port, for the serving cases. */
export interface ServeProcess {
  origin: string;
  pid: number;
  close(): Promise<void>;
}

export async function startServe(cli: ModelfetchCli, cacheDir: string, options: { upstream?: string } = {}): Promise<ServeProcess> {
  const port = await freePort();
  const args = ['serve'];
  if (cli.hasOption('serve', '--host')) args.push('--host', '127.0.0.1');
  args.push(cli.hasOption('serve', '--port') ? '--port' : '-p', String(port));
  if (cli.hasOption('serve', '--cache-dir')) args.push('--cache-dir', cacheDir);
  if (options.upstream && cli.hasOption('serve', '--upstream')) args.push('--upstream', options.upstream);
  if (!options.upstream && cli.hasOption('serve', '--offline')) args.push('--offline');
  // The generated cache holds nothing gated or private: declared public, as an operator would.
  if (!options.upstream && cli.hasOption('serve', '--public')) args.push('--public', '*');
  const env = { ...process.env, HF_HUB_CACHE: cacheDir, ...(options.upstream && { HF_ENDPOINT: options.upstream }) };
  const child: ChildProcess = spawn(process.execPath, cli.nodeArgs(args), { cwd: cli.root, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await Promise.race([waitForPort(port, 20_000), exited.then(() => Promise.reject(new Error(`modelfetch serve exited: ${stderr.trim()}`)))]);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    origin: `http://127.0.0.1:${port}`,
    pid: child.pid!,
    close: async () => {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
