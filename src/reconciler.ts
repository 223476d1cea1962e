// The one owner of the provider's view of the cloud. Refresh rebuilds it from a
// single tag-filtered list; IncreaseSize, DeleteNodes and the background creates
// and deletes change it. The cloud stays the source of truth: the only state kept
// beside the list is what the list cannot show yet (accepted creations, issued
// deletions: the marks). The parts: view.ts (pure: a list and the marks make the
// answers), create-queue.ts (creations), deletion.ts (deletions).
//
// CA calls concurrently, so the rules are about orders of events; each has a
// test that forces its order with a fake clock and a fake cloud
// (test/reconciler.test.ts):
//  1. A list that started before a create was accepted does not drop the create.
//  2. A list that started before a delete does not bring the server back.
//  3. A list that finishes after a newer one was applied is ignored.
//  4. An unanswered create is looked for by its name before it is sent again;
//     a list that starts well after it and does not show it sends it again;
//     a list that shows it, or the check, resolves it, whichever comes first.
//  5. An unanswered delete is decided by the first list that starts after it.
//  6. A created server that a later list no longer shows is forgotten.
//  7. Two servers for one creation: the newer is deleted.
//  8. After a start, nothing is created or deleted until a list that started
//     after the startup grace is applied (a killed predecessor's requests may
//     still land); creations accepted meanwhile wait.
//  9. Servers of a group that appear after a start and that this process did
//     not create are the predecessor's creates: they take the place of creations
//     still waiting here, so the group ends at the size CA asked for.
// 10. Waiting creations never take a group above its max.
// 11. Nothing is created or deleted from a stale view; creations wait for a list.
// 12. A delete the cloud refuses while the server is still changing (booting) is
//     tried again until the server is deleted; it counts as deleting meanwhile,
//     and after a bound it is given up and the server counts again.
// 13. Creations held by rule 8 or 11 never wait for CA's next Refresh: once the
//     grace is over the provider lists by itself (sharing a list under way, one
//     list at a time), and again with a bounded backoff while listing fails; the
//     hold is logged once with its reason, and again when it ends.
import { Code, ConnectError } from "@connectrpc/connect";
import { CloudscaleError, type Cloudscale } from "./cloudscale";
import { CreateQueue, cancellable, queuedOverMax } from "./create-queue";
import { Deleter, belowMin, confirmOwnership, mapBounded, planDeletion, serverTargets, type NodeRef } from "./deletion";
import { log, redact } from "./log";
import { listMetrics } from "./metrics";
import { CLUSTER_TAG, GROUP_TAG, type Clock, type CreateServerRequest, type NodeGroupConfig, type ProviderConfig, type Server } from "./types";
import {
  CountingMap,
  countStates,
  deleteMarkDone,
  emptyView,
  existing,
  groupForNode,
  instances,
  newcomers,
  pendingFate,
  pendingOf,
  targetSize,
  viewOfList,
  type InstanceView,
  type DeleteMark,
  type ListRules,
  type Marks,
  type PendingCreate,
  type ServerState,
  type View,
} from "./view";

export type { InstanceView } from "./view";

/** Why accepted creations wait: the startup grace (rule 8) or a stale view (rule 11). */
export type HoldReason = "startup-grace" | "stale-view";

/** The last thing that went wrong, for operators (status, logs). `at` in ms since the epoch. */
export interface LastError {
  code: string;
  message: string;
  at: number;
}

/** One group as an operator reads it. */
export interface GroupSnapshot {
  name: string;
  targetSize: number;
  /** Instances as CA sees them in NodeGroupNodes, by state; failed = a creation (or server) in error. */
  servers: Record<ServerState, number>;
  /** Accepted creations the cloud has not confirmed yet (queued, being sent, being verified). */
  pending: number;
  /** Of those, the queued ones that are held: they may not go out now (see `hold`). */
  held: number;
  /** The last failed creation or deletion of the group. */
  lastError: LastError | null;
}

