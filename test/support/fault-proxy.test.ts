import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { startFaultProxy, type FaultProxy } from './fault-proxy.js';
import { servedBuffer, startFixtureServer, type FixtureServer } from './fixture-server.js';

describe('fault proxy', () => {
  let server: FixtureServer | undefined;
  let proxy: FaultProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    await server?.close();
  });

  const setup = async (size = 200_000): Promise<Buffer> => {
    server = await startFixtureServer();
    const data = randomBytes(size);
    server.setFile('/f.bin', servedBuffer(data));
    proxy = await startFaultProxy({ port: server.port });
    return data;
  };
  const get = async (): Promise<Buffer> => Buffer.from(await (await fetch(`${proxy!.origin}/f.bin`)).arrayBuffer());

  it('forwards bytes unchanged and counts them', async () => {
    const data = await setup();
    expect((await get()).equals(data)).toBe(true);
    expect(proxy!.counters.connections).toBeGreaterThan(0);
    expect(proxy!.counters.bytesDownstream).toBeGreaterThan(data.length);
    expect(proxy!.counters.bytesUpstream).toBeGreaterThan(0);
    expect(proxy!.faultsInjected()).toBe(0);
  });

  it('delays, paces and slices without changing a byte', async () => {
    const data = await setup(100_000);
    proxy!.addToxic({ direction: 'downstream', toxic: { type: 'latency', latencyMs: 5, jitterMs: 5 } });
    proxy!.addToxic({ direction: 'downstream', toxic: { type: 'bandwidth', bytesPerSec: 20_000_000 } });
    proxy!.addToxic({ direction: 'downstream', toxic: { type: 'slicer', averageSize: 4096, sizeVariation: 2000, delayMs: 0 } });
    proxy!.addToxic({ direction: 'upstream', toxic: { type: 'slicer', averageSize: 7, delayMs: 1 } });
    expect((await get()).equals(data)).toBe(true);
    const { applied } = proxy!.counters;
    expect(applied.latency).toBeGreaterThan(0);
    expect(applied.bandwidth).toBeGreaterThan(0);
    expect(applied.slicer).toBeGreaterThan(1);
  });

  it('limit_data closes after exactly N bytes', async () => {
    await setup();
    proxy!.addToxic({ direction: 'downstream', toxic: { type: 'limit_data', bytes: 5000 } });
    await expect(get()).rejects.toThrow();
    expect(proxy!.counters.bytesDownstream).toBe(5000);
    expect(proxy!.counters.applied.limit_data).toBe(1);
    expect(proxy!.counters.closes).toBe(1);
  });

  it('reset_peer resets the connection, and removing the toxic heals it at run time', async () => {
    const data = await setup();
    const name = proxy!.addToxic({ direction: 'downstream', toxic: { type: 'reset_peer' } });
    await expect(get()).rejects.toThrow();
    expect(proxy!.counters.resets).toBeGreaterThan(0);
    proxy!.removeToxic(name);
    expect((await get()).equals(data)).toBe(true);
  });

  it('timeout swallows data and closes after the delay', async () => {
    await setup();
    proxy!.addToxic({ direction: 'downstream', toxic: { type: 'timeout', timeoutMs: 100 } });
    await expect(get()).rejects.toThrow();
    expect(proxy!.counters.bytesDownstream).toBe(0);
    expect(proxy!.counters.applied.timeout).toBe(1);
  });

  it('toxicity 0 never applies', async () => {
    const data = await setup();
    proxy!.addToxic({ direction: 'downstream', toxicity: 0, toxic: { type: 'reset_peer' } });
    expect((await get()).equals(data)).toBe(true);
    expect(proxy!.faultsInjected()).toBe(0);
  });
});
