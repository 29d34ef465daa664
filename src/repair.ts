import { verifyCache, type RefetchTarget, type VerifyOptions, type VerifyReport } from './cache/verify.js';
import { pull, type PullOptions } from './pull/index.js';

/**
 * `verify --fix`: verifies, removes what is bad, pulls each damaged revision again (by commit, so
 * exactly the same bytes), removes the links that could not be restored, and verifies again.
 * Revisions are fetched from the Hub (endpoint and token as for `pull`).
 */
export type RepairOptions = Omit<VerifyOptions, 'fix' | 'refetch'> & Pick<PullOptions, 'endpoint' | 'token' | 'dispatcher' | 'connections' | 'signal'>;

export function repairCache(options: RepairOptions = {}): Promise<VerifyReport> {
  const { endpoint, token, dispatcher, connections, signal, ...verify } = options;
  const refetch = async (target: RefetchTarget): Promise<void> => {
    await pull({
      repo: `${target.repoId}@${target.commit}`,
      repoType: target.repoType,
      cacheDir: target.cacheDir,
      ...(verify.env && { env: verify.env }),
      ...(endpoint && { endpoint }),
      ...(token && { token }),
      ...(dispatcher && { dispatcher }),
      ...(connections !== undefined && { connections }),
      ...(signal && { signal }),
    });
  };
  return verifyCache({ ...verify, fix: true, refetch });
}
