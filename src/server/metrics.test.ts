import { describe, expect, it } from 'vitest';
import type { SwarmStatus } from '../transfer/swarm/session.js';
import { MirrorMetrics } from './metrics.js';

describe('mirror metrics of the swarm', () => {
  it('reads the swarm status once per scrape, and every swarm metric shows that one status', async () => {
    const metrics = new MirrorMetrics();
    let reads = 0;
    metrics.observeSwarm((): SwarmStatus => {
      reads += 1;
      // Each read differs, so metrics from different reads would disagree.
      return { fromPeers: 100 * reads, fromWebSeeds: 10 * reads, piecesRejected: reads, peersDropped: reads, uploaded: 1000 * reads, peers: reads, downloading: reads, seeding: reads, port: 6881 };
    });
    const { body } = await metrics.render();
    expect(reads).toBe(1);
    for (const line of ['modelfetch_swarm_peer_bytes_total 100', 'modelfetch_swarm_webseed_bytes_total 10', 'modelfetch_swarm_uploaded_bytes_total 1000', 'modelfetch_swarm_pieces_rejected_total 1', 'modelfetch_swarm_peers_dropped_total 1', 'modelfetch_swarm_peers_connected 1', 'modelfetch_swarm_torrents{state="downloading"} 1', 'modelfetch_swarm_torrents{state="seeding"} 1']) {
      expect(body.split('\n')).toContain(line);
    }
    await metrics.render();
    expect(reads).toBe(2);
  });
});