export interface ReconcilerSnapshot {
  /** Seconds since the start of the last applied list; null before the first. */
  viewAgeSeconds: number | null;
  /** When the startup grace ends (ms since the epoch) and whether a list past it was applied. */
  graceEndsAt: number;
  settled: boolean;
  /** Why creations are held, since when, in a sentence; null when none is. */
  hold: { reason: HoldReason; since: number; detail: string } | null;
  /** The last list that failed (Refresh's or the provider's own). */
  lastListError: LastError | null;
  groups: GroupSnapshot[];
}

/** First and longest wait between the provider's own lists while they fail and creations are held. */
const SELF_LIST_FIRST_WAIT_MS = 5_000;
const SELF_LIST_MAX_WAIT_MS = 60_000;

/** Servers in one list above which a Refresh is followed by a full garbage collection. */
const LARGE_LIST = 1000;

export interface ReconcilerDeps {
  config: ProviderConfig;
  cloud: Pick<Cloudscale, "listServers" | "createServer" | "getServer" | "deleteServer">;
  /** Builds the POST body for one server of a group (user-data patched for that server). */
  createRequest: (group: NodeGroupConfig, name: string) => CreateServerRequest;
  /** Time and waiting; the system clock unless a test fakes it. */
  clock?: Clock;
  /** Wait before checking whether an ambiguous create took effect (ms). */
  verifyDelayMs?: number;
  /** Create attempts per accepted server before it is reported as failed. */
  maxCreateAttempts?: number;
  /**
   * After a start, how long requests of a previous instance (killed mid-call) may still land
   * in the cloud (ms). Until a list that started after this window has been applied, no
   * server is created or deleted: the view cannot show what is still on its way.
   */
  startupGraceMs?: number;
  /** How long a delete refused while the server is changing is tried again (ms; default 15 minutes, CA's max provision time). */
  busyDeleteRetryMs?: number;
  /** Random part of new server names (tests make it predictable). */
  nameSuffix?: () => string;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
};

const RANDOM_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";
/** The random part of a server name: 8 of [a-z0-9]. */
export function randomSuffix(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  let out = "";
  for (const b of bytes) out += RANDOM_ALPHABET[b % RANDOM_ALPHABET.length];
  return out;
}

export class Reconciler {
  private readonly groups: Map<string, NodeGroupConfig>;
  private readonly clock: Clock;
  private readonly rules: ListRules;
  private view: View;
  /** Set once the first list is applied: what it shows is where this process starts from. */
  private started = false;
  private readonly marks: Marks & { pending: CountingMap<string, PendingCreate>; deleting: CountingMap<string, DeleteMark> } = {
    pending: new CountingMap(),
    deleting: new CountingMap(),
  };
  private views = 0;
  private appliedListStartedAt = -Infinity;
  private lastGoodAt = -Infinity;
  private inflightList: Promise<void> | null = null;
  private readonly settledAfter: number;
  private stopped = false;
  /** The hold under way (rule 13): logged when it starts and when it ends. */
  private hold: { reason: HoldReason; since: number; creates: number } | null = null;
  private holdCheckQueued = false;
  /** Counts holds: the provider's own lists serve the hold they were started for. */
  private holdEpoch = 0;
  private readonly lastErrors = new Map<string, LastError>();
  private lastListError: LastError | null = null;
  private readonly creates: CreateQueue;
  private readonly deleter: Deleter;
  readonly stats = { lists: 0, listFailures: 0, creates: 0, createFailures: 0, deletes: 0 };

