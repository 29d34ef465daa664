import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { startFixtureCas, type FixtureCas } from '../support/fixture-cas.js';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';
import { serveModelScope } from '../support/fixture-modelscope.js';
import { startFixtureServer, type FixtureServer } from '../support/fixture-server.js';
import { buildSafetensors, f32Tensor } from '../support/safetensors.js';
import { startSquid, type Squid } from '../support/squid.js';
import { createTestCa, startTlsFront, type TestCa } from '../support/test-ca.js';
import { testTempDir } from '../support/temp.js';
import { hasTool } from '../support/tools.js';

const WEIGHTS = Buffer.alloc(300_000, 7).toString('latin1');
const CONFIG = '{"model_type":"gpt2"}';
const XET_WEIGHTS = randomBytes(400_000);
const SAFETENSORS = buildSafetensors([f32Tensor('lm_head.weight', Array.from({ length: 64 }, (_, i) => i), [8, 8]), f32Tensor('embed.weight', [1, 2, 3, 4])]);
const MS_COMMIT = 'b'.repeat(40);

/** Proxies and custom CAs against real components: squid in front of an https fixture hub with its own CA. */
describe.skipIf(!hasTool('squid') || !hasTool('openssl'))('proxies and custom CAs', () => {
  let hub: FixtureHub;
  let ca: TestCa;
  let front: { url: string; close(): Promise<void> };
  let squid: Squid;
  // The Xet CAS and a ModelScope, each behind an https front of its own signed by the same CA.
  let cas: FixtureCas;
  let casFront: { url: string; close(): Promise<void> };
  let modelscope: FixtureServer;
  let msFront: { url: string; close(): Promise<void> };
  const frontHost = (): string => new URL(front.url).host;
  const connectsTo = async (url: string): Promise<number> => (await squid.accessLog()).filter((line) => line.includes(`CONNECT ${new URL(url).host}`)).length;
  const connectsToFront = (): Promise<number> => connectsTo(front.url);

  beforeAll(async () => {
    cas = await startFixtureCas({ chunksPerXorb: 4 });
    hub = await startFixtureHub({
      cas,
      repos: [
        { repoId: 'org/m', files: [{ path: 'config.json', content: CONFIG }, { path: 'weights.bin', content: WEIGHTS }] },
        { repoId: 'org/xet', files: [{ path: 'config.json', content: CONFIG }, { path: 'w.bin', content: XET_WEIGHTS, xet: true }] },
        // Served by the hub itself (not LFS), so every range read goes to the https front.
        { repoId: 'org/st', files: [{ path: 'model.safetensors', content: SAFETENSORS, lfs: false }] },
      ],
    });
    ca = await createTestCa();
    front = await startTlsFront(ca, hub.endpoint);
    casFront = await startTlsFront(ca, cas.server.origin);
    cas.setPublicOrigin(casFront.url);
    modelscope = await startFixtureServer();
    serveModelScope(modelscope, [{ repoId: 'Qwen/Mini', commit: MS_COMMIT, files: [{ path: 'config.json', content: Buffer.from(CONFIG) }, { path: 'model.bin', content: Buffer.from(WEIGHTS, 'latin1') }] }]);
    msFront = await startTlsFront(ca, modelscope.origin);
    squid = await startSquid();
  });

  afterAll(async () => {
    await squid?.stop();
    await front?.close();
    await casFront?.close();
    await msFront?.close();
    await modelscope?.close();
    await ca?.remove();
    await hub?.close();
    await cas?.close();
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

  /** `serve` with these flags, in its own process, until `use` is done; killed after it (squid then logs its tunnels). */
  async function withServe(args: string[], use: (url: string) => Promise<void>): Promise<void> {
    const cache = await testTempDir('mf-proxy-serve-');
    const cli = resolve(import.meta.dirname, '../../src/cli/run.ts');
    const child = spawn(process.execPath, ['--import', 'tsx', cli, 'serve', '--port', '0', '--cache-dir', cache, ...args], {
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
      await use(url);
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
  }

  it("serve's upstream goes through --proxy with --ca-file", async () => {
    const before = await connectsToFront();
    await withServe(['--upstream', front.url, '--public', '*', '--proxy', squid.url, '--ca-file', ca.caFile], async (url) => {
      const response = await fetch(`${url}/org/m/resolve/main/config.json`);
      expect(response.status).toBe(200);
      expect(await response.text()).toBe(CONFIG);
    });
    // squid logs a CONNECT when its tunnel closes: the mirror's keep-alive tunnel closed with it.
    expect(await connectsToFront()).toBeGreaterThan(before);
  });

  it('a Xet-backed pull goes through the proxy to the hub and the CAS (reconstruction, xorbs); the proxy\'s credentials are never printed', async () => {
    const before = await connectsTo(casFront.url);
    const xorbsBefore = cas.xorbBytesServed();
    const cache = await testTempDir('mf-proxy-xet-');
    const proxy = squid.url.replace('http://', 'http://alice:s3cret@');
    const run = await runCli(['pull', 'org/xet', '--json'], { HF_ENDPOINT: front.url, HF_HUB_CACHE: cache, HTTPS_PROXY: proxy, SSL_CERT_FILE: ca.caFile });
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout) as { path: string; bytesBySource: { xet: number; plain: number } };
    expect(result.bytesBySource.xet).toBeGreaterThan(0);
    expect(await readFile(join(result.path, 'w.bin'))).toEqual(XET_WEIGHTS);
    expect(cas.xorbBytesServed()).toBeGreaterThan(xorbsBefore);
    expect(await connectsTo(casFront.url)).toBeGreaterThan(before);
    expect(run.stdout + run.stderr).not.toContain('s3cret');
  });

  it("serve's upstream takes a Xet-backed file from the CAS through the proxy", async () => {
    const before = await connectsTo(casFront.url);
    const xorbsBefore = cas.xorbBytesServed();
    await withServe(['--upstream', front.url, '--public', '*', '--proxy', squid.url, '--ca-file', ca.caFile], async (url) => {
      const response = await fetch(`${url}/org/xet/resolve/main/w.bin`);
      expect(response.status).toBe(200);
      expect(Buffer.from(await response.arrayBuffer())).toEqual(XET_WEIGHTS);
    });
    expect(cas.xorbBytesServed()).toBeGreaterThan(xorbsBefore);
    expect(await connectsTo(casFront.url)).toBeGreaterThan(before);
  });

  it('a ModelScope pull goes through the proxy with the CA: its API and its files', async () => {
    const before = await connectsTo(msFront.url);
    const msCache = await testTempDir('mf-proxy-ms-');
    const run = await runCli(['pull', 'ms://Qwen/Mini', '--quiet', '--ca-file', ca.caFile], { MODELSCOPE_DOMAIN: msFront.url, MODELSCOPE_CACHE: msCache, HTTPS_PROXY: squid.url });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(await readFile(join(run.stdout.trim(), 'model.bin'), 'latin1')).toBe(WEIGHTS);
    expect(modelscope.requests.some((r) => r.url.startsWith('/api/v1/models/Qwen/Mini/repo/files'))).toBe(true);
    expect(await connectsTo(msFront.url)).toBeGreaterThan(before);
  });

  it('inspect reads safetensors headers with ranged reads through the proxy', async () => {
    hub.resetLogs();
    const before = await connectsToFront();
    const run = await runCli(['inspect', 'org/st', '--json', '--cache-dir', await testTempDir('mf-proxy-inspect-')], { HF_ENDPOINT: front.url, HTTPS_PROXY: squid.url, SSL_CERT_FILE: ca.caFile });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect((JSON.parse(run.stdout) as { tensors: number }).tensors).toBe(2);
    const reads = hub.hub.requests.filter((r) => r.url.endsWith('/model.safetensors'));
    expect(reads.length).toBeGreaterThan(0);
    expect(reads.every((r) => /^bytes=0-\d+$/.test(String(r.headers.range)) && r.bodyBytes <= SAFETENSORS.length)).toBe(true);
    expect(await connectsToFront()).toBeGreaterThan(before);
  });

  it('a get whose connection drops mid-file resumes with a ranged request through the proxy', async () => {
    hub.resetLogs();
    const dir = await testTempDir('mf-proxy-resume-');
    hub.hub.addFault({ times: 1, match: (req) => (req.url ?? '').endsWith('/weights.bin') && req.headers.range !== 'bytes=0-0', fault: { resetAfterBytes: 100_000 } });
    const before = await connectsToFront();
    const run = await runCli(['get', `${front.url}/org/m/resolve/main/weights.bin`, '-o', join(dir, 'w.bin'), '--quiet', '--proxy', squid.url, '--ca-file', ca.caFile], {});
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(await readFile(join(dir, 'w.bin'), 'latin1')).toBe(WEIGHTS);
    const ranges = hub.hub.requests.filter((r) => r.url.endsWith('/weights.bin')).map((r) => String(r.headers.range));
    // After the drop, only the rest was asked for.
    expect(ranges.some((range) => /^bytes=[1-9]\d*-/.test(range))).toBe(true);
    expect(await connectsToFront()).toBeGreaterThan(before);
  });
});
