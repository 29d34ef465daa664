import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';
import { startSquid, type Squid } from '../support/squid.js';
import { createTestCa, startTlsFront, type TestCa } from '../support/test-ca.js';
import { testTempDir } from '../support/temp.js';
import { hasTool } from '../support/tools.js';

const WEIGHTS = Buffer.alloc(300_000, 7).toString('latin1');
const CONFIG = '{"model_type":"gpt2"}';

/** Proxies and custom CAs against real components: squid in front of an https fixture hub with its own CA. */
describe.skipIf(!hasTool('squid') || !hasTool('openssl'))('proxies and custom CAs', () => {
  let hub: FixtureHub;
  let ca: TestCa;
  let front: { url: string; close(): Promise<void> };
  let squid: Squid;
  const frontHost = (): string => new URL(front.url).host;
  const connectsToFront = async (): Promise<number> => (await squid.accessLog()).filter((line) => line.includes(`CONNECT ${frontHost()}`)).length;

  beforeAll(async () => {
    hub = await startFixtureHub({ repos: [{ repoId: 'org/m', files: [{ path: 'config.json', content: CONFIG }, { path: 'weights.bin', content: WEIGHTS }] }] });
    ca = await createTestCa();
    front = await startTlsFront(ca, hub.endpoint);
    squid = await startSquid();
  });

  afterAll(async () => {
    await squid?.stop();
    await front?.close();
    await ca?.remove();
    await hub?.close();
  });

  async function pullInto(env: NodeJS.ProcessEnv, args: string[] = []): Promise<{ code: number; stdout: string; stderr: string; cache: string }> {
    const cache = await testTempDir('mf-proxy-cache-');
    const run = await runCli(['pull', 'org/m', '--quiet', ...args], { HF_ENDPOINT: front.url, HF_HUB_CACHE: cache, ...env });
    return { ...run, cache };
  }

  async function expectPulled(run: { code: number; stdout: string; stderr: string }): Promise<void> {
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const snapshot = run.stdout.trim();
    expect(await readFile(join(snapshot, 'config.json'), 'utf8')).toBe(CONFIG);
    expect(await readFile(join(snapshot, 'weights.bin'), 'latin1')).toBe(WEIGHTS);
  }

  it('pull goes through HTTPS_PROXY: squid logs the CONNECTs to the hub', async () => {
    const before = await connectsToFront();
    await expectPulled(await pullInto({ HTTPS_PROXY: squid.url }, ['--ca-file', ca.caFile]));
    expect(await connectsToFront()).toBeGreaterThan(before);
  });

  it('get goes through https_proxy (lower case) and --proxy overrides a wrong variable', async () => {
    const dir = await testTempDir('mf-proxy-get-');
    let before = await connectsToFront();
    const url = `${front.url}/org/m/resolve/main/weights.bin`;
    const viaEnv = await runCli(['get', url, '-o', join(dir, 'a.bin'), '--quiet'], { https_proxy: squid.url, SSL_CERT_FILE: ca.caFile });
    expect(viaEnv.stderr).toBe('');
    expect(await readFile(join(dir, 'a.bin'), 'latin1')).toBe(WEIGHTS);
    expect(await connectsToFront()).toBeGreaterThan(before);
    before = await connectsToFront();
    const viaFlag = await runCli(['get', url, '-o', join(dir, 'b.bin'), '--quiet', '--proxy', squid.url, '--ca-file', ca.caFile], { HTTPS_PROXY: 'http://127.0.0.1:1' });
    expect(viaFlag.stderr).toBe('');
    expect(await readFile(join(dir, 'b.bin'), 'latin1')).toBe(WEIGHTS);
    expect(await connectsToFront()).toBeGreaterThan(before);
  });

  it('plain-http downloads leave the fast path for the proxy when HTTP_PROXY applies to them', async () => {
    const dir = await testTempDir('mf-proxy-http-');
    const hubHost = new URL(hub.endpoint).host;
    const count = async (): Promise<number> => (await squid.accessLog()).filter((line) => line.includes(hubHost)).length;
    const before = await count();
    const run = await runCli(['get', `${hub.endpoint}/org/m/resolve/main/weights.bin`, '-o', join(dir, 'w.bin'), '--quiet'], { HTTP_PROXY: squid.url });
    expect(run.stderr).toBe('');
    expect(await readFile(join(dir, 'w.bin'), 'latin1')).toBe(WEIGHTS);
    expect(await count()).toBeGreaterThan(before);
  });

  it('NO_PROXY hosts bypass the proxy: squid logs nothing for them', async () => {
    const lines = (await squid.accessLog()).length;
    await expectPulled(await pullInto({ HTTPS_PROXY: squid.url, NO_PROXY: 'example.com, 127.0.0.1' }, ['--ca-file', ca.caFile]));
    await expectPulled(await pullInto({ HTTPS_PROXY: squid.url, no_proxy: `*.example.com,${frontHost()}` }, ['--ca-file', ca.caFile]));
    expect((await squid.accessLog()).length).toBe(lines);
  });

  it('a wrong proxy fails clearly, naming the proxy (credentials redacted) and its variable', async () => {
    const run = await pullInto({ HTTPS_PROXY: 'http://alice:s3cret@127.0.0.1:1' }, ['--ca-file', ca.caFile]);
    expect(run.code).toBe(6);
    expect(run.stderr).toContain('[ERR_PROXY]');
    expect(run.stderr).toContain('through the proxy http://***@127.0.0.1:1/ (from HTTPS_PROXY)');
    expect(run.stderr).not.toContain('s3cret');
    expect(run.stderr).not.toContain('    at ');
  });

  it('a proxy that refuses the tunnel is named with its answer', async () => {
    // squid allows only localhost; a CONNECT to a port nobody listens on gets squid's 503.
    const run = await runCli(['get', 'https://127.0.0.1:1/x.bin', '-o', join(await testTempDir('mf-proxy-refused-'), 'x'), '--quiet', '--proxy', squid.url], {});
    expect(run.code).toBe(6);
    expect(run.stderr).toContain(`through the proxy ${squid.url}/ (from --proxy): the proxy answered 503`);
  });

  for (const variable of ['SSL_CERT_FILE', 'REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE', 'NODE_EXTRA_CA_CERTS']) {
    it(`a pull from a hub signed by a private CA works with ${variable}`, async () => {
      await expectPulled(await pullInto({ [variable]: ca.caFile }));
    });
  }

  it('a pull from a hub signed by a private CA works with --ca-file', async () => {
    await expectPulled(await pullInto({}, ['--ca-file', ca.caFile]));
  });

  it('without the CA, the pull fails with ERR_TLS naming the host and what to set', async () => {
    const run = await pullInto({});
    expect(run.code).toBe(6);
    expect(run.stderr).toContain('[ERR_TLS]');
    expect(run.stderr).toContain(`The TLS certificate of ${frontHost()} could not be verified`);
    for (const name of ['--ca-file', 'SSL_CERT_FILE', 'REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE', 'NODE_EXTRA_CA_CERTS']) expect(run.stderr).toContain(name);
    expect(run.stderr).not.toContain('    at ');
  });

  it('an unreadable CA file is a usage error naming the file and its variable', async () => {
    const missing = join(await testTempDir('mf-proxy-ca-missing-'), 'nope.pem');
    const run = await pullInto({ REQUESTS_CA_BUNDLE: missing });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`Could not read the CA bundle ${missing} (from REQUESTS_CA_BUNDLE): ENOENT`);
  });

  it("serve's upstream goes through --proxy with --ca-file", async () => {
    const cache = await testTempDir('mf-proxy-serve-');
    const before = await connectsToFront();
    const cli = resolve(import.meta.dirname, '../../src/cli/run.ts');
    const child = spawn(process.execPath, ['--import', 'tsx', cli, 'serve', '--port', '0', '--cache-dir', cache, '--upstream', front.url, '--public', '*', '--proxy', squid.url, '--ca-file', ca.caFile], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const exited = new Promise((done) => child.once('exit', done));
    try {
      const url = await new Promise<string>((done, fail) => {
        let err = '';
        child.stderr.on('data', (chunk: Buffer) => {
          err += chunk.toString();
          const match = /listening on (http:\/\/\S+)/.exec(err);
          if (match?.[1]) done(match[1]);
        });
        void exited.then(() => fail(new Error(`serve exited early: ${err}`)));
      });
      const response = await fetch(`${url}/org/m/resolve/main/config.json`);
      expect(response.status).toBe(200);
      expect(await response.text()).toBe(CONFIG);
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    // squid logs a CONNECT when its tunnel closes: the mirror's keep-alive tunnel closed with it.
    expect(await connectsToFront()).toBeGreaterThan(before);
  });
});