  constructor(private readonly deps: ReconcilerDeps) {
    this.groups = new Map(deps.config.nodeGroups.map((g) => [g.name, g]));
    this.clock = deps.clock ?? systemClock;
    this.view = emptyView(this.groups.keys());
    this.settledAfter = this.clock.now() + (deps.startupGraceMs ?? 0);
    const verifyDelayMs = deps.verifyDelayMs ?? 5000;
    this.rules = { verifyDelayMs, failedCreateTtlMs: deps.config.failedCreateTtlSeconds * 1000, deleteConfirmWindowMs: 120_000 };
    this.creates = new CreateQueue({
      clusterName: deps.config.clusterName,
      groups: this.groups,
      cloud: deps.cloud,
      createRequest: deps.createRequest,
      pending: this.marks.pending,
      clock: this.clock,
      concurrency: deps.config.createConcurrency,
      verifyDelayMs,
      maxAttempts: deps.maxCreateAttempts ?? 3,
      mayCreate: () => this.canAct,
      onHeld: () => this.scheduleHoldCheck(),
      onFailed: (p) => this.recordError(p.group, p.error!.code, p.error!.message),
      stats: this.stats,
    });
    this.deleter = new Deleter({
      cloud: deps.cloud,
      marks: this.marks,
      clock: this.clock,
      busyRetryMs: deps.busyDeleteRetryMs ?? 15 * 60_000,
      stats: this.stats,
      onError: (group, message) => this.recordError(group, "DELETE_FAILED", message),
    });
  }

  /**
   * Moves whenever targetSize() or nodes() may answer differently: a new view, an accepted or
   * forgotten creation or deletion, a creation that got its server or failed. A sum of counters
   * that only grow, so it never comes back to a value it had.
   */
  get generation(): number {
    return this.views + this.marks.pending.changes + this.marks.deleting.changes + this.creates.changes;
  }

  /** A list that started after the startup grace window has been applied. */
  get settled(): boolean {
    return this.appliedListStartedAt >= this.settledAfter;
  }

  /** Creations and deletions may go to the cloud now. */
  private get canAct(): boolean {
    return this.settled && this.fresh;
  }

  group(id: string): NodeGroupConfig {
    const g = this.groups.get(id);
    if (!g) throw new ConnectError(`node group "${id.slice(0, 100)}" does not exist (known: ${[...this.groups.keys()].join(", ")})`, Code.NotFound);
    return g;
  }

  get viewAgeSeconds(): number {
    return (this.clock.now() - this.lastGoodAt) / 1000;
  }

  get fresh(): boolean {
    return this.viewAgeSeconds <= this.deps.config.maxViewAgeSeconds;
  }

  // ---------------------------------------------------------------- refresh

  /**
   * Lists our servers once and rebuilds the view. A failure is tolerated while
   * the last good view is younger than maxViewAge; past that Refresh fails.
   */
  async refresh(signal?: AbortSignal, deadlineMs?: number): Promise<void> {
    if (!this.inflightList) {
      this.inflightList = this.listAndApply().finally(() => {
        this.inflightList = null;
      });
    }
    const list = this.inflightList;
    if (!signal && !deadlineMs) return list;
    // The list goes on if the caller gives up; its result still lands in the view. A slow or
    // hanging API must not fail CA's loop while the last good view is fresh: answer before
    // the caller's deadline from that view.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const waits: Promise<void>[] = [list];
    if (deadlineMs) {
      const budget = Math.max(50, Math.min(deadlineMs - 500, deadlineMs * 0.8));
      waits.push(
        new Promise<void>((resolve, reject) => {
          timer = setTimeout(() => {
            if (this.fresh) {
              log.warn("listing servers is slow; answering Refresh from the last good view", { viewAgeSeconds: Math.round(this.viewAgeSeconds) });
              resolve();
            } else reject(this.staleError(new CloudscaleError("timeout", `listing servers took longer than ${Math.round(budget)} ms`)));
          }, budget);
        }),
      );
    }
    if (signal) {
      waits.push(
        new Promise<void>((_, reject) => {
          const cancelled = () => reject(new ConnectError("refresh cancelled by the caller", Code.DeadlineExceeded));
          if (signal.aborted) cancelled();
          signal.addEventListener("abort", cancelled, { once: true });
        }),
      );
    }
    try {
      await Promise.race(waits);
    } finally {
      clearTimeout(timer);
    }
  }

