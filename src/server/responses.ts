import type { IncomingMessage, ServerResponse } from 'node:http';
import { redactText } from '../core/redact.js';
import type { MirrorMetrics } from './metrics.js';
import type { Route } from './route.js';
import type { ThroughputMeter } from './throughput.js';

/**
 * How the mirror accounts for each request: body bytes counted for the metrics and the throughput
 * meter, and, when the response closes, its latency, its status and one access-log line.
 */

/** Per request, for the access log. */
export interface RequestRecord {
  cache: 'hit' | 'miss' | '-';
  bytes: number;
  route: Route['kind'] | 'bad' | 'refused';
}

export interface Responders {
  /** Counts body bytes sent for this request. */
  countBody(record: RequestRecord): (n: number) => void;
  /** A whole body with its length (none on HEAD). */
  sendBody(res: ServerResponse, record: RequestRecord, status: number, contentType: string, body: Buffer, headers?: Record<string, string>): void;
  sendJson(res: ServerResponse, record: RequestRecord, value: unknown, headers?: Record<string, string>): void;
  /** Text that is never cached (health, metrics, status). */
  sendText(res: ServerResponse, record: RequestRecord, status: number, contentType: string, text: string): void;
}

export function createResponders(metrics: MirrorMetrics, throughput: ThroughputMeter): Responders {
  const countBody = (record: RequestRecord) => (n: number) => {
    record.bytes += n;
    metrics.bytesServed.inc(n);
    throughput.add(n);
  };
  const sendBody: Responders['sendBody'] = (res, record, status, contentType, body, headers = {}) => {
    res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': String(body.length), ...headers });
    res.end(res.req.method === 'HEAD' ? undefined : body);
    if (res.req.method !== 'HEAD') countBody(record)(body.length);
  };
  return {
    countBody,
    sendBody,
    sendJson: (res, record, value, headers = {}) => sendBody(res, record, 200, 'application/json; charset=utf-8', Buffer.from(JSON.stringify(value)), headers),
    sendText: (res, record, status, contentType, text) => sendBody(res, record, status, contentType, Buffer.from(text), { 'Cache-Control': 'no-store' }),
  };
}

/** A fresh record for `req`, observed (latency, status, access log) when its response closes. */
export function observeRequest(req: IncomingMessage, res: ServerResponse, metrics: MirrorMetrics, log: (line: string) => void): RequestRecord {
  const started = process.hrtime.bigint();
  const record: RequestRecord = { cache: '-', bytes: 0, route: 'bad' };
  res.on('close', () => {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    metrics.latency.observe({ route: record.route }, seconds);
    metrics.requests.inc({ route: record.route, status: String(res.statusCode) });
    const short = res.writableFinished ? '' : ' aborted';
    log(redactText(`${new Date().toISOString()} ${req.method} ${req.url} ${res.statusCode} ${record.bytes} ${(seconds * 1000).toFixed(1)}ms ${record.cache}${short}`));
  });
  return record;
}
