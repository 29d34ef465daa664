/**
 * Aborts a request when no byte arrived for `timeoutMs`. Checked a few times per timeout rather
 * than re-arming a timer per network chunk.
 */
export class StallWatch {
  private last = performance.now();
  private readonly timer: ReturnType<typeof setInterval>;
  stalled = false;

  constructor(timeoutMs: number, onStall: () => void) {
    this.timer = setInterval(() => {
      if (performance.now() - this.last >= timeoutMs) {
        this.stalled = true;
        this.stop();
        onStall();
      }
    }, Math.max(5, Math.floor(timeoutMs / 4)));
    this.timer.unref();
  }

  touch(): void {
    this.last = performance.now();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