  private staleError(err: CloudscaleError): ConnectError {
    const age = this.viewAgeSeconds;
    const since = Number.isFinite(age) ? `the last good view is ${Math.round(age)}s old (limit ${this.deps.config.maxViewAgeSeconds}s)` : "there has been no successful listing yet";
    return new ConnectError(`cannot list servers and ${since}: ${err.message}`, err.kind === "auth" ? Code.PermissionDenied : Code.Unavailable);
  }

  private async listAndApply(): Promise<void> {
    const startedAt = this.clock.now();
    const timer = performance.now();
    let list: Server[];
    try {
      this.stats.lists++;
      list = await this.deps.cloud.listServers({ [CLUSTER_TAG]: this.deps.config.clusterName });
      listMetrics.done((performance.now() - timer) / 1000, true);
    } catch (e) {
      listMetrics.done((performance.now() - timer) / 1000, false);
      this.stats.listFailures++;
      const err = e instanceof CloudscaleError ? e : new CloudscaleError("network", String(e));
      this.lastListError = { code: err.kind, message: redact(err.message).slice(0, 1000), at: this.clock.now() };
      const age = this.viewAgeSeconds;
      if (age <= this.deps.config.maxViewAgeSeconds) {
        log.warn("listing servers failed; serving the last good view", { error: err.message, viewAgeSeconds: Math.round(age) });
        return;
      }
      throw this.staleError(err);
    }
    this.apply(list, startedAt);
    // A large list leaves megabytes of parsed JSON behind that JSC would collect late: collect it
    // now, after the answer has gone out (≈20 ms of CPU per Refresh at 5,000 servers, measured in
    // bench/README.md; it halves the resident memory right after a Refresh).
    if (list.length >= LARGE_LIST) setTimeout(() => Bun.gc(true), 0);
  }

  /** Rebuilds the view from a list that was requested at `startedAt`. */
  apply(list: Server[], startedAt: number): void {
    if (startedAt < this.appliedListStartedAt) return; // an older list finished late (rule 3)
    // The view counts as fresh only once a list has been read into it: a list that cannot be read
    // leaves the last good view, and its age, as they were.
    const { view, duplicates } = viewOfList(list, this.deps.config.clusterName, this.groups.keys());
    this.appliedListStartedAt = startedAt;
    this.lastGoodAt = Math.max(this.lastGoodAt, startedAt);
    const arrived = newcomers(this.started ? this.view : undefined, view, this.marks);
    this.view = view;
    this.views++;
    this.started = true;

    const now = this.clock.now();
    for (const [name, p] of this.marks.pending) {
      const fate = pendingFate(p, (p.uuid !== undefined && view.servers.has(p.uuid)) || view.byName.has(name), startedAt, now, this.rules);
      if (fate === "listed" || fate === "expired") this.marks.pending.delete(name);
      else if (fate === "vanished") {
        log.warn("a server we created is gone from the cloud before it was listed; forgetting it", { server: name, uuid: p.uuid, group: p.group });
        this.marks.pending.delete(name);
      } else if (fate === "retry") {
        log.info("an unanswered create did not take effect; trying it again", { server: name, group: p.group });
        this.creates.retry(p);
      }
    }
    for (const [uuid, mark] of this.marks.deleting) {
      const listed = view.servers.has(uuid) || duplicates.some((d) => d.uuid === uuid);
      if (deleteMarkDone(mark, listed, startedAt, now, this.rules)) this.marks.deleting.delete(uuid);
    }
    for (const d of duplicates) {
      if (this.marks.deleting.has(d.uuid)) continue;
      log.warn("found two servers for one creation; deleting the newer one", { server: d.name, uuid: d.uuid });
      void this.deleter.deleteOne(d.uuid, d.tags[GROUP_TAG]!).catch(() => {});
    }
    // Rule 9: a predecessor's creates landing late fill the creations still waiting here.
    for (const [g, n] of arrived) {
      const filled = this.creates.cancelQueued(g, n);
      if (filled) log.info("servers a previous process created have appeared; they take the place of creations still waiting", { group: g, servers: n, cancelled: filled });
    }
    if (this.settled) this.trimToMax();
    this.creates.pump();
    this.checkHold();
  }

