// The provider's own lists (rules 13 and 15 of reconciler.ts): one background lister.
// It lists when accepted creations are held (at the end of the startup grace, and with
// a bounded backoff while listing fails), and, when the reconciler asks it to keep the
// view fresh, whenever CA has been quiet for half of maxViewAge: /status, the metrics
// and CA's next answers are then never older than maxViewAge while the API answers.
// Each list is Refresh's own (one at a time: a list under way is shared). It also logs
// a hold once when it starts, with its reason, and again when it ends.
import { type Clock } from "./clock";
import { log } from "./log";
import type { HoldReason } from "./snapshot";

/** First and longest wait between the provider's own lists while they fail. */
const OWN_LIST_FIRST_WAIT_MS = 5_000;
const OWN_LIST_MAX_WAIT_MS = 60_000;

/** What the lister decides from, read anew each time it wakes. */
export interface ListerState {
  /** A list that started after the startup grace has been applied. */
  settled: boolean;
  /** The view is younger than maxViewAge. */
  fresh: boolean;
  /** When the startup grace ends (ms since the epoch). */
  graceEndsAt: number;
  /** Start of the last applied list (ms since the epoch; -Infinity before the first). */
  appliedListStartedAt: number;
  /** Queued creations, and the same by group ("a=2,b=1"). */
  held: number;
  heldByGroup: string;
}

export interface OwnListsDeps {
  clock: Clock;
  state(): ListerState;
  /** Refresh's list, shared with one under way; rejects when it failed and the view is stale. */
  list(): Promise<void>;
  /** The startup grace and maxViewAge, for the sentences of the log and /status. */
  graceMs: number;
  maxViewAgeMs: number;
  /** After start(), keep the view fresh: list when the last applied list started this long ago (ms). Before: list only while creations are held. */
  keepFreshMs?: number;
}

export class OwnLists {
  /** The hold under way: logged when it starts and when it ends. */
  private hold: { reason: HoldReason; since: number; creates: number } | null = null;
  private checkQueued = false;
  private running = false;
  private stopped = false;
  /** start() was called: keep the view fresh too. */
  private keeping = false;
  /** Aborted to wake the lister early (something changed) or for good (stop). */
  private nap = new AbortController();

  constructor(private readonly deps: OwnListsDeps) {}

  /** Starts listing to keep the view fresh (with keepFreshMs); holds start the lister by themselves. */
  start(): void {
    this.keeping = true;
    this.wake();
  }

  stop(): void {
    this.stopped = true;
    this.nap.abort();
  }

  /** Why queued creations may not go out now, or null when they may (or none is queued). */
  reason(): HoldReason | null {
    const s = this.deps.state();
    if ((s.settled && s.fresh) || s.held === 0) return null;
    return s.settled ? "stale-view" : "startup-grace";
  }

  /** The hold as /status shows it. */
  current(): { reason: HoldReason; since: number; detail: string } | null {
    const reason = this.reason();
    return reason ? { reason, since: this.hold?.since ?? this.deps.clock.now(), detail: this.detail(reason) } : null;
  }

  detail(reason: HoldReason, viewAgeSeconds = this.viewAgeSeconds()): string {
    const { graceEndsAt } = this.deps.state();
    if (reason === "startup-grace") {
      const until = new Date(graceEndsAt).toISOString();
      const grace = `startupGrace ${Math.round(this.deps.graceMs / 1000)}s after the start`;
      if (this.deps.clock.now() < graceEndsAt) return `requests a previous instance sent may still land until ${until} (${grace}); creations go out after a list that starts past then`;
      return `the startup grace ended at ${until} (${grace}) and no list since has succeeded; creations go out after one does`;
    }
    const age = Number.isFinite(viewAgeSeconds) ? `${Math.round(viewAgeSeconds)}s old` : "not loaded";
    return `the view of the cloud is ${age} (limit ${Math.round(this.deps.maxViewAgeMs / 1000)}s); creations go out after the next good list`;
  }

  private viewAgeSeconds(): number {
    return (this.deps.clock.now() - this.deps.state().appliedListStartedAt) / 1000;
  }

  /** Called when creations stay queued: one check after the current event (an IncreaseSize accepts several). */
  scheduleCheck(): void {
    if (this.checkQueued) return;
    this.checkQueued = true;
    queueMicrotask(() => {
      this.checkQueued = false;
      this.check();
    });
  }

