import { readFileSync } from 'node:fs';
import { BlockList, isIP } from 'node:net';
import { rootCertificates } from 'node:tls';
import type { Dispatcher } from 'undici';
import { ModelfetchError } from '../core/errors.js';
import { redactUrl } from '../core/redact.js';

/**
 * The one place that decides how a request leaves the process: through which proxy (if any) and
 * trusting which certificate authorities. Every client (hub API, downloads, redirects, ModelScope,
 * range reads, Xet, the mirror's upstream) asks here, per URL, so a redirect to another host is
 * decided again.
 *
 * Meaning follows curl and huggingface_hub (requests):
 * - https URLs use `https_proxy`/`HTTPS_PROXY`, http URLs `http_proxy`/`HTTP_PROXY`; both fall back
 *   to `all_proxy`/`ALL_PROXY`. Lower case wins. `--proxy` overrides them all.
 * - `no_proxy`/`NO_PROXY`: comma (or space) separated; `*` means no proxy at all; an entry matches
 *   the host itself and every subdomain (`.corp` and `*.corp` mean the same); `host:port` only that
 *   port; IPs and CIDR ranges (`10.0.0.0/8`, `::1`) match addresses. It applies to `--proxy` too.
 * - CA bundle: `--ca-file`, else `REQUESTS_CA_BUNDLE`, else `CURL_CA_BUNDLE`, else `SSL_CERT_FILE`.
 *   It is added to Node's built-in roots (not a replacement, so public hosts keep working), together
 *   with `NODE_EXTRA_CA_CERTS`, which Node itself reads only at process start.
 */

export interface ProxySetting {
  url: URL;
  /** Where it came from, for messages: `--proxy`, `HTTPS_PROXY`, `https_proxy`… */
  source: string;
}

export interface CaSetting {
  path: string;
  source: string;
}

export interface NetworkSettings {
  httpProxy?: ProxySetting;
  httpsProxy?: ProxySetting;
  noProxy: string;
  /** The bundle to add to the roots (flag or Python/curl variable). */
  ca?: CaSetting;
  /** NODE_EXTRA_CA_CERTS: re-added whenever we pass our own `ca`, which would otherwise drop it. */
  nodeExtraCa?: string;
}

export interface NetworkFlags {
  proxy?: string;
  caFile?: string;
}

export const CA_VARIABLES = ['REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE', 'SSL_CERT_FILE'] as const;

function firstSet(env: NodeJS.ProcessEnv, names: string[]): { value: string; name: string } | undefined {
  for (const name of names) {
    const value = env[name]?.trim();
    if (value) return { value, name };
  }
  return undefined;
}

function parseProxy(value: string, source: string): ProxySetting {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new ModelfetchError('ERR_USAGE', `The proxy ${redactUrl(withScheme)} from ${source} is not a valid URL.`, { hint: `Set ${source} to a URL like http://proxy.example.com:3128.` });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ModelfetchError('ERR_USAGE', `The proxy ${redactUrl(url.href)} from ${source} uses ${url.protocol}, which is not supported.`, { hint: `Use an http:// or https:// proxy in ${source}.` });
  }
  return { url, source };
}

/** The settings for `env` and the CLI flags (flags win). Throws ERR_USAGE for a malformed proxy URL. */
export function networkSettingsFrom(env: NodeJS.ProcessEnv, flags: NetworkFlags = {}): NetworkSettings {
  const settings: NetworkSettings = { noProxy: firstSet(env, ['no_proxy', 'NO_PROXY'])?.value ?? '' };
  if (flags.proxy) {
    settings.httpProxy = settings.httpsProxy = parseProxy(flags.proxy, '--proxy');
  } else {
    const all = firstSet(env, ['all_proxy', 'ALL_PROXY']);
    const http = firstSet(env, ['http_proxy', 'HTTP_PROXY']) ?? all;
    const https = firstSet(env, ['https_proxy', 'HTTPS_PROXY']) ?? all;
    if (http) settings.httpProxy = parseProxy(http.value, http.name);
    if (https) settings.httpsProxy = parseProxy(https.value, https.name);
  }
  const ca = flags.caFile ? { value: flags.caFile, name: '--ca-file' } : firstSet(env, [...CA_VARIABLES]);
  if (ca) settings.ca = { path: ca.value, source: ca.name };
  const extra = env.NODE_EXTRA_CA_CERTS?.trim();
  if (extra) settings.nodeExtraCa = extra;
  return settings;
}