  /**
   * Servers that landed from a previous instance's requests can leave less room than the
   * creations still queued here assume: cancel the queued ones that would exceed max.
   */
  private trimToMax(): void {
    for (const g of this.groups.values()) {
      const excess = queuedOverMax(pendingOf(this.marks, g.name), existing(this.view, this.marks, g.name), g.max);
      if (excess <= 0) continue;
      this.creates.cancelQueued(g.name, excess);
      log.warn("cancelled queued creations that would take the group above its max", { group: g.name, cancelled: excess, max: g.max });
    }
  }

  // ------------------------------------------------------------------ views

  targetSize(groupId: string): number {
    this.group(groupId);
    return targetSize(this.view, this.marks, groupId);
  }

  nodes(groupId: string): InstanceView[] {
    this.group(groupId);
    return instances(this.view, this.marks, groupId);
  }

  /** The group of a node, or "" when it is not one of our servers. Never throws. */
  groupForNode(providerID: string, name: string): string {
    return groupForNode(this.view, this.marks, providerID, name);
  }

  /** What an operator reads (status, metrics, logs): counts, not the servers themselves. */
  snapshot(): ReconcilerSnapshot {
    const reason = this.holdReason();
    const age = this.viewAgeSeconds;
    return {
      viewAgeSeconds: Number.isFinite(age) ? Math.round(age * 10) / 10 : null,
      graceEndsAt: this.settledAfter,
      settled: this.settled,
      hold: reason ? { reason, since: this.hold?.since ?? this.clock.now(), detail: this.holdDetail(reason) } : null,
      lastListError: this.lastListError,
      groups: [...this.groups.keys()].map((g) => {
        const pending = pendingOf(this.marks, g);
        const queued = pending.filter((p) => p.state === "queued").length;
        return {
          name: g,
          targetSize: targetSize(this.view, this.marks, g),
          servers: countStates(instances(this.view, this.marks, g)),
          pending: pending.filter((p) => p.state === "queued" || p.state === "creating" || p.state === "verifying").length,
          held: reason ? queued : 0,
          lastError: this.lastErrors.get(g) ?? null,
        };
      }),
    };
  }

  private recordError(group: string, code: string, message: string): void {
    this.lastErrors.set(group, { code, message: redact(message).slice(0, 1000), at: this.clock.now() });
  }

  // ------------------------------------------------------------ held creates

  /** Why queued creations may not go out now, or null when they may (or none is queued). */
  private holdReason(): HoldReason | null {
    if (this.canAct || this.heldCreates() === 0) return null;
    return this.settled ? "stale-view" : "startup-grace";
  }

  private holdDetail(reason: HoldReason): string {
    if (reason === "startup-grace") {
      const until = new Date(this.settledAfter).toISOString();
      const grace = `startupGrace ${Math.round((this.deps.startupGraceMs ?? 0) / 1000)}s after the start`;
      if (this.clock.now() < this.settledAfter) return `requests a previous instance sent may still land until ${until} (${grace}); creations go out after a list that starts past then`;
      return `the startup grace ended at ${until} (${grace}) and no list since has succeeded; creations go out after one does`;
    }
    const age = Number.isFinite(this.viewAgeSeconds) ? `${Math.round(this.viewAgeSeconds)}s old` : "not loaded";
    return `the view of the cloud is ${age} (limit ${this.deps.config.maxViewAgeSeconds}s); creations go out after the next good list`;
  }

  private heldCreates(): number {
    let n = 0;
    for (const p of this.marks.pending.values()) if (p.state === "queued") n++;
    return n;
  }

  /** Called by the queue when creations stay queued: one check after the current event (an IncreaseSize accepts several). */
  private scheduleHoldCheck(): void {
    if (this.holdCheckQueued) return;
    this.holdCheckQueued = true;
    queueMicrotask(() => {
      this.holdCheckQueued = false;
      this.checkHold();
    });
  }

