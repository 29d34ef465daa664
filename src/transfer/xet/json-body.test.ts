import { describe, expect, it } from 'vitest';
import type { HttpResponse, ResponseBody } from '../http.js';
import { readJsonBody } from './json-body.js';

/** A response whose body hands out every piece in one reused buffer, as the fast transport does. */
function reusedBufferResponse(text: string, pieceSize: number): HttpResponse {
  const data = Buffer.from(text);
  const shared = Buffer.alloc(pieceSize);
  async function* pieces(): AsyncGenerator<Buffer> {
    for (let at = 0; at < data.length; at += pieceSize) {
      const n = data.copy(shared, 0, at, at + pieceSize);
      yield shared.subarray(0, n);
    }
  }
  // Refilled only when the reader asks for the next piece, as the fast transport does (no read-ahead).
  const body: ResponseBody = {
    [Symbol.asyncIterator]: () => pieces(),
    destroyed: false,
    readableEnded: false,
    destroy: () => undefined,
    on: () => body,
    dump: async () => undefined,
  };
  return { status: 200, headers: {}, body, url: 'http://127.0.0.1/json', credentialed: false };
}

describe('readJsonBody', () => {
  it('reads a body that arrives in many pieces of one reused buffer (a large reconstruction answer)', async () => {
    const value = { terms: Array.from({ length: 2000 }, (_, i) => ({ hash: i.toString(16).padStart(64, '0'), range: { start: i, end: i + 1 } })) };
    const text = JSON.stringify(value);
    expect(text.length).toBeGreaterThan(200_000);
    expect(await readJsonBody(reusedBufferResponse(text, 65_536), 1024 * 1024)).toEqual(value);
  });

  it('refuses a body over its limit and one that is not JSON with ERR_BAD_RESPONSE', async () => {
    await expect(readJsonBody(reusedBufferResponse(JSON.stringify({ a: 'x'.repeat(5000) }), 1000), 4096)).rejects.toMatchObject({ code: 'ERR_BAD_RESPONSE' });
    await expect(readJsonBody(reusedBufferResponse('{"a": ', 1000), 4096)).rejects.toMatchObject({ code: 'ERR_BAD_RESPONSE' });
  });
});
