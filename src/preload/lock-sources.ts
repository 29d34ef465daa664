import type { Dispatcher } from 'undici';
import { ModelfetchError } from '../core/errors.js';
import type { ResolveRevision } from './lock.js';

/**
 * The resolver `lock` uses: the Hub source for `hf` (or a mirror speaking its API, `--endpoint` /
 * HF_ENDPOINT), the ModelScope source for `modelscope` (MODELSCOPE_DOMAIN). Source modules are
 * loaded only for the sources the manifest uses.
 */
export function resolveFromSources(options: { endpoint?: string; token?: string; env?: NodeJS.ProcessEnv; dispatcher?: Dispatcher; signal?: AbortSignal }): ResolveRevision {
  const env = options.env ?? process.env;
  const transport = { ...(options.dispatcher && { dispatcher: options.dispatcher }), ...(options.signal && { signal: options.signal }) };
  return async (model) => {
    if (model.source === 'hf') {
      const [hf, { readHfToken, resolveHfEndpoint }] = await Promise.all([import('../source/hf.js'), import('../core/env.js')]);
      const token = options.token ?? (await readHfToken(undefined, env));
      const snapshot = await hf.resolveHfSnapshot({ repoType: model.repoType, repoId: model.repo }, model.revision, {
        endpoint: resolveHfEndpoint(options.endpoint, env),
        ...(token !== undefined && { token }),
        ...transport,
      });
      return { commit: snapshot.commit, files: snapshot.files };
    }
    if (model.source === 'modelscope') {
      const ms = await import('../source/modelscope.js');
      const token = ms.readModelScopeToken(undefined, env);
      const snapshot = await ms.resolveModelScopeSnapshot(model.repo, model.revision, { endpoint: ms.resolveModelScopeEndpoint(undefined, env), ...(token !== undefined && { token }), ...transport });
      return { commit: snapshot.commit, files: snapshot.files };
    }
    throw new ModelfetchError('ERR_USAGE', `Cannot lock ${model.repo}: source ${model.source} is not supported by lock yet`, { hint: 'Use source: hf (the Hub or a mirror of it) or modelscope.' });
  };
}