  /** Logs a hold when it starts (and its reason changes) and when it ends; starts the provider's own lists (rule 13). */
  private checkHold(): void {
    if (this.stopped) return;
    const reason = this.holdReason();
    const now = this.clock.now();
    if (reason && (!this.hold || this.hold.reason !== reason)) {
      const creates = this.heldCreates();
      const fields = { creates, reason, groups: this.heldByGroup() };
      if (reason === "startup-grace") log.info(`creations are held: ${this.holdDetail(reason)} (the provider lists by itself then)`, fields);
      else log.warn(`creations are held: ${this.holdDetail(reason)} (the provider lists by itself until one succeeds)`, fields);
      if (!this.hold) this.listWhileHeld(++this.holdEpoch).catch((e: unknown) => log.error("the provider's own listing stopped", { error: String(e) }));
      this.hold = { reason, since: this.hold?.since ?? now, creates };
    } else if (reason && this.hold) {
      this.hold.creates = Math.max(this.hold.creates, this.heldCreates());
    } else if (!reason && this.hold) {
      const heldSeconds = Math.round((now - this.hold.since) / 100) / 10;
      if (this.canAct) log.info("held creations released: they go out now", { creates: this.hold.creates, heldSeconds });
      else log.info("no creation is held any more: the held ones were cancelled", { heldSeconds });
      this.hold = null;
    }
  }

  private heldByGroup(): string {
    const counts = new Map<string, number>();
    for (const p of this.marks.pending.values()) if (p.state === "queued") counts.set(p.group, (counts.get(p.group) ?? 0) + 1);
    return [...counts].map(([g, n]) => `${g}=${n}`).join(",");
  }

  /**
   * Lists while creations are held, so they never wait for CA's next Refresh (rule 13): at the
   * end of the startup grace, then at once when a list that started inside the grace landed,
   * else after a backoff (5 s doubling to 60 s) while listing fails. Each list is Refresh's own
   * (one at a time: a list under way is shared).
   */
  private async listWhileHeld(epoch: number): Promise<void> {
    // A hold that ends and a new one that starts while this one sleeps start lists of their own.
    const current = () => epoch === this.holdEpoch && !this.stopped && this.holdReason() !== null;
    let wait = SELF_LIST_FIRST_WAIT_MS;
    while (current()) {
      const now = this.clock.now();
      if (now < this.settledAfter) {
        await this.clock.sleep(this.settledAfter - now);
        continue;
      }
      const applied = this.appliedListStartedAt;
      log.debug("listing servers to release held creations", { reason: this.holdReason() });
      let failed: Error | undefined;
      await this.refresh().catch((e: Error) => (failed = e));
      if (!current()) return;
      // A list that started inside the grace landed (a Refresh under way was shared): list again now.
      if (this.appliedListStartedAt > applied && this.appliedListStartedAt < this.settledAfter) continue;
      // (A failure while the view is fresh was logged by the list itself.)
      if (failed) log.warn("cannot list servers to release the held creations; trying again", { error: failed.message, inSeconds: wait / 1000 });
      await this.clock.sleep(wait);
      wait = Math.min(wait * 2, SELF_LIST_MAX_WAIT_MS);
    }
  }

  // --------------------------------------------------------------- scale up

  private requireFresh(action: string): void {
    if (!this.fresh) {
      const age = Number.isFinite(this.viewAgeSeconds) ? `${Math.round(this.viewAgeSeconds)}s old` : "not loaded yet";
      throw new ConnectError(`refusing to ${action}: the view of the cloud is ${age} (limit ${this.deps.config.maxViewAgeSeconds}s); Refresh must succeed first`, Code.Unavailable);
    }
  }