function stripBrackets(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

function addressMatches(address: string, entry: string): boolean {
  const [base = '', prefixText] = entry.split('/');
  const family = isIP(base);
  const addressFamily = isIP(address);
  if (family === 0 || addressFamily !== family) return false;
  const type = family === 4 ? 'ipv4' : 'ipv6';
  const list = new BlockList();
  if (prefixText === undefined) list.addAddress(base, type);
  else if (/^\d+$/.test(prefixText)) list.addSubnet(base, Number(prefixText), type);
  else return false;
  return list.check(address, type);
}

/** Whether NO_PROXY (curl's meaning) exempts `hostname:port` from the proxy. */
export function bypassesProxy(hostname: string, port: number, noProxy: string): boolean {
  const host = stripBrackets(hostname.toLowerCase()).replace(/\.$/, '');
  for (const raw of noProxy.split(/[,\s]+/)) {
    let entry = raw.trim().toLowerCase();
    if (!entry) continue;
    if (entry === '*') return true;
    let entryPort: number | undefined;
    const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
    if (bracketed) {
      entry = bracketed[1] ?? '';
      entryPort = bracketed[2] === undefined ? undefined : Number(bracketed[2]);
    } else {
      const withPort = /^([^:]+):(\d+)$/.exec(entry);
      if (withPort) {
        entry = withPort[1] ?? '';
        entryPort = Number(withPort[2]);
      }
    }
    if (entryPort !== undefined && entryPort !== port) continue;
    if (isIP(host) !== 0) {
      if (addressMatches(host, entry)) return true;
      continue;
    }
    entry = entry.replace(/^\*?\./, '').replace(/\.$/, '');
    if (host === entry || host.endsWith(`.${entry}`)) return true;
  }
  return false;
}

const DEFAULT_PORTS: Record<string, number> = { 'http:': 80, 'https:': 443 };

/** The proxy `url` goes through under `settings`, or undefined for a direct connection. */
export function proxyFor(url: URL, settings: NetworkSettings): ProxySetting | undefined {
  const proxy = url.protocol === 'https:' ? settings.httpsProxy : url.protocol === 'http:' ? settings.httpProxy : undefined;
  if (!proxy) return undefined;
  const port = url.port ? Number(url.port) : (DEFAULT_PORTS[url.protocol] ?? 0);
  return bypassesProxy(url.hostname, port, settings.noProxy) ? undefined : proxy;
}

/** Whether these settings need a dispatcher of their own (otherwise Node's defaults do the job). */
export function needsOwnDispatcher(settings: NetworkSettings): boolean {
  return Boolean(settings.httpProxy || settings.httpsProxy || settings.ca);
}

function readPem(path: string, source: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error instanceof Error ? error.message : String(error));
    throw new ModelfetchError('ERR_USAGE', `Could not read the CA bundle ${path} (from ${source}): ${reason}.`, { hint: `Point ${source} at a readable PEM file of certificates, or unset it.`, cause: error });
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) {
    throw new ModelfetchError('ERR_USAGE', `The CA bundle ${path} (from ${source}) holds no PEM certificate.`, { hint: `Point ${source} at a PEM file ("-----BEGIN CERTIFICATE-----" blocks).` });
  }
  return text;
}

/** Node's roots plus the configured bundle (and NODE_EXTRA_CA_CERTS), or undefined for Node's defaults. */
export function trustedCas(settings: NetworkSettings): string[] | undefined {
  if (!settings.ca) return undefined;
  const extra = settings.nodeExtraCa ? [readPem(settings.nodeExtraCa, 'NODE_EXTRA_CA_CERTS')] : [];
  return [...rootCertificates, readPem(settings.ca.path, settings.ca.source), ...extra];
}

const AGENT_OPTIONS = { keepAliveTimeout: 10_000, headersTimeout: 60_000, bodyTimeout: 0 } as const;
const CONNECT_TIMEOUT_MS = 30_000;

/**
 * An undici dispatcher for `settings`: one pool per origin, direct or through a ProxyAgent for that
 * origin, chosen by `proxyFor` (so NO_PROXY has exactly one meaning). The CA bundle is read here, once.
 */
export async function createNetworkDispatcher(settings: NetworkSettings): Promise<Dispatcher> {
  const ca = trustedCas(settings);
  const { Agent, Pool, ProxyAgent } = await import('undici');
  const tls = { timeout: CONNECT_TIMEOUT_MS, ...(ca && { ca }) };
  return new Agent({
    ...AGENT_OPTIONS,
    connect: tls,
    factory: (origin, options) => {
      const proxy = proxyFor(new URL(origin), settings);
      if (!proxy) return new Pool(origin, options);
      return new ProxyAgent({ ...AGENT_OPTIONS, uri: proxy.url.href, requestTls: tls, proxyTls: tls, connect: tls });
    },
  });
}

