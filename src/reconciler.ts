// The one owner of the provider's view of the cloud. Refresh rebuilds it from a
// single tag-filtered list; IncreaseSize, DeleteNodes and the background creates
// and deletes change it. The cloud stays the source of truth: the only state kept
// beside the list is what the list cannot show yet (accepted creations, issued
// deletions: the marks). The parts: view.ts (pure: a list and the marks make the
// answers), list-plan.ts (pure: what a list settles), create-queue.ts (creations),
// deletion.ts (deletions), own-lists.ts (the provider's own lists and the holds),
// instances.ts (other instances). Errors are ProviderErrors (errors.ts); the gRPC
// service maps them to status codes.
//
// CA calls concurrently, so the rules are about orders of events; each has a
// test that forces its order with a fake clock and a fake cloud
// (test/reconciler.test.ts, test/reconciler-calls.test.ts):
//  1. A list that started before a create was accepted does not drop the create.
//  2. A list that started before a delete does not bring the server back.
//  3. A list that finishes after a newer one was applied is ignored.
//  4. An unanswered create is looked for by its name before it is sent again;
//     a list that starts well after it and does not show it sends it again (or
//     reports it failed once it has had all its attempts); a list that shows it,
//     or the check, resolves it, whichever comes first. What an older attempt
//     learns after a newer one went out is not acted on.
//  5. An unanswered delete is decided by the first list that starts after it.
//  6. A created server that a later list no longer shows is forgotten.
//  7. Two servers for one creation: the newer is deleted, once the provider may
//     act (rules 8 and 11).
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
//     hold is logged once with its reason, and again when it ends. While it
//     serves, the same lister keeps the view fresh when CA is quiet: it lists
//     once the last list started half of maxViewAge ago.
// 14. A process that served no call for longer than its startup grace (and at
//     least IDLE_RESTART_FLOOR_MS) treats its next call as a start: another
//     instance may have served CA meanwhile, and its requests may still land, so
//     rules 8 and 9 apply again from that call. The provider's own lists (rule
//     13) are not calls: they keep the view fresh but end no silence.
// 15. Each process tags the servers it creates with its instance id. Servers
//     that another instance created while this one was serving (past its grace)
//     mean two active providers for one cluster: a warning, once per instance,
//     and a metric; they count in the view like any other server of the group.
// Within one list (list-plan.ts) the order is: the view and the marks, then the
// cancellations of rules 9 and 10, then what goes to the cloud.
import { CloudscaleError, type Cloudscale } from "./cloudscale";
import { forCaller } from "./caller";
import { systemClock, type Clock } from "./clock";
import { CreateQueue, cancellable, queuedOverMax } from "./create-queue";
import { Deleter, belowMin, confirmOwnership, mapBounded, planDeletion, serverTargets, type NodeRef, type Target } from "./deletion";
import { ProviderError } from "./errors";
import { Activity } from "./instances";
import { planList } from "./list-plan";
import { log, redact } from "./log";
import { randomSuffix } from "./names";
import { OwnLists } from "./own-lists";
import type { LastError, ReconcilerSnapshot } from "./snapshot";
import { CLUSTER_TAG, GROUP_TAG, type CreateServerRequest, type NodeGroupConfig, type ProviderConfig, type Server } from "./types";
import { CountingMap, countStates, existing, emptyView, queuedByGroup, groupForNode, instances, pendingOf, targetSize, type DeleteMark, type InstanceView, type ListRules, type Marks, type PendingCreate, type View } from "./view";

/** Servers in one list above which a Refresh is followed by a full garbage collection. */
const LARGE_LIST = 1000;

/** What the reconciler reports as it goes; the composition root records it (metrics). */
export interface ReconcilerRecorder {
  /** A list that rebuilds the view ended, after `seconds`, with or without a view. */
  list?(seconds: number, ok: boolean): void;
  /** A creation was given up and is now shown to CA with `code`. */
  createFailed?(group: string, code: string): void;
}

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
  /** This process's instance id (the instance tag createRequest puts on its servers). */
  instanceId?: string;
  record?: ReconcilerRecorder;
}