  /** Accepts `delta` new servers at once; they are created in the background. */
  increaseSize(groupId: string, delta: number): string[] {
    const g = this.group(groupId);
    if (!Number.isInteger(delta) || delta <= 0) throw new ConnectError(`delta must be positive, got ${delta}`, Code.InvalidArgument);
    const target = targetSize(this.view, this.marks, groupId);
    if (target + delta > g.max) {
      throw new ConnectError(`increasing node group "${groupId}" by ${delta} would make it ${target + delta}, above its max size ${g.max} (target size now ${target})`, Code.OutOfRange);
    }
    this.requireFresh("create servers");
    const suffix = this.deps.nameSuffix ?? randomSuffix;
    const names: string[] = [];
    for (let i = 0; i < delta; i++) {
      let name: string;
      do name = `${this.deps.config.clusterName}-${groupId}-${suffix()}`;
      while (this.marks.pending.has(name) || this.view.byName.has(name));
      this.creates.accept(groupId, name);
      names.push(name);
    }
    log.info("scale-up accepted", { group: groupId, delta, targetSize: target + delta });
    return names;
  }

  /** Resolves when no creation is queued or running (tests, shutdown). */
  whenIdle(): Promise<void> {
    return this.creates.whenIdle();
  }

  // ------------------------------------------------------------- scale down

  /** Cancels accepted creations that have not reached the cloud; never deletes a server. */
  decreaseTargetSize(groupId: string, delta: number): void {
    this.group(groupId);
    if (!Number.isInteger(delta) || delta >= 0) throw new ConnectError(`delta must be negative, got ${delta}`, Code.InvalidArgument);
    const candidates = cancellable(pendingOf(this.marks, groupId));
    if (-delta > candidates.length) {
      throw new ConnectError(
        `cannot decrease node group "${groupId}" by ${-delta}: only ${candidates.length} requested server(s) have not been created yet; existing servers are removed with DeleteNodes`,
        Code.FailedPrecondition,
      );
    }
    for (const p of candidates.slice(0, -delta)) this.marks.pending.delete(p.name);
    log.info("target size decreased", { group: groupId, delta, targetSize: targetSize(this.view, this.marks, groupId) });
    this.checkHold();
  }

  /**
   * Deletes the given nodes of a group. Every node must be ours and of this
   * group or nothing is deleted; the group never goes below its min size.
   */
  async deleteNodes(groupId: string, nodes: NodeRef[], signal?: AbortSignal): Promise<void> {
    const g = this.group(groupId);
    if (nodes.length === 0) return;
    this.requireFresh("delete servers");
    const { targets, problems } = planDeletion(this.view, this.marks, groupId, nodes);
    if (problems.length) throw new ConnectError(`nothing deleted: ${problems.slice(0, 5).join("; ")}${problems.length > 5 ? `; and ${problems.length - 5} more` : ""}`, Code.InvalidArgument);
    const busy = targets.find((t) => t.kind === "pending" && ["creating", "verifying"].includes(this.marks.pending.get(t.name)?.state ?? ""));
    if (busy) {
      throw new ConnectError(`nothing deleted: server ${(busy as { name: string }).name} is being created right now; try again once it exists`, Code.Unavailable);
    }
    const servers = serverTargets(targets);
    if (!this.settled && servers.length) {
      throw new ConnectError(
        "nothing deleted: the provider has just started, and requests of a previous instance may still be landing in the cloud; deletions resume after the next Refresh past the startup grace",
        Code.Unavailable,
      );
    }
    const ours = await confirmOwnership(this.deps.cloud, servers, this.deps.config.clusterName, groupId, signal);
    // Min counts servers that exist, not creations still on their way (they may yet fail).
    const tooFew = belowMin(groupId, existing(this.view, this.marks, groupId), ours.length, g.min);
    if (tooFew) throw new ConnectError(`nothing deleted: ${tooFew}`, Code.FailedPrecondition);
    for (const t of targets) if (t.kind === "pending") this.marks.pending.delete(t.name); // queued or failed: they never reached the cloud
    const results = await mapBounded(ours, 10, (uuid) => this.deleter.deleteOne(uuid, groupId).then(() => null, (e: Error) => `${uuid}: ${e.message}`));
    const failures = results.filter((r): r is string => r !== null);
    if (failures.length) throw new ConnectError(`some deletions failed: ${failures.slice(0, 5).join("; ")}`, Code.Unavailable);
  }

  stop(): void {
    this.stopped = true;
    this.creates.stop();
    this.deleter.stop();
  }
}
