// The simulator's clock: wall time plus an offset that the control API can push forward, so a test can
// let servers finish booting without waiting. It reads time through the provider's Clock (src/clock.ts);
// the simulator only needs its now().
import type { Clock } from "../clock.ts";

/** The part of a Clock the simulator reads. */
export type SimTime = Pick<Clock, "now">;

/** A clock that can be pushed forward (POST /_sim/clock) on top of a base clock (default: Date.now). */
export class SimClock implements SimTime {
  offsetMs = 0;
  constructor(private readonly base: SimTime = { now: () => Date.now() }) {}
  now(): number {
    return this.base.now() + this.offsetMs;
  }
  advance(ms: number): void {
    this.offsetMs += ms;
  }
}

/** RFC 3339 with microseconds, UTC: 2019-05-27T16:45:32.241824Z. */
export function rfc3339Micro(ms: number, micros = 0): string {
  const iso = new Date(ms).toISOString(); // ...SS.mmmZ
  return `${iso.slice(0, -1)}${String(Math.floor(micros) % 1000).padStart(3, "0")}Z`;
}
