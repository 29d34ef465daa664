/** Bytes per second over the last few whole seconds, from per-second buckets (no timers). */
export class ThroughputMeter {
  private readonly buckets = new Map<number, number>();

  constructor(
    private readonly windowSeconds = 5,
    private readonly now: () => number = Date.now,
  ) {}

  add(bytes: number): void {
    const second = Math.floor(this.now() / 1000);
    this.buckets.set(second, (this.buckets.get(second) ?? 0) + bytes);
    for (const key of this.buckets.keys()) if (key < second - this.windowSeconds) this.buckets.delete(key);
  }

  rate(): number {
    const current = Math.floor(this.now() / 1000);
    let total = 0;
    // The current second is partial; count the last full seconds plus it, divided by the time covered.
    for (const [second, bytes] of this.buckets) if (second >= current - this.windowSeconds) total += bytes;
    const elapsed = this.windowSeconds + (this.now() % 1000) / 1000;
    return total / elapsed;
  }
}
