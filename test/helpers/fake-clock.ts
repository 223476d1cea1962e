// A clock the test moves by hand: now() stands still until advance(), and
// sleep() resolves only when advance() passes its time, in the order the
// sleepers would wake. Together with settle() a test decides the order of
// every event; nothing depends on how fast the machine is.
import type { Clock } from "../../src/clock";

/** Lets every promise continuation that is ready run (no timers involved). */
export async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r));
}

export class FakeClock implements Clock {
  private t: number;
  private sleepers: { at: number; seq: number; wake: () => void }[] = [];
  private seq = 0;

  constructor(start = Date.parse("2026-12-01T00:00:00Z")) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  /** Like the system clock's: an abort wakes the sleeper at once and leaves nothing behind. */
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const sleeper = {
        at: this.t + Math.max(0, ms),
        seq: this.seq++,
        wake: () => {
          signal?.removeEventListener("abort", aborted);
          resolve();
        },
      };
      const aborted = () => {
        this.sleepers = this.sleepers.filter((s) => s !== sleeper);
        resolve();
      };
      signal?.addEventListener("abort", aborted, { once: true });
      this.sleepers.push(sleeper);
    });
  }

  /** How many sleeps are waiting. */
  get sleeping(): number {
    return this.sleepers.length;
  }

  /** Moves time forward by `ms`, waking each sleeper due on the way at its own time, and settles after each. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      this.sleepers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.sleepers[0];
      if (!next || next.at > end) break;
      this.sleepers.shift();
      this.t = Math.max(this.t, next.at);
      next.wake();
      await settle();
    }
    this.t = end;
    await settle();
  }
}
