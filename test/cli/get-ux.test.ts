import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { MiB, sha256Of, testScope } from '../transfer/helpers.js';

const root = resolve(import.meta.dirname, '../..');
const scope = testScope();
/** Flags and variables `get` does not have: its hints must never send the user to them. */
const NOT_GETS = /--cache-dir|--local-dir|--offline|--check|--include|HF_TOKEN|HF_ENDPOINT/;
const HTML = '<!doctype html><html><body>a web page</body></html>';

function hintOf(stderr: string): string {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('  '))
    .join('\n')
    .trim();
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as { port: number };
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}

describe('get refuses a web page where a file was asked for', () => {
  it('a Hub /blob/ page: ERR_BAD_RESPONSE naming the /resolve/ URL, nothing left behind; --accept-html keeps it', async () => {
    const s = await scope.setup(1000);
    s.server.route('/org/name/blob/main/model.safetensors', (_req, res) => {
      res.setHeader('content-type', 'text/html; charset=utf-8');
      res.end(HTML);
    });
    const out = join(s.dir, 'got');
    await mkdir(out);
    const url = `${s.server.origin}/org/name/blob/main/model.safetensors`;
    const refused = await runCli(['get', url, '-o', `${out}/`, '--quiet']);
    expect(refused.code).toBe(6);
    expect(refused.stderr).toContain(`${url} answered with a web page (text/html), not a file; nothing was saved [ERR_BAD_RESPONSE]`);
    expect(hintOf(refused.stderr)).toBe(`That is the Hub's web page about the file; the file itself is at ${s.server.origin}/org/name/resolve/main/model.safetensors`);
    expect(await readdir(out)).toEqual([]);

    const kept = await runCli(['get', url, '-o', `${out}/`, '--quiet', '--accept-html']);
    expect(kept.code).toBe(0);
    expect(await readFile(join(out, 'model.safetensors'), 'utf8')).toBe(HTML);
  });

  it('a folder listing: refused with a hint to name the file; a URL naming an .html page is fetched as asked', async () => {
    const s = await scope.setup(1000);
    s.server.route('/files/', (req, res) => {
      res.setHeader('content-type', 'text/html');
      res.end(req.url === '/files/' ? '<a href="model.bin">model.bin</a>' : HTML);
    });
    const listing = await runCli(['get', `${s.server.origin}/files/`, '-o', join(s.dir, 'listing.bin'), '--quiet']);
    expect(listing.code).toBe(6);
    expect(hintOf(listing.stderr)).toBe('The URL names a folder, and its listing is a web page; add the file name to the URL.');
    expect((await readdir(s.dir)).sort()).toEqual(['source.bin']);

    const page = await runCli(['get', `${s.server.origin}/files/index.html`, '-o', join(s.dir, 'index.html'), '--quiet']);
    expect(page.code).toBe(0);
  });
});

describe('get -o DIR', () => {
  it('puts the URL\'s file name inside an existing folder, or inside a path ending in / (made if missing); never DIR.modelfetch-partial', async () => {
    const s = await scope.setup(1000);
    const existing = join(s.dir, 'existing');
    await mkdir(existing);
    const intoExisting = await runCli(['get', s.url, '-o', existing, '--quiet']);
    expect(intoExisting.code).toBe(0);
    expect(intoExisting.stdout.trim()).toBe(join(existing, 'model.bin'));
    expect(await sha256Of(join(existing, 'model.bin'))).toBe(s.info.sha256);

    const made = join(s.dir, 'made', 'deeper');
    const intoNew = await runCli(['get', s.url, '-o', `${made}/`, '--quiet']);
    expect(intoNew.code).toBe(0);
    expect(await readdir(made)).toEqual(['model.bin']);

    // --force with a folder as the target replaces the file inside it, never the folder.
    await writeFile(join(existing, 'model.bin'), 'old');
    const forced = await runCli(['get', s.url, '-o', existing, '--quiet', '--force']);
    expect(forced.code).toBe(0);
    expect(await sha256Of(join(existing, 'model.bin'))).toBe(s.info.sha256);
    expect((await readdir(s.dir)).sort()).toEqual(['existing', 'made', 'source.bin']);
  });

  it('a file path in a folder that does not exist is a usage error that says how to have it made', async () => {
    const s = await scope.setup(1000);
    const run = await runCli(['get', s.url, '-o', join(s.dir, 'missing', 'x.bin'), '--quiet']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`The folder ${join(s.dir, 'missing')} does not exist [ERR_USAGE]`);
    expect(hintOf(run.stderr)).toContain('end -o with /');
    expect(s.server.requests).toHaveLength(0);
  });
});

