import type { Dispatcher } from 'undici';
import { ModelfetchError } from '../core/errors.js';
import { isOfflineEnv } from '../core/hf-env.js';
import { parseRepoReference } from '../core/repo-ref.js';
import type { SpaceCheckOptions } from '../core/disk-space.js';
import type { RepoFile, RepoType } from '../core/types.js';
import { assertSafeRelativePath, isSha1Hex } from '../core/validate.js';
import { resolveMaxFiles } from '../source/listing-limit.js';
import { parseTargetDtype } from '../safetensors/plan.js';
import type { Clock, ProgressEvent, TransferJob, TransferOptions, TransferResult } from '../transfer/types.js';
import type { SwarmSession } from '../transfer/swarm/session.js';

/** `pull`'s options, and the one place they are checked: the CLI builds them and calls `checkPullOptions` too, so each flag has one message. */

export type TransferFilesFn = (jobs: TransferJob[], options?: TransferOptions) => Promise<TransferResult[]>;

/** A transfer progress event, with the repo file it is about. */
export interface PullProgressEvent extends ProgressEvent {
  repoId: string;
  /** The repo-relative path of the file (the first one, when several paths share the same content). */
  path: string;
}

export interface PullOptions {
  /** `org/name` or `org/name@revision`. */
  repo: string;
  /** Overrides an `@revision` in `repo`. Default `main`. */
  revision?: string;
  repoType?: RepoType;
  /** Exact repo paths to pull (default: every file). */
  files?: string[];
  /**
   * A trusted listing of `revision`, which must then be a commit (e.g. from a lockfile): no hub call
   * resolves or lists it, and only these sizes and digests are accepted, whatever the hub says.
   */
  listing?: RepoFile[];
  /** Globs; a pattern without `/` matches the file name at any depth. */
  include?: string[];
  exclude?: string[];
  /** The hub cache root (default HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub). */
  cacheDir?: string;
  /** Write real files into this folder instead of the cache (huggingface_hub's `local_dir` mode). */
  localDir?: string;
  /** Connection budget per host (1 to 256). */
  connections?: number;
  /** No request at all; everything must be cached (also HF_HUB_OFFLINE=1). */
  offline?: boolean;
  /** Download nothing; fail with ERR_INCOMPLETE when something is missing. */
  check?: boolean;
  /** Skip the free-space check made before the first byte (ERR_NO_SPACE when the missing bytes do not fit). */
  ignoreDiskSpace?: boolean;
  /** Free bytes of the folder the check asks about; default `statfs` (injectable for tests). */
  freeBytes?: SpaceCheckOptions['freeBytes'];
  /** With `localDir`: replace files edited since they were downloaded (kept, with a warning, otherwise). */
  forceDownload?: boolean;
  /** The command that fetches what `check` or `offline` found missing, for the hint (default: this pull, without those flags). */
  fixCommand?: string;
  /** One-line warnings (the hub unreachable and the cache used instead; a local-dir file kept because it was edited). */
  onWarning?: (message: string) => void;
  endpoint?: string;
  /** The token (default: HF_TOKEN, its file, …); `null` sends none and reads none from the environment (the caller decided). */
  token?: string | null;
  env?: NodeJS.ProcessEnv;
  dispatcher?: Dispatcher;
  clock?: Clock;
  signal?: AbortSignal;
  /** Transfer progress; each event names the repo file it is about. */
  onProgress?: (event: PullProgressEvent) => void;
  /**
   * The same events for the files fetched through `swarm` (bytes done are piece-verified bytes,
   * connections are peers). Apart from onProgress because their temp file is no prefix a reader
   * may follow (pieces land in any order): a progress line wants them, a streaming server not.
   */
  onSwarmProgress?: (event: PullProgressEvent) => void;
  /** Told once what will be fetched, before any byte moves. */
  onPlan?: (plan: PullPlan) => void;
  /** The most files a repo listing may have (default MODELFETCH_MAX_FILES, else 200,000); a larger one is refused while it streams in. */
  maxFiles?: number;
  /** How long one hub API request may take (the CLI sets it from HF_HUB_ETAG_TIMEOUT); none by default. */
  apiTimeoutMs?: number;
  /** Engine overrides (segment sizes, timeouts) for tests and tuning. */
  transfer?: Omit<TransferOptions, 'connections' | 'dispatcher' | 'clock' | 'signal' | 'onProgress'>;
  /** The transfer engine; default `transferFiles` from ./transfer/index.js. */
  transferFiles?: TransferFilesFn;
  /** Where files are listed and fetched: the Hugging Face Hub (default) or ModelScope (`ms://org/name` implies it). */
  source?: 'hf' | 'modelscope';
  /**
   * ModelScope only: 'modelscope' (default) writes where the modelscope library reads
   * (MODELSCOPE_CACHE, or --cache-dir); 'hf' writes the hub cache like any Hub pull.
   */
  layout?: 'hf' | 'modelscope';
  /** Then convert the safetensors weights to f16/bf16 into a derived snapshot (`path` is then that one). */
  dtype?: string;
  /** With `dtype`: tensor-name globs left as they are. */
  keep?: string[];
  /** false (`--no-xet`, also HF_HUB_DISABLE_XET=1): Hub files stored in Xet come through the plain path. */
  xet?: boolean;
  /** Told one line when a Xet download fell back to the plain path (default: stderr). */
  onXetFallback?: (line: string) => void;
  /**
   * BitTorrent (`pull --swarm`, a node agent's pull-through): blobs the endpoint (a `serve --swarm`
   * mirror) has torrents for come from peers and the mirror as web seed, the rest over HTTP. The
   * caller owns the session (its engine and the seeding) and closes it.
   */
  swarm?: SwarmSession;
}

