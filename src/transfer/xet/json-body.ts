import { ModelfetchError } from '../../core/errors.js';
import { discardBody, type HttpResponse } from '../http.js';

/** Reads a JSON response body of at most `maxBytes`; a larger or unparsable body is ERR_BAD_RESPONSE. */
export async function readJsonBody(response: HttpResponse, maxBytes: number): Promise<unknown> {
  const parts: Buffer[] = [];
  let total = 0;
  try {
    for await (const part of response.body) {
      total += part.length;
      if (total > maxBytes) {
        throw new ModelfetchError('ERR_BAD_RESPONSE', `${response.url} sent more than ${maxBytes} bytes of JSON.`, { url: response.url });
      }
      // A copy: the transport may reuse a piece's memory for its next read.
      parts.push(Buffer.from(part));
    }
  } catch (error) {
    discardBody(response);
    if (error instanceof ModelfetchError) throw error;
    throw new ModelfetchError('ERR_NETWORK', `The connection to ${response.url} failed while reading its answer.`, { url: response.url, cause: error });
  }
  try {
    return JSON.parse(Buffer.concat(parts).toString('utf8')) as unknown;
  } catch {
    throw new ModelfetchError('ERR_BAD_RESPONSE', `${response.url} did not answer with JSON.`, { url: response.url });
  }
}