describe('get with HF_HUB_OFFLINE=1', () => {
  it('makes no request and exits 8 (ERR_OFFLINE); a target already there with the expected SHA-256 is a success', async () => {
    const s = await scope.setup(1000);
    const out = join(s.dir, 'model.bin');
    const refused = await runCli(['get', s.url, '-o', out, '--quiet'], { HF_HUB_OFFLINE: '1' });
    expect(refused.code).toBe(8);
    expect(refused.stderr).toContain(`Offline mode is on (HF_HUB_OFFLINE), so ${s.url} was not downloaded [ERR_OFFLINE]`);
    expect(hintOf(refused.stderr)).toBe('Unset HF_HUB_OFFLINE (or set it to 0) to download.');
    expect(s.server.requests).toHaveLength(0);

    await writeFile(out, await readFile(join(s.dir, 'source.bin')));
    const present = await runCli(['get', s.url, '-o', out, '--sha256', s.info.sha256, '--quiet'], { HF_HUB_OFFLINE: '1' });
    expect(present.code).toBe(0);
    expect(present.stdout.trim()).toBe(out);
    expect(s.server.requests).toHaveLength(0);
  });
});

describe('get against a closed port', () => {
  it('shows each retry on stderr, gives up on the short budget shared with the hub API, and names the host and what to check', async () => {
    const port = await closedPort();
    const s = await scope.setup(1000);
    const run = await runCli(['get', `http://127.0.0.1:${port}/f.bin`, '-o', join(s.dir, 'f.bin')]);
    expect(run.code).toBe(6);
    expect(run.stderr).toMatch(new RegExp(`127\\.0\\.0\\.1:${port}: connection refused, retry 1/2 in \\d+\\.\\d s`));
    expect(run.stderr).toMatch(new RegExp(`127\\.0\\.0\\.1:${port}: connection refused, retry 2/2 in \\d+\\.\\d s`));
    expect(run.stderr).not.toContain('retry 3/');
    expect(run.stderr).toContain(`Could not connect to 127.0.0.1:${port}: connection refused (3 attempts) [ERR_NETWORK]`);
    expect(hintOf(run.stderr)).toBe(`Nothing accepts connections at 127.0.0.1:${port}: check that the server is running and listening on that port, and that the URL's host and port are right.`);
    expect((await readdir(s.dir)).sort()).toEqual(['source.bin']);
  });
});

/** Starts `get`, waits until the server has sent `bytes`, then sends SIGINT (Ctrl-C). */
async function interruptedGet(args: string[], served: () => number, bytes: number): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'src/cli/run.ts'), ...args], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((done) => child.on('close', (code) => done(code)));
  for (let i = 0; i < 600 && served() < bytes; i += 1) await sleep(50);
  child.kill('SIGINT');
  return { code: await exited, stderr };
}

describe('Ctrl-C during get says what happens next', () => {
  it('from a server without Range support: nothing was kept, so the same command starts over', async () => {
    const s = await scope.setup(4 * MiB);
    s.server.addFault({ fault: { ignoreRange: true, throttleBytesPerSec: MiB } });
    const out = join(s.dir, 'model.bin');
    const run = await interruptedGet(['get', s.url, '-o', out, '--quiet'], () => s.server.bodyBytesServed(), 512 * 1024);
    expect(run.code).toBe(130);
    expect(run.stderr).toContain('Interrupted; nothing was kept (the server does not support resuming, or nothing had arrived) [ERR_ABORTED]');
    expect(hintOf(run.stderr)).toBe('Running the same command again starts the download over.');
    expect(run.stderr).not.toContain('resume');
    expect((await readdir(s.dir)).sort()).toEqual(['source.bin']);
  });

  it('from a server with Range support: the finished part is kept and the same command resumes', async () => {
    const s = await scope.setup(8 * MiB);
    s.server.addFault({ fault: { throttleBytesPerSec: 2 * MiB } });
    const out = join(s.dir, 'model.bin');
    const run = await interruptedGet(['get', s.url, '-o', out, '--quiet', '--connections', '2'], () => s.server.bodyBytesServed(), 2 * MiB);
    expect(run.code).toBe(130);
    expect(run.stderr).toContain('Interrupted; the finished part is kept [ERR_ABORTED]');
    expect(hintOf(run.stderr)).toBe('Run the same command again to resume where it stopped.');
    s.server.clearFaults();
    const resumed = await runCli(['get', s.url, '-o', out, '--json']);
    expect(resumed.code).toBe(0);
    expect((JSON.parse(resumed.stdout) as { bytesResumed: number }).bytesResumed).toBeGreaterThan(0);
  });
});