let configured: NetworkSettings | undefined;
let shared: { settings: NetworkSettings; dispatcher: Promise<Dispatcher> } | undefined;

/** Sets the process-wide settings (the CLI does, from its env and flags); later requests use them. */
export function configureNetwork(settings: NetworkSettings): void {
  if (shared && shared.settings !== settings) {
    const old = shared.dispatcher;
    shared = undefined;
    void old.then((dispatcher) => dispatcher.close()).catch(() => undefined);
  }
  configured = settings;
}

/** The process-wide settings: what `configureNetwork` set, else the process environment. */
export function currentNetwork(): NetworkSettings {
  configured ??= networkSettingsFrom(process.env);
  return configured;
}

/** The process-wide dispatcher for `currentNetwork()`, created on first use. */
export function networkDispatcher(): Promise<Dispatcher> {
  const settings = currentNetwork();
  if (shared?.settings !== settings) {
    const dispatcher = createNetworkDispatcher(settings);
    // A bad CA file must fail the request that needed it, and again the next time, not stay cached.
    dispatcher.catch(() => {
      if (shared?.dispatcher === dispatcher) shared = undefined;
    });
    shared = { settings, dispatcher };
  }
  return shared.dispatcher;
}

/** The dispatcher a client without one of its own should pass to undici, or undefined for Node's fetch. */
export async function dispatcherForDefaults(): Promise<Dispatcher | undefined> {
  return needsOwnDispatcher(currentNetwork()) ? networkDispatcher() : undefined;
}

const TLS_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);
const PROXY_CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);

function errorChain(error: unknown): Array<Error & { code?: string }> {
  const chain: Array<Error & { code?: string }> = [];
  for (let current = error; current instanceof Error && chain.length < 5; current = current.cause) chain.push(current as Error & { code?: string });
  return chain;
}

export const CA_HINT_SOURCES = '--ca-file, SSL_CERT_FILE, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE or NODE_EXTRA_CA_CERTS';

/**
 * A coded error for a request to `target` that failed before any answer: certificate problems
 * (ERR_TLS, naming the host and what to set) and an unreachable or refusing proxy (ERR_PROXY, naming
 * the proxy, redacted, and its variable). Undefined for anything else (the caller's ERR_NETWORK).
 */
export function describeConnectFailure(error: unknown, target: string, settings: NetworkSettings = currentNetwork()): ModelfetchError | undefined {
  if (error instanceof ModelfetchError) return undefined;
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    return undefined;
  }
  const chain = errorChain(error);
  const tls = chain.find((e) => e.code !== undefined && TLS_CODES.has(e.code));
  if (tls) {
    const trusted = settings.ca ? ` The CA bundle from ${settings.ca.source} (${settings.ca.path}) does not vouch for it either.` : '';
    const hint =
      tls.code === 'ERR_TLS_CERT_ALTNAME_INVALID'
        ? `The certificate is for another name; check the URL (or the proxy intercepting TLS). If your network re-signs TLS with its own CA, set ${CA_HINT_SOURCES} to that CA's PEM file.`
        : `If your network uses its own certificate authority (a TLS-inspecting proxy, an internal hub), point ${CA_HINT_SOURCES} at its PEM bundle.`;
    return new ModelfetchError('ERR_TLS', `The TLS certificate of ${url.host} could not be verified (${tls.code}: ${tls.message}).${trusted}`, { url: target, hint, cause: error });
  }
  const proxy = proxyFor(url, settings);
  if (!proxy) return undefined;
  const refused = chain.find((e) => (e.code !== undefined && PROXY_CONNECT_CODES.has(e.code)) || /^Proxy response \(\d+\)/.test(e.message));
  if (!refused) return undefined;
  const status = /^Proxy response \((\d+)\)/.exec(refused.message)?.[1];
  const reason = status ? `the proxy answered ${status} to the tunnel request` : `${refused.code ?? ''} ${refused.message}`.trim();
  return new ModelfetchError('ERR_PROXY', `Could not reach ${url.host} through the proxy ${redactUrl(proxy.url.href)} (from ${proxy.source}): ${reason}.`, {
    url: target,
    hint: `Check ${proxy.source} (or pass --proxy URL); add ${url.hostname} to NO_PROXY if it must be reached directly.`,
    cause: error,
  });
}
