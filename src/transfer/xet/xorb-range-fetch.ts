import { isModelfetchError, ModelfetchError } from '../../core/errors.js';
import { discardBody, headerValue, requestFollowingRedirects, statusError, type HttpResponse } from '../http.js';
import type { ResolvedOptions } from '../options.js';
import { StallWatch } from '../stall-watch.js';
import { ChunkStreamDecoder, decodeChunkBody } from './chunk-codec.js';
import type { XorbRangeFetch } from './reconstruction.js';

/**
 * One GET of a xorb byte range: under the engine's connection budget, with exactly the signed Range
 * header and nothing of ours (a signed URL carries its own authorization). The answer must be a 206
 * for exactly that range; the chunks are decoded as the bytes stream in and handed on one at a time,
 * so memory stays at a few chunks. A range with no byte for stallTimeoutMs is aborted (ERR_STALL), as
 * the engine's segments are; a short, long or undecodable body is an error the caller may retry.
 */

export interface XorbRangeHandlers {
  /** Network bytes as they arrive. */
  onReceived: (bytes: number) => void;
  /** A decoded chunk, by its index in the xorb, in order. */
  onChunk: (chunkIndex: number, data: Buffer) => Promise<void>;
}

export async function fetchXorbRange(fetch: XorbRangeFetch, options: ResolvedOptions, handlers: XorbRangeHandlers): Promise<void> {
  const release = await options.budget.acquire(new URL(fetch.url).host, options.signal);
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(options.signal?.reason);
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const watch = new StallWatch(options.stallTimeoutMs, () => controller.abort(new Error('stall')));
  let response: HttpResponse | undefined;
  try {
    response = await requestFollowingRedirects(options.transport, {
      url: fetch.url,
      credentialed: false,
      extraHeaders: { range: fetch.rangeHeader },
      signal: controller.signal,
    });
    const started = response;
    controller.signal.addEventListener('abort', () => discardBody(started), { once: true });
    watch.touch();
    if (response.status !== 206) {
      discardBody(response);
      if (response.status === 200) throw new ModelfetchError('ERR_RANGE_IGNORED', `${fetch.url} ignored the Range header of a xorb request.`, { url: fetch.url, status: 200 });
      throw statusError(response.status, fetch.url, response.headers, options.clock.now());
    }
    const contentRange = headerValue(response.headers, 'content-range') ?? '';
    if (!new RegExp(`^bytes ${fetch.byteStart}-${fetch.byteEnd}/(\\d+|\\*)$`).test(contentRange)) {
      discardBody(response);
      throw new ModelfetchError('ERR_BAD_RANGE', `${fetch.url} answered range "${contentRange}" for ${fetch.rangeHeader}.`, { url: fetch.url });
    }
    await decodeBody(response, fetch, watch, handlers);
  } catch (error) {
    if (options.signal?.aborted) throw options.signal.reason;
    if (watch.stalled) throw new ModelfetchError('ERR_STALL', `No data from ${fetch.url} for ${options.stallTimeoutMs} ms.`, { url: fetch.url, cause: error });
    throw error;
  } finally {
    watch.stop();
    options.signal?.removeEventListener('abort', onAbort);
    if (response && !response.body.readableEnded) discardBody(response);
    release();
  }
}

/** Decodes the chunks of a 206 body as they arrive; the body must hold exactly the chunks asked for. */
async function decodeBody(response: HttpResponse, fetch: XorbRangeFetch, watch: StallWatch, handlers: XorbRangeHandlers): Promise<void> {
  const expectedBytes = fetch.byteEnd - fetch.byteStart + 1;
  const decoder = new ChunkStreamDecoder(fetch.url);
  let received = 0;
  let chunkIndex = fetch.chunkStart;
  try {
    for await (const piece of response.body) {
      watch.touch();
      received += piece.length;
      handlers.onReceived(piece.length);
      if (received > expectedBytes) throw new ModelfetchError('ERR_BAD_RANGE', `${fetch.url} sent more than the ${expectedBytes} bytes of ${fetch.rangeHeader}.`, { url: fetch.url });
      for (const { header, body } of decoder.push(piece)) {
        if (chunkIndex >= fetch.chunkEnd) throw new ModelfetchError('ERR_BAD_RESPONSE', `${fetch.url} holds more than the chunks ${fetch.chunkStart}..${fetch.chunkEnd} it was asked for.`, { url: fetch.url });
        await handlers.onChunk(chunkIndex, decodeChunkBody(header, body, fetch.url));
        chunkIndex += 1;
      }
    }
  } catch (error) {
    if (isModelfetchError(error)) throw error;
    throw new ModelfetchError('ERR_NETWORK', `The connection to ${fetch.url} failed after ${received} of ${expectedBytes} bytes.`, { url: fetch.url, cause: error });
  }
  if (received < expectedBytes || decoder.pendingBytes > 0 || chunkIndex < fetch.chunkEnd) {
    throw new ModelfetchError('ERR_NETWORK', `${fetch.url} closed the connection after ${received} of ${expectedBytes} bytes.`, { url: fetch.url, expected: expectedBytes, found: received });
  }
}
