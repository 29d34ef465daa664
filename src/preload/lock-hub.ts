import type { Dispatcher } from 'undici';
import { ModelfetchError } from '../errors.js';
import { readHfToken, resolveHfEndpoint, resolveHfSnapshot } from '../source/hf.js';
import type { ResolveRevision } from './lock.js';

/** The resolver `lock` uses: the Hub source (or a mirror speaking its API). */
export async function resolveWithHub(options: { endpoint?: string; token?: string; env?: NodeJS.ProcessEnv; dispatcher?: Dispatcher; signal?: AbortSignal }): Promise<ResolveRevision> {
  const env = options.env ?? process.env;
  const endpoint = resolveHfEndpoint(options.endpoint, env);
  const token = options.token ?? (await readHfToken(undefined, env));
  return async (model) => {
    if (model.source !== 'hf') {
      throw new ModelfetchError('ERR_USAGE', `Cannot lock ${model.repo}: source ${model.source} is not supported by lock yet`, { hint: 'Use source: hf (the Hub or a mirror of it).' });
    }
    const snapshot = await resolveHfSnapshot({ repoType: model.repoType, repoId: model.repo }, model.revision, {
      endpoint,
      ...(token !== undefined && { token }),
      ...(options.dispatcher && { dispatcher: options.dispatcher }),
      ...(options.signal && { signal: options.signal }),
    });
    return { commit: snapshot.commit, files: snapshot.files };
  };
}
