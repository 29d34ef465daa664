import { ModelfetchError } from './errors.js';

/**
 * huggingface_hub's behaviour variables that `pull` and `download` honour as it does, read in one
 * place: a boolean is on for 1/true/yes/on (any case), a timeout is seconds (decimals allowed).
 */

export function envFlagOn(value: string | undefined): boolean {
  return /^(1|true|yes|on)$/i.test(value ?? '');
}

/** HF_HUB_OFFLINE: no request at all. */
export function isOfflineEnv(env: NodeJS.ProcessEnv): boolean {
  return envFlagOn(env.HF_HUB_OFFLINE);
}

/** HF_HUB_DISABLE_PROGRESS_BARS: no progress bar or progress lines (results and errors still print). */
export function progressBarsDisabled(env: NodeJS.ProcessEnv): boolean {
  return envFlagOn(env.HF_HUB_DISABLE_PROGRESS_BARS);
}

function secondsToMs(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined || raw.trim() === '') return undefined;
  const seconds = Number(raw);
  if (!Number.isFinite(seconds) || seconds <= 0) {
    throw new ModelfetchError('ERR_USAGE', `${name}=${JSON.stringify(raw)} is not a number of seconds`, { hint: `Set ${name} to a positive number of seconds (e.g. 10), or unset it.` });
  }
  return Math.max(1, Math.round(seconds * 1000));
}

export interface HfEnvTimeouts {
  /** HF_HUB_DOWNLOAD_TIMEOUT: how long a download may go without a byte before it is retried (the engine's stall timeout). */
  stallTimeoutMs?: number;
  /** HF_HUB_ETAG_TIMEOUT: how long one hub metadata/API request may take. */
  apiTimeoutMs?: number;
}

export function hfEnvTimeouts(env: NodeJS.ProcessEnv): HfEnvTimeouts {
  const stallTimeoutMs = secondsToMs('HF_HUB_DOWNLOAD_TIMEOUT', env.HF_HUB_DOWNLOAD_TIMEOUT);
  const apiTimeoutMs = secondsToMs('HF_HUB_ETAG_TIMEOUT', env.HF_HUB_ETAG_TIMEOUT);
  return { ...(stallTimeoutMs !== undefined && { stallTimeoutMs }), ...(apiTimeoutMs !== undefined && { apiTimeoutMs }) };
}