export interface PullPlan {
  repoId: string;
  commit: string;
  files: number;
  cacheHits: number;
  toFetch: number;
  bytesToFetch: number;
}

export interface PullResult {
  /** The snapshot folder (or the local dir): point the application here. */
  path: string;
  repoId: string;
  repoType: RepoType;
  revision: string;
  commit: string;
  /** Files in the pulled selection. */
  files: number;
  /** Files that were already complete (no transfer). */
  cacheHits: number;
  /** Files fetched by this pull (or by a concurrent one this pull waited for). */
  downloaded: number;
  bytesFetched: number;
  bytesResumed: number;
  /** File bytes that cost no download: Xet chunks from the chunk cache or fetched once for several places. */
  bytesDeduplicated: number;
  /** Network bytes by the path that fetched them (`peers` and `webSeeds` with a swarm: BitTorrent peers, and the mirror as web seed). */
  bytesBySource: { xet: number; plain: number; peers?: number; webSeeds?: number };
  elapsedMs: number;
  /** What `dtype` converted. */
  converted?: import('../safetensors/convert.js').ConvertResult;
}

/** The options once checked, with the reference parsed and defaults filled in. */
export interface CheckedPull {
  options: PullOptions;
  env: NodeJS.ProcessEnv;
  repoId: string;
  repoType: RepoType;
  /** The revision to resolve, and whether the user named one (the fix command repeats it only then). */
  revision: string;
  revisionGiven: boolean;
  modelscope: boolean;
  /** ModelScope files go where the modelscope library reads them. */
  modelscopeLayout: boolean;
  offline: boolean;
  /** `files`, validated and without a leading `./`. */
  requested: string[];
  maxFiles: number;
}

function usage(message: string, hint?: string): ModelfetchError {
  return new ModelfetchError('ERR_USAGE', message, hint === undefined ? {} : { hint });
}

/** A connection budget from a flag or an option: a whole number from 1 to 256. */
export function parseConnections(value: string | number): number {
  const connections = Number(value);
  if (!Number.isInteger(connections) || connections < 1 || connections > 256) throw usage(`Invalid --connections ${JSON.stringify(String(value))}`, 'Use a whole number from 1 to 256.');
  return connections;
}

/**
 * The checks of the flags alone, which need no reference parsed: the CLI runs them while it reads its
 * arguments (so a bad flag is a usage error before anything starts), and `pull` runs them again.
 */
export function checkPullFlags(options: Omit<PullOptions, 'repo'>): void {
  if (options.repoType !== undefined && !['model', 'dataset', 'space'].includes(options.repoType)) throw usage(`Unknown --repo-type ${JSON.stringify(options.repoType)}`, 'Use model, dataset or space.');
  if (options.cacheDir && options.localDir) throw usage('--cache-dir and --local-dir exclude each other', 'Pick the cache (shared, deduplicated) or a plain folder of real files.');
  if (options.connections !== undefined) parseConnections(options.connections);
  if (options.source !== undefined && options.source !== 'hf' && options.source !== 'modelscope') throw usage(`Unknown --source ${JSON.stringify(options.source)}`, 'Use hf or modelscope (or write the repo as ms://org/name).');
  if (options.layout !== undefined && options.layout !== 'hf' && options.layout !== 'modelscope') throw usage(`Unknown --layout ${JSON.stringify(options.layout)}`, 'Use modelscope (where the modelscope library reads) or hf (the hub cache).');
  if (options.dtype) parseTargetDtype(options.dtype);
}

/** Every check of `pull`'s options, before anything is read or written; one message per flag. */
export function checkPullOptions(options: PullOptions): CheckedPull {
  checkPullFlags(options);
  const env = options.env ?? process.env;
  const repoType = options.repoType ?? 'model';
  const modelscope = options.source === 'modelscope' || options.repo.startsWith('ms://');
  const reference = parseRepoReference(modelscope ? options.repo.replace(/^ms:\/\//, '') : options.repo);
  const revision = options.revision ?? reference.revision ?? (modelscope ? 'master' : 'main');
  if (!revision) throw usage(`Empty revision in ${JSON.stringify(options.repo)}`, 'Write org/name@main or org/name@<commit>.');
  if (modelscope && repoType !== 'model') throw usage('ModelScope pulls are models only', 'Drop --repo-type.');
  if (options.dtype && modelscope && !options.localDir && (options.layout ?? 'modelscope') === 'modelscope') {
    // The modelscope library takes a file for upstream when `.msc` lists it at the commit (older versions do not hash it), and its layout has no place for a derived copy.
    throw usage('--dtype cannot convert inside a ModelScope cache: the modelscope library would take the converted files for the upstream ones, and that layout has no place for a converted copy', 'Add --local-dir DIR (the files are converted in place there) or --layout hf (a derived snapshot in the hub cache).');
  }
  if (options.listing && !isSha1Hex(revision)) throw usage(`A pinned listing needs a commit as revision, not ${JSON.stringify(revision)}`);
  return {
    options,
    env,
    repoId: reference.repoId,
    repoType,
    revision,
    revisionGiven: reference.revision !== undefined,
    modelscope,
    modelscopeLayout: modelscope && (options.layout ?? 'modelscope') === 'modelscope',
    offline: options.offline === true || isOfflineEnv(env),
    requested: (options.files ?? []).map((path) => assertSafeRelativePath(path.replace(/^\.\//, ''), 'the command line')),
    maxFiles: resolveMaxFiles(options.maxFiles, env),
  };
}