export class Reconciler {
  private readonly groups: Map<string, NodeGroupConfig>;
  private readonly clock: Clock;
  private readonly rules: ListRules;
  private readonly graceMs: number;
  private view: View;
  /** Set once the first list is applied: what it shows is where this process starts from. */
  private started = false;
  private readonly marks: Marks & { pending: CountingMap<string, PendingCreate>; deleting: CountingMap<string, DeleteMark> } = {
    pending: new CountingMap(),
    deleting: new CountingMap(),
  };
  private views = 0;
  private appliedListStartedAt = -Infinity;
  private inflightList: Promise<void> | null = null;
  /** No server is created or deleted before a list that started at or after this (rules 8 and 14). */
  private settledAfter: number;
  /** When this process serves CA, and the other instances seen creating meanwhile (rules 14, 15). */
  private readonly activity: Activity;
  private readonly lastErrors = new Map<string, LastError>();
  private lastListError: LastError | null = null;
  private readonly creates: CreateQueue;
  private readonly deleter: Deleter;
  private readonly ownLists: OwnLists;

  constructor(private readonly deps: ReconcilerDeps) {
    this.groups = new Map(deps.config.nodeGroups.map((g) => [g.name, g]));
    this.clock = deps.clock ?? systemClock;
    this.view = emptyView(this.groups.keys());
    this.graceMs = deps.startupGraceMs ?? 0;
    const now = this.clock.now();
    this.settledAfter = now + this.graceMs;
    this.activity = new Activity(now, this.graceMs, deps.instanceId ?? randomSuffix(12));
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
      onHeld: () => this.ownLists.scheduleCheck(),
      onFailed: (p) => {
        this.recordError(p.group, p.error!.code, p.error!.message);
        deps.record?.createFailed?.(p.group, p.error!.code);
      },
    });
    this.deleter = new Deleter({
      cloud: deps.cloud,
      marks: this.marks,
      clock: this.clock,
      busyRetryMs: deps.busyDeleteRetryMs ?? 15 * 60_000,
      onError: (group, message) => this.recordError(group, "DELETE_FAILED", message),
    });
    this.ownLists = new OwnLists({
      clock: this.clock,
      list: () => this.refresh(),
      graceMs: this.graceMs,
      maxViewAgeMs: deps.config.maxViewAgeSeconds * 1000,
      keepFreshMs: Math.max(1000, (deps.config.maxViewAgeSeconds * 1000) / 2),
      state: () => ({ settled: this.settled, fresh: this.fresh, graceEndsAt: this.settledAfter, appliedListStartedAt: this.appliedListStartedAt, ...queuedByGroup(this.marks) }),
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

  /** A list has been applied since the start: the provider can answer CA. */
  get loaded(): boolean {
    return this.started;
  }

  group(id: string): NodeGroupConfig {
    const g = this.groups.get(id);
    if (!g) throw new ProviderError("not-found", `node group "${id.slice(0, 100)}" does not exist (known: ${[...this.groups.keys()].join(", ")})`);
    return g;
  }

  get viewAgeSeconds(): number {
    return (this.clock.now() - this.appliedListStartedAt) / 1000;
  }

  get fresh(): boolean {
    return this.viewAgeSeconds <= this.deps.config.maxViewAgeSeconds;
  }

  // ------------------------------------------------------------------ calls

  /** CA made a call (any RPC). After a long silence, the call counts as a start (rule 14). */
  noteCall(): void {
    const now = this.clock.now();
    const silence = this.activity.call(now);
    if (!silence) return;
    this.settledAfter = Math.max(this.settledAfter, now + this.graceMs);
    log.info("no call for longer than the startup grace: another instance may have served CA meanwhile, so this call counts as a start", {
      silentSeconds: Math.round(silence / 1000),
      until: new Date(this.settledAfter).toISOString(),
    });
  }

  /** Starts the provider's own lists that keep the view fresh while CA is quiet (rule 13). */
  keepFresh(): void {
    this.ownLists.start();
  }

  // ---------------------------------------------------------------- refresh

  /**
   * Lists our servers once and rebuilds the view. A failure is tolerated while
   * the last good view is younger than maxViewAge; past that Refresh fails.
   */
  async refresh(signal?: AbortSignal, deadlineMs?: number): Promise<void> {
    this.inflightList ??= this.listAndApply().finally(() => {
      this.inflightList = null;
    });
    // The list goes on if the caller gives up; its result still lands in the view. A slow or
    // hanging API must not fail CA's loop while the last good view is fresh: answer before
    // the caller's deadline from that view.
    const budgetMs = deadlineMs ? Math.max(50, Math.min(deadlineMs - 500, deadlineMs * 0.8)) : undefined;
    return forCaller(this.inflightList, {
      signal,
      cancelled: () => new ProviderError("deadline-exceeded", "refresh cancelled by the caller"),
      budgetMs,
      atBudget: () => {
        if (!this.fresh) throw this.staleError(new CloudscaleError("timeout", `listing servers took longer than ${Math.round(budgetMs!)} ms`));
        log.warn("listing servers is slow; answering Refresh from the last good view", { viewAgeSeconds: Math.round(this.viewAgeSeconds) });
      },
    });
  }

  private staleError(err: CloudscaleError): ProviderError {
    const age = this.viewAgeSeconds;
    const since = Number.isFinite(age) ? `the last good view is ${Math.round(age)}s old (limit ${this.deps.config.maxViewAgeSeconds}s)` : "there has been no successful listing yet";
    return new ProviderError(err.kind === "auth" ? "cloud-auth" : "unavailable", `cannot list servers and ${since}: ${err.message}`);
  }

  private async listAndApply(): Promise<void> {
    const startedAt = this.clock.now();
    const timer = performance.now();
    let list: Server[];
    try {
      list = await this.deps.cloud.listServers({ [CLUSTER_TAG]: this.deps.config.clusterName });
      this.deps.record?.list?.((performance.now() - timer) / 1000, true);
    } catch (e) {
      this.deps.record?.list?.((performance.now() - timer) / 1000, false);
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

  /** Rebuilds the view from a list that was requested at `startedAt`: first the plan, then what it asks for. */
  apply(list: Server[], startedAt: number): void {
    if (startedAt < this.appliedListStartedAt) return; // an older list finished late (rule 3)
    const now = this.clock.now();
    const plan = planList(list, startedAt, now, {
      clusterName: this.deps.config.clusterName,
      groups: this.groups.keys(),
      previous: this.started ? this.view : undefined,
      marks: this.marks,
      rules: this.rules,
    });
    // The view and the marks (a list the plan cannot read leaves the last good view and its age).
    this.appliedListStartedAt = startedAt;
    this.view = plan.view;
    this.views++;
    this.started = true;
    for (const { name, why, p } of plan.forget) {
      if (why === "vanished") log.warn("a server we created is gone from the cloud before it was listed; forgetting it", { server: name, uuid: p.uuid, group: p.group });
      this.marks.pending.delete(name);
    }
    for (const uuid of plan.deletesDone) this.marks.deleting.delete(uuid);
    for (const p of plan.retry) if (this.creates.retry(p)) log.info("an unanswered create did not take effect; trying it again", { server: p.name, group: p.group });
    // The cancellations. Rule 9: a predecessor's creates landing late fill the creations still waiting here.
    for (const [g, n] of plan.arrived) {
      const filled = this.creates.cancelQueued(g, n);
      if (filled) log.info("servers a previous process created have appeared; they take the place of creations still waiting", { group: g, servers: n, cancelled: filled });
    }
    if (this.settled) this.trimToMax();
    // What goes to the cloud, only now and only when the provider may act.
    if (this.canAct) {
      for (const d of plan.duplicates) {
        log.warn("found two servers for one creation; deleting the newer one", { server: d.name, uuid: d.uuid });
        this.deleter.deleteOne(d.uuid, d.tags[GROUP_TAG]!).catch(() => {}); // logged and recorded by the deleter
      }
    }
    this.creates.pump();
    this.ownLists.check();
    this.activity.notice(this.view, now); // rule 15
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
    const hold = this.ownLists.current();
    const age = this.viewAgeSeconds;
    return {
      viewAgeSeconds: Number.isFinite(age) ? Math.round(age * 10) / 10 : null,
      graceEndsAt: this.settledAfter,
      settled: this.settled,
      instanceId: this.activity.instanceId,
      otherInstances: this.activity.others,
      hold,
      lastListError: this.lastListError,
      groups: [...this.groups.keys()].map((g) => {
        const pending = pendingOf(this.marks, g);
        const queued = pending.filter((p) => p.state === "queued").length;
        return {
          name: g,
          targetSize: targetSize(this.view, this.marks, g),
          servers: countStates(instances(this.view, this.marks, g)),
          pending: pending.filter((p) => p.state === "queued" || p.state === "creating" || p.state === "verifying").length,
          held: hold ? queued : 0,
          lastError: this.lastErrors.get(g) ?? null,
        };
      }),
    };
  }

  private recordError(group: string, code: string, message: string): void {
    this.lastErrors.set(group, { code, message: redact(message).slice(0, 1000), at: this.clock.now() });
  }

  // --------------------------------------------------------------- scale up

  private requireFresh(action: string): void {
    if (!this.fresh) {
      const age = Number.isFinite(this.viewAgeSeconds) ? `${Math.round(this.viewAgeSeconds)}s old` : "not loaded yet";
      throw new ProviderError("unavailable", `refusing to ${action}: the view of the cloud is ${age} (limit ${this.deps.config.maxViewAgeSeconds}s); Refresh must succeed first`);
    }
  }

  /** Accepts `delta` new servers at once; they are created in the background. */
  increaseSize(groupId: string, delta: number): string[] {
    const g = this.group(groupId);
    if (!Number.isInteger(delta) || delta <= 0) throw new ProviderError("invalid-argument", `delta must be positive, got ${delta}`);
    const target = targetSize(this.view, this.marks, groupId);
    if (target + delta > g.max) {
      throw new ProviderError("out-of-range", `increasing node group "${groupId}" by ${delta} would make it ${target + delta}, above its max size ${g.max} (target size now ${target})`);
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
    if (!Number.isInteger(delta) || delta >= 0) throw new ProviderError("invalid-argument", `delta must be negative, got ${delta}`);
    const candidates = cancellable(pendingOf(this.marks, groupId));
    if (-delta > candidates.length) {
      throw new ProviderError(
        "failed-precondition",
        `cannot decrease node group "${groupId}" by ${-delta}: only ${candidates.length} requested server(s) have not been created yet; existing servers are removed with DeleteNodes`,
      );
    }
    for (const p of candidates.slice(0, -delta)) this.marks.pending.delete(p.name);
    log.info("target size decreased", { group: groupId, delta, targetSize: targetSize(this.view, this.marks, groupId) });
    this.ownLists.check();
  }

  /** What a DeleteNodes call names, from the view and the creations as they are now; throws when any of it may not be done now. */
  private deletionTargets(groupId: string, nodes: NodeRef[]): Target[] {
    const { targets, problems } = planDeletion(this.view, this.marks, groupId, nodes);
    if (problems.length) throw new ProviderError("invalid-argument", `nothing deleted: ${problems.slice(0, 5).join("; ")}${problems.length > 5 ? `; and ${problems.length - 5} more` : ""}`);
    for (const t of targets) {
      if (t.kind !== "pending") continue;
      const state = this.marks.pending.get(t.name)?.state;
      // Its POST is on its way or unanswered: an OK now could not mean that its server goes.
      if (state === "creating" || state === "verifying") throw new ProviderError("unavailable", `nothing deleted: server ${t.name} is being created right now; try again once it exists`);
    }
    return targets;
  }

  /**
   * Deletes the given nodes of a group. Every node must be ours and of this
   * group or nothing is deleted; the group never goes below its min size.
   * An OK means every named server goes (or never reached the cloud).
   */
  async deleteNodes(groupId: string, nodes: NodeRef[], signal?: AbortSignal): Promise<void> {
    const g = this.group(groupId);
    if (nodes.length === 0) return;
    this.requireFresh("delete servers");
    const servers = serverTargets(this.deletionTargets(groupId, nodes));
    if (!this.settled && servers.length) {
      throw new ProviderError(
        "unavailable",
        "nothing deleted: the provider has just started, and requests of a previous instance may still be landing in the cloud; deletions resume after the next Refresh past the startup grace",
      );
    }
    const ours = await confirmOwnership(this.deps.cloud, servers, this.deps.config.clusterName, groupId, signal, (name) => this.groups.has(name));
    // Creations may have moved on while the cloud was asked (a POST sent or answered): decide again
    // from the view and the creations as they are now, and delete only what was confirmed.
    const targets = this.deletionTargets(groupId, nodes);
    const asked = new Set(servers.map((t) => t.uuid));
    const now = serverTargets(targets);
    const changed = now.find((t) => !asked.has(t.uuid));
    if (changed) throw new ProviderError("unavailable", `nothing deleted: node "${changed.label}" got its server while this call ran; try again`);
    const still = new Set(now.map((t) => t.uuid));
    const uuids = ours.filter((u) => still.has(u));
    // Min counts servers that exist, not creations still on their way (they may yet fail).
    const tooFew = belowMin(groupId, existing(this.view, this.marks, groupId), uuids.length, g.min);
    if (tooFew) throw new ProviderError("failed-precondition", `nothing deleted: ${tooFew}`);
    for (const t of targets) if (t.kind === "pending") this.marks.pending.delete(t.name); // queued or failed: they never reached the cloud
    const results = await mapBounded(uuids, 10, (uuid) => this.deleter.deleteOne(uuid, groupId).then(() => null, (e: Error) => `${uuid}: ${e.message}`));
    const failures = results.filter((r): r is string => r !== null);
    if (failures.length) throw new ProviderError("unavailable", `some deletions failed: ${failures.slice(0, 5).join("; ")}`);
  }

  stop(): void {
    this.ownLists.stop();
    this.creates.stop();
    this.deleter.stop();
  }

  get instanceId(): string {
    return this.activity.instanceId;
  }
}
