import type { Dispatcher } from 'undici';
import type { RepoFile, RepoType } from '../core/types.js';
import type { Clock, RetryEvent, TransferJob } from '../transfer/types.js';

/**
 * What `pull` needs from a source, whatever it is: the commit a revision names, the files of a
 * commit, and where a file's bytes come from. The Hub (`hub-remote.ts`) and ModelScope
 * (`modelscope-remote.ts`) implement it; a transport such as Xet or the swarm plugs in under `transfer`.
 */
export interface Remote {
  /** The commit a revision (branch, tag or commit) names now. */
  fetchCommit(revision: string): Promise<string>;
  /** Every file at `commit`, validated. */
  listFiles(commit: string): Promise<RepoFile[]>;
  /** The transfer job of one file at `commit`, without its size, digest and temp path: URLs, headers, the identity its resume journal is keyed by, and whether it may come through Xet. */
  job(commit: string, file: RepoFile): Pick<TransferJob, 'urls' | 'identity' | 'headers' | 'xet'>;
  /**
   * Where a modelfetch mirror at this source's endpoint serves the file's torrent (`serve --swarm`),
   * with the headers for that origin only. Sources that cannot be such a mirror leave it out.
   */
  swarmTorrent?(commit: string, file: RepoFile): { url: string; headers: Record<string, string> };
}

/** What a remote is opened with (defaults, such as the endpoint and token, are resolved by the remote from `env`). */
export interface RemoteOptions {
  /** A validated `org/name`. */
  repoId: string;
  repoType: RepoType;
  env: NodeJS.ProcessEnv;
  endpoint?: string;
  /** `null`: send no token and read none from the environment. */
  token?: string | null;
  dispatcher?: Dispatcher;
  clock?: Clock;
  signal?: AbortSignal;
  /** The most files a listing may have; a larger one is refused while it streams in. */
  maxFiles: number;
  /** How long one API request may take; none by default. */
  apiTimeoutMs?: number;
  /** One-line warnings (a rate-limit wait). */
  onWarning?: (message: string) => void;
  /** Told before each wait to retry a failed API call. */
  onRetry?: (event: RetryEvent) => void;
}