describe('every hint get gives names only get\'s own flags and says what really happened', () => {
  it('usage, not found, auth, gated, HTTP, integrity, checksum file and redirect errors', async () => {
    const s = await scope.setup(1000);
    const status = (code: number) => (_req: unknown, res: { statusCode: number; end: () => void }) => {
      res.statusCode = code;
      res.end();
    };
    s.server.route('/401', status(401));
    s.server.route('/403', status(403));
    s.server.route('/400', status(400));
    s.server.route('/sums', (_req, res) => void res.end('not a digest\n'));
    s.server.route('/to-file', (_req, res) => {
      res.statusCode = 302;
      res.setHeader('location', 'file:///etc/passwd');
      res.end();
    });
    const existing = join(s.dir, 'existing.bin');
    await writeFile(existing, 'mine');
    const o = (name: string) => ['-o', join(s.dir, name), '--quiet'];
    const cases: Array<{ args: string[]; code: number; errorCode: string; hint: string }> = [
      { args: ['get', s.url, '-o', existing, '--quiet'], code: 2, errorCode: 'ERR_USAGE', hint: 'Choose another -o FILE, remove it, or pass --force to replace it.' },
      { args: ['get', `${s.server.origin}/nope.bin`, ...o('a')], code: 4, errorCode: 'ERR_NOT_FOUND', hint: 'Check the URL.' },
      { args: ['get', `${s.server.origin}/401`, ...o('b')], code: 5, errorCode: 'ERR_AUTH', hint: "Pass the credentials the server needs with --header 'Name: value' (an Authorization or Cookie header, for example); they are sent only to that URL's origin." },
      { args: ['get', `${s.server.origin}/403`, ...o('c')], code: 5, errorCode: 'ERR_GATED', hint: "Pass the credentials the server needs with --header 'Name: value' (an Authorization or Cookie header, for example); they are sent only to that URL's origin." },
      { args: ['get', `${s.server.origin}/400`, ...o('d')], code: 6, errorCode: 'ERR_HTTP', hint: 'Check the URL.' },
      { args: ['get', s.url, '--sha256', '0'.repeat(64), ...o('e')], code: 3, errorCode: 'ERR_INTEGRITY', hint: 'The server sent different bytes than the expected digest names; the partial download was discarded. Run again, or use another mirror.' },
      { args: ['get', s.url, '--sha256-url', `${s.server.origin}/sums`, ...o('g')], code: 9, errorCode: 'ERR_INVALID_DIGEST', hint: 'Check the --sha256-url (it must name a checksum file such as model.bin.sha256), or pass --sha256 HEX.' },
      { args: ['get', `${s.server.origin}/to-file`, ...o('h')], code: 6, errorCode: 'ERR_REDIRECT', hint: 'Only http and https downloads are supported; check the URL or the server.' },
    ];
    for (const c of cases) {
      const run = await runCli(c.args);
      expect({ errorCode: c.errorCode, code: run.code, hint: hintOf(run.stderr) }).toEqual({ errorCode: c.errorCode, code: c.code, hint: c.hint });
      expect(run.stderr).toContain(`[${c.errorCode}]`);
      expect(run.stderr).not.toMatch(NOT_GETS);
    }
    expect((await readdir(s.dir)).sort()).toEqual(['existing.bin', 'source.bin']);
  });
});
