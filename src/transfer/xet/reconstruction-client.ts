import { isModelfetchError, ModelfetchError } from '../../core/errors.js';
import { discardBody, requestFollowingRedirects, statusError, type HttpResponse } from '../http.js';
import type { ResolvedOptions } from '../options.js';
import { retryDecision } from '../retry-policy.js';
import { readJsonBody } from './json-body.js';
import { parseReconstruction, type Reconstruction } from './reconstruction.js';
import type { XetTokenProvider } from './xet-token.js';

/**
 * Asks the CAS how to rebuild one file: v2 first, v1 for good after a 404/501; a 401 refreshes the
 * access token once; 429/5xx/resets back off and retry. When signed URLs expire, every worker asks
 * for a fresh reconstruction through `refresh`, which asks the CAS once for all of them, and the new
 * answer must describe the file exactly as the first did.
 */

/** Reconstruction JSON above this is refused (a 1 TiB file needs a few MB). */
const MAX_RECONSTRUCTION_BYTES = 256 * 1024 * 1024;

/** Sleeps before the next attempt when `error` is worth retrying; rethrows it otherwise. */
export async function backoffOrThrow(error: unknown, attempt: number, url: string, options: ResolvedOptions): Promise<void> {
  if (options.signal?.aborted) throw options.signal.reason;
  const failure = isModelfetchError(error) ? error : new ModelfetchError('ERR_NETWORK', `The connection to ${url} failed: ${error instanceof Error ? error.message : String(error)}`, { url, cause: error });
  const decision = retryDecision({
    attempt,
    maxAttempts: options.maxAttempts,
    code: failure.code,
    ...(failure.status !== undefined && { status: failure.status }),
    ...(failure.retryAfterMs !== undefined && { retryAfterMs: failure.retryAfterMs }),
    random: options.random(),
  });
  if (!decision.retry) throw failure;
  await options.clock.sleep(decision.delayMs, options.signal);
}

export class ReconstructionClient {
  private latest: Reconstruction | undefined;
  /** How many answers have been taken (the first is generation 1). */
  generation = 0;
  /** How many reconstructions were asked for (more than 1 after URL expiry). */
  asked = 0;
  private refreshing: Promise<void> | undefined;
  private preferV1 = false;

  /** `range`: only file bytes [start, end] (inclusive); the CAS answers with the chunks that hold them. */
  constructor(
    private readonly fileHash: string,
    private readonly size: number,
    private readonly token: XetTokenProvider,
    private readonly options: ResolvedOptions,
    private readonly range?: { start: number; end: number },
  ) {}

  /** The latest answer; `refresh(0)` must have resolved first. */
  get current(): Reconstruction {
    if (!this.latest) throw new Error('no reconstruction yet');
    return this.latest;
  }

  /** Asks for a new reconstruction unless another caller already did since `seenGeneration`. */
  async refresh(seenGeneration: number): Promise<void> {
    if (this.generation > seenGeneration) return;
    this.refreshing ??= this.fetch()
      .then((reconstruction) => {
        if (this.latest) this.checkSameTerms(this.latest, reconstruction);
        this.latest = reconstruction;
        this.generation += 1;
      })
      .finally(() => (this.refreshing = undefined));
    await this.refreshing;
  }

  /** A reconstruction asked for again must describe the same file the same way. */
  private checkSameTerms(old: Reconstruction, fresh: Reconstruction): void {
    const same = fresh.offsetIntoFirstRange === old.offsetIntoFirstRange && fresh.terms.length === old.terms.length && fresh.terms.every((t, i) => {
      const before = old.terms[i];
      return before !== undefined && before.xorbHash === t.xorbHash && before.chunkStart === t.chunkStart && before.chunkEnd === t.chunkEnd && before.unpackedLength === t.unpackedLength;
    });
    if (!same) throw new ModelfetchError('ERR_ETAG_CHANGED', `The Xet reconstruction of ${this.fileHash} changed during the download.`, { hint: 'Run the same command again.' });
  }

  private async fetch(): Promise<Reconstruction> {
    let refreshedToken = false;
    let refreshNext = false;
    for (let attempt = 1; ; attempt++) {
      const version: 1 | 2 = this.preferV1 ? 1 : 2;
      const token = await this.token(refreshNext);
      refreshNext = false;
      const url = `${token.casUrl}/v${version}/reconstructions/${this.fileHash}`;
      let response: HttpResponse | undefined;
      try {
        response = await requestFollowingRedirects(this.options.transport, {
          url,
          headers: { authorization: `Bearer ${token.accessToken}`, accept: 'application/json' },
          credentialOrigin: new URL(token.casUrl).origin,
          ...(this.range && { extraHeaders: { range: `bytes=${this.range.start}-${this.range.end}` } }),
          ...(this.options.signal && { signal: this.options.signal }),
        });
        if (response.status === 200) {
          this.asked += 1;
          const json = await readJsonBody(response, MAX_RECONSTRUCTION_BYTES);
          if (!this.range) return parseReconstruction(json, { version, url, expectedLength: this.size });
          return parseReconstruction(json, { version, url, expectedLength: this.range.end - this.range.start + 1, partial: true });
        }
        discardBody(response);
        if (version === 2 && (response.status === 404 || response.status === 501)) {
          this.preferV1 = true;
          attempt -= 1;
          continue;
        }
        if (response.status === 401 && !refreshedToken) {
          refreshedToken = true;
          refreshNext = true;
          attempt -= 1;
          continue;
        }
        throw statusError(response.status, url, response.headers, this.options.clock.now());
      } catch (error) {
        await backoffOrThrow(error, attempt, url, this.options);
      }
    }
  }
}
