import { homedir } from 'node:os';
import { basename, dirname } from 'node:path';
import { resolveHfHome } from '../core/env.js';
import { resolveModelScopeCache } from '../cache/modelscope-layout.js';
import { supervise, type HealthProbe, type SpawnChild, type StopSignal, type SupervisorResult } from './supervisor.js';
import type { Clock } from '../transfer/types.js';

/**
 * `modelfetch run`: make sure the lockfile's models are in the cache and verified, then run the
 * service offline against that cache under the supervisor. The model check is injected (the CLI
 * passes `syncLockfile`), and so is the process I/O, so the whole sequence is testable.
 */

export interface RunWithModelsOptions {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** Brings the cache in line with the lockfile and returns the hub cache dir (HF_HUB_CACHE for the child); throws, and nothing is started, when it cannot. */
  ensureModels: () => Promise<string>;
  restarts: number;
  healthUrl?: string;
  healthIntervalMs?: number;
  healthGraceMs?: number;
  unhealthyThreshold?: number;
  backoffMs?: number;
  backoffMaxMs?: number;
  stopTimeoutMs?: number;
  log: (line: string) => void;
  spawn: SpawnChild;
  clock: Clock;
  probe: HealthProbe;
  onStopSignal: (handler: (signal: StopSignal) => void) => () => void;
}

/** The environment the service sees: the synced cache, offline, so it never reaches for the network. */
export function modelEnvironment(env: NodeJS.ProcessEnv, cacheDir: string, home: string = homedir()): NodeJS.ProcessEnv {
  // A cache dir named `hub` is HF_HOME/hub by convention; otherwise HF_HOME stays where it was (token, xet cache).
  const hfHome = basename(cacheDir) === 'hub' ? dirname(cacheDir) : resolveHfHome(env, home);
  return {
    ...env,
    HF_HOME: hfHome,
    HF_HUB_CACHE: cacheDir,
    HUGGINGFACE_HUB_CACHE: cacheDir,
    HF_HUB_OFFLINE: '1',
    TRANSFORMERS_OFFLINE: '1',
    MODELSCOPE_CACHE: resolveModelScopeCache(env, home),
  };
}

export async function runWithModels(options: RunWithModelsOptions): Promise<SupervisorResult> {
  const cacheDir = await options.ensureModels();
  const { ensureModels: _ensure, env, ...rest } = options;
  options.log(`models ready in ${cacheDir}; starting ${[options.command, ...options.args].join(' ')}`);
  return supervise({ ...rest, env: modelEnvironment(env, cacheDir) });
}
