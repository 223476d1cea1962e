// Time and waiting: the one Clock the provider's parts share (tests pass a fake one,
// test/helpers/fake-clock.ts) and the one sleep. A sleep ends early when its signal
// aborts, and then leaves no timer and no listener behind: a stopped provider keeps
// no process alive.

/** Time and waiting, faked in tests that force an order of events. */
export interface Clock {
  now(): number;
  /** Resolves after `ms`, or as soon as `signal` aborts (callers check why they woke). */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** Waits `ms`, or until `signal` aborts; clears its timer and its listener either way. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    signal?.addEventListener("abort", done, { once: true });
  });
}

export const systemClock: Clock = { now: () => Date.now(), sleep };
