import { describe, expect, it } from 'vitest';
import { bypassesProxy, describeConnectFailure, networkSettingsFrom, proxyFor } from './proxy.js';

describe('NO_PROXY (curl and huggingface_hub meaning)', () => {
  const cases: Array<[string, number, string, boolean]> = [
    ['huggingface.co', 443, '', false],
    ['huggingface.co', 443, '*', true],
    ['huggingface.co', 443, 'huggingface.co', true],
    ['cdn-lfs.huggingface.co', 443, 'huggingface.co', true],
    ['cdn-lfs.huggingface.co', 443, '.huggingface.co', true],
    ['cdn-lfs.huggingface.co', 443, '*.huggingface.co', true],
    ['nothuggingface.co', 443, 'huggingface.co', false],
    ['hub.corp', 443, 'example.com, hub.corp', true],
    ['hub.corp', 443, 'example.com hub.corp', true],
    ['hub.corp', 8443, 'hub.corp:443', false],
    ['hub.corp', 443, 'hub.corp:443', true],
    ['10.1.2.3', 80, '10.0.0.0/8', true],
    ['11.1.2.3', 80, '10.0.0.0/8', false],
    ['127.0.0.1', 80, '127.0.0.1', true],
    ['[::1]', 80, '::1', true],
    ['[::1]', 80, '[::1]:80', true],
    ['[::1]', 80, '[::1]:81', false],
    ['HUB.Corp.', 443, 'hub.corp', true],
  ];
  for (const [host, port, noProxy, bypass] of cases) {
    it(`${host}:${port} with NO_PROXY=${JSON.stringify(noProxy)} ${bypass ? 'bypasses' : 'uses'} the proxy`, () => {
      expect(bypassesProxy(host, port, noProxy)).toBe(bypass);
    });
  }
});

describe('proxy settings', () => {
  it('picks the proxy by scheme, lower case first, ALL_PROXY as the fallback', () => {
    const settings = networkSettingsFrom({ HTTPS_PROXY: 'http://upper:3128', https_proxy: 'http://lower:3128', ALL_PROXY: 'all.corp:8080' });
    expect(proxyFor(new URL('https://huggingface.co/x'), settings)).toMatchObject({ source: 'https_proxy' });
    expect(proxyFor(new URL('https://huggingface.co/x'), settings)?.url.host).toBe('lower:3128');
    expect(proxyFor(new URL('http://mirror.local/x'), settings)).toMatchObject({ source: 'ALL_PROXY' });
    expect(proxyFor(new URL('http://mirror.local/x'), settings)?.url.href).toBe('http://all.corp:8080/');
  });

  it('--proxy overrides the variables, and NO_PROXY still applies to it', () => {
    const settings = networkSettingsFrom({ HTTPS_PROXY: 'http://env:1', NO_PROXY: 'internal.corp' }, { proxy: 'http://flag:3128' });
    expect(proxyFor(new URL('https://huggingface.co/'), settings)?.source).toBe('--proxy');
    expect(proxyFor(new URL('http://huggingface.co/'), settings)?.source).toBe('--proxy');
    expect(proxyFor(new URL('https://hub.internal.corp/'), settings)).toBeUndefined();
  });

  it('no variable means no proxy', () => {
    expect(proxyFor(new URL('https://huggingface.co/'), networkSettingsFrom({}))).toBeUndefined();
  });

  it('refuses a proxy scheme it cannot use, naming the variable', () => {
    expect(() => networkSettingsFrom({ HTTPS_PROXY: 'ftp://p:21' })).toThrow(/HTTPS_PROXY/);
  });

  it('CA bundle precedence: --ca-file, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, SSL_CERT_FILE', () => {
    const env = { SSL_CERT_FILE: '/s', CURL_CA_BUNDLE: '/c', REQUESTS_CA_BUNDLE: '/r' };
    expect(networkSettingsFrom(env, { caFile: '/f' }).ca).toEqual({ path: '/f', source: '--ca-file' });
    expect(networkSettingsFrom(env).ca).toEqual({ path: '/r', source: 'REQUESTS_CA_BUNDLE' });
    expect(networkSettingsFrom({ SSL_CERT_FILE: '/s', CURL_CA_BUNDLE: '/c' }).ca).toEqual({ path: '/c', source: 'CURL_CA_BUNDLE' });
    expect(networkSettingsFrom({ SSL_CERT_FILE: '/s' }).ca).toEqual({ path: '/s', source: 'SSL_CERT_FILE' });
  });
});

describe('connect failures', () => {
  const refused = Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:3128'), { code: 'ECONNREFUSED' });

  it('an unreachable proxy is ERR_PROXY naming it (without its password) and its variable', () => {
    const settings = networkSettingsFrom({ HTTPS_PROXY: 'http://bob:hunter2@10.0.0.1:3128' });
    const error = describeConnectFailure(refused, 'https://huggingface.co/api/models/x', settings);
    expect(error?.code).toBe('ERR_PROXY');
    expect(error?.message).toContain('http://***@10.0.0.1:3128/ (from HTTPS_PROXY)');
    expect(JSON.stringify(error?.toJSON())).not.toContain('hunter2');
  });

  it('a refused connection without a proxy stays an ordinary network failure', () => {
    expect(describeConnectFailure(refused, 'https://huggingface.co/', networkSettingsFrom({}))).toBeUndefined();
    expect(describeConnectFailure(refused, 'https://huggingface.co/', networkSettingsFrom({ HTTPS_PROXY: 'http://p:1', NO_PROXY: 'huggingface.co' }))).toBeUndefined();
  });

  it('a certificate failure is ERR_TLS naming the host and the variables', () => {
    const tls = Object.assign(new Error('unable to verify the first certificate'), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
    const error = describeConnectFailure(new Error('fetch failed', { cause: tls }), 'https://hub.corp:8443/api', networkSettingsFrom({}));
    expect(error?.code).toBe('ERR_TLS');
    expect(error?.message).toContain('hub.corp:8443');
    expect(error?.hint).toContain('SSL_CERT_FILE');
    expect(error?.hint).toContain('--ca-file');
  });
});