  /** Logs a hold when it starts (or its reason changes) and when it ends, and wakes the lister. */
  check(): void {
    if (this.stopped) return;
    const reason = this.reason();
    const now = this.deps.clock.now();
    const s = this.deps.state();
    if (reason && (!this.hold || this.hold.reason !== reason)) {
      const fields = { creates: s.held, reason, groups: s.heldByGroup };
      if (reason === "startup-grace") log.info(`creations are held: ${this.detail(reason)} (the provider lists by itself then)`, fields);
      else log.warn(`creations are held: ${this.detail(reason)} (the provider lists by itself until one succeeds)`, fields);
      this.hold = { reason, since: this.hold?.since ?? now, creates: s.held };
    } else if (reason && this.hold) {
      this.hold.creates = Math.max(this.hold.creates, s.held);
    } else if (!reason && this.hold) {
      const heldSeconds = Math.round((now - this.hold.since) / 100) / 10;
      if (s.settled && s.fresh) log.info("held creations released: they go out now", { creates: this.hold.creates, heldSeconds });
      else log.info("no creation is held any more: the held ones were cancelled", { heldSeconds });
      this.hold = null;
    }
    this.wake();
  }

  /** Something changed: the lister decides anew now. */
  private wake(): void {
    if (this.running) this.nap.abort();
    else this.ensureRunning();
  }

  private ensureRunning(): void {
    if (this.running || this.stopped || this.due(undefined) === null) return;
    this.running = true;
    this.run()
      .catch((e: unknown) => log.error("the provider's own listing stopped unexpectedly", { error: String(e) }))
      .finally(() => {
        this.running = false;
      })
      .catch(() => {});
  }

  /**
   * Milliseconds until the next own list (0: now), or null when none is needed. `failed` is the
   * backoff after a list that did not land: when it ends (ms since the epoch).
   */
  private due(retryAt: number | undefined): number | null {
    const now = this.deps.clock.now();
    const s = this.deps.state();
    const held = this.reason() !== null;
    if (held && now < s.graceEndsAt) return s.graceEndsAt - now;
    const fresh = this.keeping ? this.deps.keepFreshMs : undefined;
    if (!held && fresh === undefined) return null;
    if (retryAt !== undefined) return Math.max(0, retryAt - now);
    if (held) return 0;
    return Math.max(0, s.appliedListStartedAt + fresh! - now);
  }

  private async run(): Promise<void> {
    let backoff = 0;
    let retryAt: number | undefined;
    while (!this.stopped) {
      const wait = this.due(retryAt);
      if (wait === null) return; // nothing to do: a new hold starts the lister again
      if (wait > 0) {
        const before = this.deps.state().appliedListStartedAt;
        this.nap = new AbortController();
        await this.deps.clock.sleep(wait, this.nap.signal);
        // A list landed meanwhile (CA's Refresh): the backoff is over.
        if (this.deps.state().appliedListStartedAt !== before) retryAt = undefined;
        continue;
      }
      const before = this.deps.state().appliedListStartedAt;
      const heldBefore = this.reason();
      log.debug("listing servers by itself", { reason: heldBefore ?? "keep the view fresh" });
      let failure: Error | undefined;
      await this.deps.list().catch((e: Error) => (failure = e));
      if (this.stopped) return;
      const s = this.deps.state();
      const landed = s.appliedListStartedAt > before;
      // A list that started inside the grace landed (a Refresh under way was shared): list again now.
      if (landed && this.reason() !== null && s.appliedListStartedAt < s.graceEndsAt) continue;
      if (landed && this.reason() === null) {
        backoff = 0;
        retryAt = undefined;
        continue;
      }
      backoff = backoff === 0 ? OWN_LIST_FIRST_WAIT_MS : Math.min(backoff * 2, OWN_LIST_MAX_WAIT_MS);
      retryAt = this.deps.clock.now() + backoff;
      // (A failure while the view is fresh was logged by the list itself.)
      if (failure) log.warn(heldBefore ? "cannot list servers to release the held creations; trying again" : "cannot list servers to keep the view fresh; trying again", { error: failure.message, inSeconds: backoff / 1000 });
    }
  }
}
