import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ModelfetchError } from './errors.js';
import { redactUrl } from './redact.js';

/**
 * Where things are, from the environment the way huggingface_hub reads it: the cache root, HF_HOME,
 * the hub endpoint and the token. Commands and library calls resolve them here, at the edge.
 */

/** Cache root: HF_HUB_CACHE, else HF_HOME/hub, else XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub. */
export function resolveCacheDir(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HUGGINGFACE_HUB_CACHE) return env.HUGGINGFACE_HUB_CACHE;
  return join(resolveHfHome(env, home), 'hub');
}

/** HF_HOME, else XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface. */
export function resolveHfHome(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  if (env.HF_HOME) return env.HF_HOME;
  return join(env.XDG_CACHE_HOME || join(home, '.cache'), 'huggingface');
}

export const DEFAULT_HF_ENDPOINT = 'https://huggingface.co';

/** `--endpoint`, else HF_ENDPOINT, else huggingface.co; validated and without trailing slash. */
export function resolveHfEndpoint(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const raw = flag || env.HF_ENDPOINT || DEFAULT_HF_ENDPOINT;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ModelfetchError('ERR_USAGE', `Invalid hub endpoint ${JSON.stringify(redactUrl(raw))}`, { hint: 'Use a URL such as https://huggingface.co or https://hf-mirror.com (HF_ENDPOINT / --endpoint).' });
  }
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.username || url.password || url.search || url.hash) {
    throw new ModelfetchError('ERR_USAGE', `Invalid hub endpoint ${JSON.stringify(redactUrl(raw))}`, { hint: 'Use an http(s) URL without credentials, query or fragment; pass the token with HF_TOKEN or --token.' });
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

/** `--token`, else HF_TOKEN (or the legacy HUGGING_FACE_HUB_TOKEN), else the file at HF_TOKEN_PATH, else $HF_HOME/token. */
export async function readHfToken(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const direct = flag ?? env.HF_TOKEN ?? env.HUGGING_FACE_HUB_TOKEN;
  if (direct !== undefined) return direct.trim() || undefined;
  const path = env.HF_TOKEN_PATH || join(resolveHfHome(env), 'token');
  const content = await readFile(path, 'utf8').catch(() => undefined);
  return content?.trim() || undefined;
}
