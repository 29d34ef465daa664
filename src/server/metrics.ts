import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { SwarmStatus } from '../transfer/swarm/session.js';

/** The mirror's Prometheus metrics, in a registry of its own so several servers in one process never collide. */
export class MirrorMetrics {
  readonly registry = new Registry();
  /** The swarm session's counters (the agent side of --swarm), read at each scrape. */
  private swarmStatus: (() => SwarmStatus) | undefined;
  /** The status read once for the scrape in progress, which every swarm metric reports from. */
  private scraped: SwarmStatus | undefined;
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
  readonly swarmPeerBytes = this.swarmCounter('modelfetch_swarm_peer_bytes_total', 'Bytes received from BitTorrent peers (before piece checks)', (s) => s.fromPeers);
  readonly swarmWebSeedBytes = this.swarmCounter('modelfetch_swarm_webseed_bytes_total', 'Bytes received from web seeds (the upstream mirror) through the swarm', (s) => s.fromWebSeeds);
  readonly swarmUploadedBytes = this.swarmCounter('modelfetch_swarm_uploaded_bytes_total', 'Bytes sent to BitTorrent peers by the blobs seeded now', (s) => s.uploaded);
  readonly swarmPiecesRejected = this.swarmCounter('modelfetch_swarm_pieces_rejected_total', 'Pieces that failed their SHA-1 check and were discarded', (s) => s.piecesRejected);
  readonly swarmPeersDropped = this.swarmCounter('modelfetch_swarm_peers_dropped_total', 'Peers disconnected and refused for sending a piece that failed its SHA-1 check', (s) => s.peersDropped);
  readonly swarmPeersConnected = this.swarmGauge('modelfetch_swarm_peers_connected', 'BitTorrent peers connected now, over every download and seed', (s) => s.peers);
  readonly swarmTorrents = new Gauge({
    name: 'modelfetch_swarm_torrents',
    help: 'Torrents this server is in now, by state (downloading, seeding)',
    labelNames: ['state'] as const,
    registers: [this.registry],
    collect: ((read) =>
      function (this: Gauge<'state'>) {
        const status = read();
        this.set({ state: 'downloading' }, status?.downloading ?? 0);
        this.set({ state: 'seeding' }, status?.seeding ?? 0);
      })(() => this.readSwarm()),
  });
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

  /** Reports the swarm session's counters from now on. */
  observeSwarm(status: () => SwarmStatus): void {
    this.swarmStatus = status;
  }

  private swarmCounter(name: string, help: string, pick: (status: SwarmStatus) => number): Counter {
    const read = (): SwarmStatus | undefined => this.readSwarm();
    return new Counter({
      name,
      help,
      registers: [this.registry],
      collect(this: Counter) {
        const status = read();
        if (!status) return;
        // The session keeps running totals; the counter shows them.
        this.reset();
        this.inc(pick(status));
      },
    });
  }

  private swarmGauge(name: string, help: string, pick: (status: SwarmStatus) => number): Gauge {
    const read = (): SwarmStatus | undefined => this.readSwarm();
    return new Gauge({
      name,
      help,
      registers: [this.registry],
      collect(this: Gauge) {
        const status = read();
        this.set(status ? pick(status) : 0);
      },
    });
  }

  private readSwarm(): SwarmStatus | undefined {
    return this.scraped ?? this.swarmStatus?.();
  }

  async render(): Promise<{ contentType: string; body: string }> {
    // One status for the whole scrape (it walks every torrent): the swarm metrics agree with each other.
    this.scraped = this.swarmStatus?.();
    try {
      return { contentType: this.registry.contentType, body: await this.registry.metrics() };
    } finally {
      this.scraped = undefined;
    }
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
