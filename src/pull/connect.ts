import { ModelfetchError } from '../core/errors.js';
import type { Remote } from '../source/remote.js';
import { describeRateLimitWait } from '../transfer/rate-limit.js';
import type { RateLimitWait } from '../transfer/types.js';
import type { CheckedPull, PullOptions } from './options.js';

/**
 * What a pull does when a request waits for a rate-limit window, API call or download alike: a
 * warning line (so a pause of minutes never looks hung) and the engine's listener (the progress line).
 */
export function rateLimitWaitListener(options: PullOptions): (wait: RateLimitWait) => void {
  return (wait) => {
    options.onWarning?.(describeRateLimitWait(wait));
    options.transfer?.onRateLimitWait?.(wait);
  };
}

/** Opens the pull's source (loaded only when the network is needed, so a cache hit never loads it); refuses in offline mode. */
export async function connectRemote(pull: CheckedPull): Promise<Remote> {
  const { options } = pull;
  if (pull.offline) throw new ModelfetchError('ERR_OFFLINE', `${pull.repoId} is not fully cached and offline mode is on`, { hint: 'Run the same pull once without --offline / HF_HUB_OFFLINE=1.' });
  const remoteOptions = {
    repoId: pull.repoId,
    repoType: pull.repoType,
    env: pull.env,
    maxFiles: pull.maxFiles,
    ...(options.endpoint !== undefined && { endpoint: options.endpoint }),
    ...(options.token !== undefined && { token: options.token }),
    ...(options.dispatcher && { dispatcher: options.dispatcher }),
    ...(options.clock && { clock: options.clock }),
    ...(options.signal && { signal: options.signal }),
    ...(options.apiTimeoutMs !== undefined && { apiTimeoutMs: options.apiTimeoutMs }),
    onRateLimitWait: rateLimitWaitListener(options),
    // API retries are announced where the engine announces download retries.
    ...(options.transfer?.onRetry && { onRetry: options.transfer.onRetry }),
  };
  if (pull.modelscope) return (await import('../source/modelscope-remote.js')).modelScopeRemote(remoteOptions);
  return (await import('../source/hub-remote.js')).hubRemote(remoteOptions);
}
