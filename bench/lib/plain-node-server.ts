import { spawn } from 'node:child_process';
import { freePort, waitForPort } from './reference-server.js';

/**
 * The serving case's second reference: the textbook Node file server (a read stream piped into the
 * response, 1 MiB reads), in its own process. It shows what Node itself reaches without sendfile.
 */
const SCRIPT = `
const { createServer } = require('node:http');
const { createReadStream, statSync } = require('node:fs');
const [file, port] = process.argv.slice(1);
createServer((req, res) => {
  res.writeHead(200, { 'Content-Length': statSync(file).size, 'Content-Type': 'application/octet-stream' });
  createReadStream(file, { highWaterMark: 1 << 20 }).pipe(res);
}).listen(Number(port), '127.0.0.1');
`;

export async function startPlainNodeServer(file: string): Promise<{ url: string; close(): Promise<void> }> {
  const port = await freePort();
  const child = spawn(process.execPath, ['-e', SCRIPT, file, String(port)], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitForPort(port);
  return {
    url: `http://127.0.0.1:${port}/`,
    close: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}
