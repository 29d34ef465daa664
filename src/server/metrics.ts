import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The mirror's Prometheus metrics, in a registry of its own so several servers in one process never collide. */
export class MirrorMetrics {
  readonly registry = new Registry();
  readonly bytesServed = new Counter({ name: 'modelfetch_served_bytes_total', help: 'Body bytes sent to clients', registers: [this.registry] });
  readonly upstreamBytes = new Counter({ name: 'modelfetch_upstream_bytes_total', help: 'Bytes fetched from the upstream hub', registers: [this.registry] });
  readonly cacheHits = new Counter({ name: 'modelfetch_cache_hits_total', help: 'File requests answered from the cache', registers: [this.registry] });
  readonly cacheMisses = new Counter({ name: 'modelfetch_cache_misses_total', help: 'File requests that needed the upstream hub', registers: [this.registry] });
  readonly pullsInFlight = new Gauge({ name: 'modelfetch_pulls_in_flight', help: 'Upstream downloads in progress', registers: [this.registry] });
  readonly openConnections = new Gauge({ name: 'modelfetch_open_connections', help: 'Client connections open now (refused ones not counted)', registers: [this.registry] });
  readonly refusedConnections = new Counter({ name: 'modelfetch_refused_connections_total', help: 'Connections answered 503 because --max-connections were open', registers: [this.registry] });
  readonly sendTimeouts = new Counter({ name: 'modelfetch_send_timeouts_total', help: 'Responses cut off because the client took no bytes for --send-timeout', registers: [this.registry] });
  readonly requests = new Counter({ name: 'modelfetch_http_requests_total', help: 'Requests answered, by route and status', labelNames: ['route', 'status'] as const, registers: [this.registry] });
  readonly swarmTorrentsServed = new Counter({ name: 'modelfetch_swarm_torrents_served_total', help: 'Torrent files served (serve --swarm)', registers: [this.registry] });
  readonly swarmAnnounces = new Counter({ name: 'modelfetch_swarm_announces_total', help: 'Tracker announces answered (serve --swarm)', registers: [this.registry] });
  readonly swarmPeers = new Gauge({ name: 'modelfetch_swarm_peers', help: 'Peers the tracker knows, over every torrent, as of the last announce', registers: [this.registry] });
  readonly latency = new Histogram({
    name: 'modelfetch_http_request_duration_seconds',
    help: 'Time from request to the end of the response, by route',
    labelNames: ['route'] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600],
    registers: [this.registry],
  });

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'modelfetch_' });
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  /** Counter values for the status page. */
  async snapshot(): Promise<{ bytesServed: number; upstreamBytes: number; hits: number; misses: number; pullsInFlight: number }> {
    const value = async (metric: Counter | Gauge): Promise<number> => (await metric.get()).values.reduce((sum, v) => sum + v.value, 0);
    return {
      bytesServed: await value(this.bytesServed),
      upstreamBytes: await value(this.upstreamBytes),
      hits: await value(this.cacheHits),
      misses: await value(this.cacheMisses),
      pullsInFlight: await value(this.pullsInFlight),
    };
  }
}
