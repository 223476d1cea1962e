// The one owner of the provider's view of the cloud. Refresh rebuilds it from a
// single tag-filtered list; IncreaseSize, DeleteNodes and the background
// creates change it. CA calls these concurrently, so every rule below is about
// interleavings: a list that started before a create was accepted must not drop
// that create, and a list that started before a delete must not bring the
// server back. The cloud stays the source of truth: the only state kept beside
// the list is what the list cannot show yet (accepted creates, issued deletes).
import { Code, ConnectError } from "@connectrpc/connect";
import { CloudscaleError, type Cloudscale } from "./cloudscale";
import { log, redact } from "./log";
import { CLUSTER_TAG, GROUP_TAG, type CreateServerRequest, type NodeGroupConfig, type ProviderConfig, type Server } from "./types";

export const PROVIDER_ID_PREFIX = "cloudscale://";
/** Instance ids of creations that have no server UUID yet. */
export const PENDING_ID_PREFIX = "cloudscale://pending/";

export type InstanceState = "running" | "creating" | "deleting";

/** What the view keeps of a listed server. The list's other fields (flavor, image, volumes,
 *  interfaces, …; ~1.8 KB of JSON per server) are not kept, so they do not stay on the heap. */
export type ServerView = Pick<Server, "uuid" | "name" | "status" | "tags" | "created_at">;

/** Servers in one list above which a Refresh is followed by a full garbage collection. */
const LARGE_LIST = 1000;

export const OUT_OF_RESOURCES = 1;
export const OTHER_ERROR = 99;

export interface InstanceView {
  id: string;
  state: InstanceState;
  error?: { code: string; message: string; errorClass: number };
}

type PendingState = "queued" | "creating" | "verifying" | "created" | "failed";

interface PendingCreate {
  name: string;
  group: string;
  acceptedAt: number;
  state: PendingState;
  attempts: number;
  uuid?: string;
  /** When the cloud confirmed the server (POST answered, or found by name). */
  confirmedAt?: number;
  /** When an ambiguous failure happened; a list started after it decides. */
  uncertainSince?: number;
  failedAt?: number;
  error?: { code: string; message: string; errorClass: number };
}

interface DeleteMark {
  group: string;
  issuedAt: number;
  /** When the DELETE call ended (answered or not). */
  completedAt?: number;
  /** The API confirmed the deletion. */
  confirmed?: boolean;
}

export interface ReconcilerDeps {
  config: ProviderConfig;
  cloud: Cloudscale;
  /** Builds the POST body for one server of a group (user-data patched for that server). */
  createRequest: (group: NodeGroupConfig, name: string) => CreateServerRequest;
  now?: () => number;
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
}

const RANDOM_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";
function randomSuffix(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  let out = "";
  for (const b of bytes) out += RANDOM_ALPHABET[b % RANDOM_ALPHABET.length];
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function parseProviderId(providerID: string): { uuid?: string; pendingName?: string } | null {
  if (!providerID.startsWith(PROVIDER_ID_PREFIX)) return null;
  if (providerID.startsWith(PENDING_ID_PREFIX)) return { pendingName: providerID.slice(PENDING_ID_PREFIX.length) };
  const uuid = providerID.slice(PROVIDER_ID_PREFIX.length).replace(/^\/+/, "");
  return /^[0-9a-f-]{36}$/i.test(uuid) ? { uuid: uuid.toLowerCase() } : null;
}

export class Reconciler {
  private readonly groups: Map<string, NodeGroupConfig>;
  private readonly now: () => number;
  private servers = new Map<string, ServerView>();
  private byName = new Map<string, ServerView>();
  private byGroup = new Map<string, ServerView[]>();
  private pending = new Map<string, PendingCreate>();
  private deleting = new Map<string, DeleteMark>();
  private appliedListStartedAt = -Infinity;
  private lastGoodAt = -Infinity;
  private inflightList: Promise<void> | null = null;
  private queue: PendingCreate[] = [];
  private activeCreates = 0;
  private stopped = false;
  private readonly idle = new Set<() => void>();
  private readonly settledAfter: number;
  readonly stats = { lists: 0, listFailures: 0, creates: 0, createFailures: 0, deletes: 0 };
  /** Moves whenever what targetSize() and nodes() answer may have changed (answers are cached per generation). */
  generation = 0;

  constructor(private readonly deps: ReconcilerDeps) {
    this.groups = new Map(deps.config.nodeGroups.map((g) => [g.name, g]));
    this.now = deps.now ?? Date.now;
    this.settledAfter = this.now() + (deps.startupGraceMs ?? 0);
    for (const g of this.groups.keys()) this.byGroup.set(g, []);
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
    return (this.now() - this.lastGoodAt) / 1000;
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
    const startedAt = this.now();
    let list: Server[];
    try {
      this.stats.lists++;
      list = await this.deps.cloud.listServers({ [CLUSTER_TAG]: this.deps.config.clusterName });
    } catch (e) {
      this.stats.listFailures++;
      const err = e instanceof CloudscaleError ? e : new CloudscaleError("network", String(e));
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
    if (startedAt < this.appliedListStartedAt) return; // an older list finished late
    this.appliedListStartedAt = startedAt;
    this.lastGoodAt = Math.max(this.lastGoodAt, startedAt);

    const servers = new Map<string, ServerView>();
    const byName = new Map<string, ServerView>();
    const byGroup = new Map<string, ServerView[]>();
    for (const g of this.groups.keys()) byGroup.set(g, []);
    const duplicates: ServerView[] = [];
    for (const full of list) {
      const s: ServerView = { uuid: full.uuid, name: full.name, status: full.status, tags: full.tags, created_at: full.created_at };
      // Defence in depth: the API filtered by tag, but never trust a server without both of our tags.
      if (s.tags?.[CLUSTER_TAG] !== this.deps.config.clusterName) continue;
      if (!byGroup.has(s.tags?.[GROUP_TAG] ?? "")) continue; // ours, but of a group no longer configured: left alone
      const twin = byName.get(s.name);
      if (twin) {
        // Two servers for one accepted creation (a create whose response was lost, then re-sent): keep the older.
        const [older, newer] = twin.created_at <= s.created_at ? [twin, s] : [s, twin];
        duplicates.push(newer);
        byName.set(older.name, older);
        continue;
      }
      byName.set(s.name, s);
    }
    for (const s of byName.values()) {
      servers.set(s.uuid, s);
      byGroup.get(s.tags[GROUP_TAG]!)!.push(s);
    }
    this.servers = servers;
    this.byName = byName;
    this.byGroup = byGroup;

    const now = this.now();
    for (const [name, p] of this.pending) {
      const seen = (p.uuid && servers.has(p.uuid)) || byName.has(name);
      if (seen) {
        this.pending.delete(name);
        continue;
      }
      if (p.state === "created" && p.confirmedAt !== undefined && p.confirmedAt < startedAt) {
        log.warn("a server we created is gone from the cloud before it was listed; forgetting it", { server: name, uuid: p.uuid, group: p.group });
        this.pending.delete(name);
      } else if (p.state === "verifying" && p.uncertainSince !== undefined && p.uncertainSince + (this.deps.verifyDelayMs ?? 5000) < startedAt) {
        // The list started well after the failed create and does not show it: it did not happen.
        log.info("an unanswered create did not take effect; trying it again", { server: name, group: p.group });
        p.state = "queued";
        p.uncertainSince = undefined;
        this.enqueue(p);
      } else if (p.state === "failed" && p.failedAt !== undefined && now - p.failedAt > this.deps.config.failedCreateTtlSeconds * 1000) {
        this.pending.delete(name);
      }
    }
    for (const [uuid, mark] of this.deleting) {
      if (mark.completedAt === undefined || mark.completedAt >= startedAt) continue; // the list may predate the delete
      const present = servers.has(uuid) || duplicates.some((d) => d.uuid === uuid);
      // Gone: done. Still listed after an unanswered delete: it survived, count it again.
      // Still listed long after a confirmed delete: believe the cloud.
      if (!present || !mark.confirmed || now - mark.completedAt > 120_000) this.deleting.delete(uuid);
    }
    for (const d of duplicates) {
      if (this.deleting.has(d.uuid)) continue;
      log.warn("found two servers for one creation; deleting the newer one", { server: d.name, uuid: d.uuid });
      void this.deleteOne(d.uuid, d.tags[GROUP_TAG]!).catch(() => {});
    }
    if (this.settled) this.trimToMax();
    this.generation++;
    this.pump();
  }

  /**
   * Servers that landed from a previous instance's requests can leave less room than the
   * creations still queued here assume: cancel the queued ones that would exceed max.
   */
  private trimToMax(): void {
    for (const g of this.groups.values()) {
      const queued = this.pendingOf(g.name).filter((p) => p.state === "queued").sort((a, b) => b.acceptedAt - a.acceptedAt);
      if (!queued.length) continue;
      const room = g.max - this.existing(g.name) - this.pendingOf(g.name).filter((p) => p.state === "creating" || p.state === "verifying").length;
      const excess = queued.length - Math.max(0, room);
      if (excess <= 0) continue;
      for (const p of queued.slice(0, excess)) this.pending.delete(p.name);
      log.warn("cancelled queued creations that would take the group above its max", { group: g.name, cancelled: excess, max: g.max });
    }
  }

  /** Servers of a group that exist in the cloud and are not being deleted (listed, or confirmed created). */
  private existing(group: string): number {
    let n = 0;
    for (const s of this.serversOf(group)) if (!this.deleting.has(s.uuid)) n++;
    for (const p of this.pending.values()) if (p.group === group && p.state === "created" && !(p.uuid && this.deleting.has(p.uuid))) n++;
    return n;
  }

  // ------------------------------------------------------------------ views

  private serversOf(group: string): ServerView[] {
    return this.byGroup.get(group) ?? [];
  }

  private pendingOf(group: string): PendingCreate[] {
    const out: PendingCreate[] = [];
    for (const p of this.pending.values()) if (p.group === group) out.push(p);
    return out;
  }

  /** Servers that exist and are not being deleted, plus accepted creations not yet listed. */
  targetSize(groupId: string): number {
    this.group(groupId);
    let n = 0;
    for (const s of this.serversOf(groupId)) if (!this.deleting.has(s.uuid)) n++;
    for (const p of this.pending.values()) if (p.group === groupId && !(p.uuid && this.deleting.has(p.uuid))) n++;
    return n;
  }

  nodes(groupId: string): InstanceView[] {
    this.group(groupId);
    const out: InstanceView[] = [];
    for (const s of this.serversOf(groupId)) {
      const id = PROVIDER_ID_PREFIX + s.uuid;
      if (this.deleting.has(s.uuid)) out.push({ id, state: "deleting" });
      else if (s.status === "error") {
        out.push({ id, state: "creating", error: { code: "server-error", message: `server ${s.name} is in status error`, errorClass: OTHER_ERROR } });
      } else if (s.status === "changing") out.push({ id, state: "creating" });
      else out.push({ id, state: "running" });
    }
    for (const p of this.pendingOf(groupId)) {
      const id = p.uuid ? PROVIDER_ID_PREFIX + p.uuid : PENDING_ID_PREFIX + p.name;
      if (p.uuid && this.deleting.has(p.uuid)) out.push({ id, state: "deleting" });
      else out.push(p.state === "failed" ? { id, state: "creating", error: p.error } : { id, state: "creating" });
    }
    return out;
  }

  /** The group of a node, or "" when it is not one of our servers. Never throws. */
  groupForNode(providerID: string, name: string): string {
    if (providerID) {
      const parsed = parseProviderId(providerID);
      if (!parsed) return "";
      if (parsed.pendingName !== undefined) return this.pending.get(parsed.pendingName)?.group ?? "";
      const s = this.servers.get(parsed.uuid!);
      if (s) return s.tags[GROUP_TAG]!;
      return this.pendingWithUuid(parsed.uuid!)?.group ?? this.deleting.get(parsed.uuid!)?.group ?? "";
    }
    if (!name) return "";
    const s = this.byName.get(name);
    if (s) return s.tags[GROUP_TAG]!;
    return this.pending.get(name)?.group ?? "";
  }

  /** An accepted creation the cloud has confirmed but no list has shown yet. */
  private pendingWithUuid(uuid: string): PendingCreate | undefined {
    for (const p of this.pending.values()) if (p.uuid === uuid) return p;
    return undefined;
  }

  /** Everything the provider knows, for logs, the demo and debugging. */
  snapshot() {
    return {
      viewAgeSeconds: Number.isFinite(this.viewAgeSeconds) ? Math.round(this.viewAgeSeconds * 10) / 10 : null,
      groups: [...this.groups.keys()].map((g) => ({
        name: g,
        targetSize: this.targetSize(g),
        servers: this.serversOf(g).map((s) => ({ name: s.name, uuid: s.uuid, status: s.status, deleting: this.deleting.has(s.uuid) })),
        pending: this.pendingOf(g).map((p) => ({ name: p.name, state: p.state, uuid: p.uuid, error: p.error?.message })),
      })),
    };
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
    const target = this.targetSize(groupId);
    if (target + delta > g.max) {
      throw new ConnectError(`increasing node group "${groupId}" by ${delta} would make it ${target + delta}, above its max size ${g.max} (target size now ${target})`, Code.OutOfRange);
    }
    this.requireFresh("create servers");
    const names: string[] = [];
    for (let i = 0; i < delta; i++) {
      let name: string;
      do name = `${this.deps.config.clusterName}-${groupId}-${randomSuffix()}`;
      while (this.pending.has(name) || this.byName.has(name));
      const p: PendingCreate = { name, group: groupId, acceptedAt: this.now(), state: "queued", attempts: 0 };
      this.pending.set(name, p);
      this.enqueue(p);
      names.push(name);
    }
    this.generation++;
    log.info("scale-up accepted", { group: groupId, delta, targetSize: target + delta });
    return names;
  }

  private enqueue(p: PendingCreate): void {
    this.queue.push(p);
    this.pump();
  }

  private pump(): void {
    // Queued creations wait while the view is stale or the startup grace has not passed;
    // the next applied list pumps again.
    while (!this.stopped && this.canAct && this.activeCreates < this.deps.config.createConcurrency && this.queue.length) {
      const p = this.queue.shift()!;
      if (this.pending.get(p.name) !== p || p.state !== "queued") continue; // cancelled meanwhile
      this.activeCreates++;
      void this.createOne(p).finally(() => {
        this.activeCreates--;
        this.pump();
        if (this.activeCreates === 0 && this.queue.length === 0) for (const f of this.idle) f();
      });
    }
  }

  /** Resolves when no creation is queued or running (tests, shutdown). */
  whenIdle(): Promise<void> {
    if (this.activeCreates === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const f = () => {
        this.idle.delete(f);
        resolve();
      };
      this.idle.add(f);
    });
  }

  private fail(p: PendingCreate, err: CloudscaleError | Error): void {
    const outOfResources = err instanceof CloudscaleError && (err.kind === "quota" || err.kind === "capacity");
    p.state = "failed";
    p.failedAt = this.now();
    this.generation++;
    p.error = {
      code: outOfResources ? (err as CloudscaleError).kind === "quota" ? "QUOTA_EXCEEDED" : "OUT_OF_CAPACITY" : "CREATE_FAILED",
      message: redact(err.message).slice(0, 1000),
      errorClass: outOfResources ? OUT_OF_RESOURCES : OTHER_ERROR,
    };
    this.stats.createFailures++;
    log.warn("server creation failed", { group: p.group, server: p.name, errorClass: p.error.errorClass, error: err.message });
  }

  private async createOne(p: PendingCreate): Promise<void> {
    const g = this.groups.get(p.group)!;
    const maxAttempts = this.deps.maxCreateAttempts ?? 3;
    let body: CreateServerRequest;
    try {
      body = this.deps.createRequest(g, p.name);
    } catch (e) {
      this.fail(p, e as Error);
      return;
    }
    while (!this.stopped && this.pending.get(p.name) === p) {
      if (!this.canAct) {
        // The view went stale while this one waited: back to the queue until a list lands.
        p.state = "queued";
        this.queue.unshift(p);
        return;
      }
      p.attempts++;
      p.state = "creating";
      try {
        this.stats.creates++;
        const server = await this.deps.cloud.createServer(body);
        p.uuid = server.uuid;
        p.state = "created";
        p.confirmedAt = this.now();
        this.generation++;
        log.info("server created", { group: p.group, server: p.name, uuid: server.uuid });
        return;
      } catch (e) {
        const err = e instanceof CloudscaleError ? e : new CloudscaleError("network", String(e));
        if (!err.ambiguous) return this.fail(p, err);
        // The create may have happened. Never re-send blindly: look for it by its unique name first.
        p.state = "verifying";
        p.uncertainSince = this.now();
        log.warn("create got no clear answer; checking whether the server exists", { server: p.name, error: err.message });
        await sleep(this.deps.verifyDelayMs ?? 5000);
        if (this.pending.get(p.name) !== p || p.state !== "verifying") return; // resolved by a Refresh meanwhile
        let found: Server | undefined;
        try {
          const list = await this.deps.cloud.listServers({ [CLUSTER_TAG]: this.deps.config.clusterName, [GROUP_TAG]: p.group });
          found = list.find((s) => s.name === p.name);
        } catch (verifyErr) {
          // Cannot tell now: stay "verifying"; the next successful Refresh decides.
          log.warn("cannot check the unanswered create now; the next refresh decides", { server: p.name, error: (verifyErr as Error).message });
          return;
        }
        if (this.pending.get(p.name) !== p || p.state !== "verifying") return;
        if (found) {
          p.uuid = found.uuid;
          p.state = "created";
          p.confirmedAt = this.now();
          this.generation++;
          log.info("the unanswered create did take effect", { server: p.name, uuid: found.uuid });
          return;
        }
        if (p.attempts >= maxAttempts) return this.fail(p, err);
        p.uncertainSince = undefined;
      }
    }
  }

  // ------------------------------------------------------------- scale down

  /** Cancels accepted creations that have not reached the cloud; never deletes a server. */
  decreaseTargetSize(groupId: string, delta: number): void {
    this.group(groupId);
    if (!Number.isInteger(delta) || delta >= 0) throw new ConnectError(`delta must be negative, got ${delta}`, Code.InvalidArgument);
    const cancellable = this.pendingOf(groupId)
      .filter((p) => p.state === "queued" || p.state === "failed")
      .sort((a, b) => (a.state === b.state ? b.acceptedAt - a.acceptedAt : a.state === "failed" ? -1 : 1));
    if (-delta > cancellable.length) {
      throw new ConnectError(
        `cannot decrease node group "${groupId}" by ${-delta}: only ${cancellable.length} requested server(s) have not been created yet; existing servers are removed with DeleteNodes`,
        Code.FailedPrecondition,
      );
    }
    for (const p of cancellable.slice(0, -delta)) this.pending.delete(p.name);
    this.generation++;
    log.info("target size decreased", { group: groupId, delta, targetSize: this.targetSize(groupId) });
  }

  /**
   * Deletes the given nodes of a group. Every node must be ours and of this
   * group or nothing is deleted; the group never goes below its min size.
   */
  async deleteNodes(groupId: string, nodes: { providerID: string; name: string }[], signal?: AbortSignal): Promise<void> {
    const g = this.group(groupId);
    if (nodes.length === 0) return;
    this.requireFresh("delete servers");
    type Target = { kind: "server"; uuid: string; label: string } | { kind: "pending"; name: string } | { kind: "gone" } | { kind: "check"; uuid: string; label: string };
    const targets: Target[] = [];
    const problems: string[] = [];
    for (const n of nodes) {
      const label = (n.name || n.providerID).slice(0, 120);
      if (n.providerID) {
        const parsed = parseProviderId(n.providerID);
        if (!parsed) {
          problems.push(`node "${label}" has providerID "${n.providerID.slice(0, 120)}", which is not a cloudscale server`);
          continue;
        }
        if (parsed.pendingName !== undefined) {
          const p = this.pending.get(parsed.pendingName);
          if (p && p.group !== groupId) problems.push(`node "${label}" belongs to node group "${p.group}", not "${groupId}"`);
          else targets.push(p ? { kind: "pending", name: p.name } : { kind: "gone" });
          continue;
        }
        const uuid = parsed.uuid!;
        const s = this.servers.get(uuid);
        const p = this.pendingWithUuid(uuid);
        const owner = s?.tags[GROUP_TAG] ?? p?.group ?? this.deleting.get(uuid)?.group;
        if (owner !== undefined && owner !== groupId) problems.push(`node "${label}" belongs to node group "${owner}", not "${groupId}"`);
        else if (this.deleting.has(uuid)) targets.push({ kind: "gone" });
        else if (s || p) targets.push({ kind: "server", uuid, label });
        else targets.push({ kind: "check", uuid, label }); // unknown to the view: ask the cloud
        continue;
      }
      const s = this.byName.get(n.name);
      const p = this.pending.get(n.name);
      if (s) {
        if (s.tags[GROUP_TAG] !== groupId) problems.push(`node "${label}" belongs to node group "${s.tags[GROUP_TAG]}", not "${groupId}"`);
        else targets.push(this.deleting.has(s.uuid) ? { kind: "gone" } : { kind: "server", uuid: s.uuid, label });
      } else if (p) {
        if (p.group !== groupId) problems.push(`node "${label}" belongs to node group "${p.group}", not "${groupId}"`);
        else targets.push(p.uuid ? { kind: "server", uuid: p.uuid, label } : { kind: "pending", name: p.name });
      } else problems.push(`node "${label}" is not a server of node group "${groupId}"`);
    }
    if (problems.length) throw new ConnectError(`nothing deleted: ${problems.slice(0, 5).join("; ")}${problems.length > 5 ? `; and ${problems.length - 5} more` : ""}`, Code.InvalidArgument);
    const busy = targets.filter((t) => t.kind === "pending" && ["creating", "verifying"].includes(this.pending.get(t.name)?.state ?? ""));
    if (busy.length) {
      throw new ConnectError(`nothing deleted: server ${(busy[0] as { name: string }).name} is being created right now; try again once it exists`, Code.Unavailable);
    }
    if (!this.settled && targets.some((t) => t.kind === "server" || t.kind === "check")) {
      throw new ConnectError(
        "nothing deleted: the provider has just started, and requests of a previous instance may still be landing in the cloud; deletions resume after the next Refresh past the startup grace",
        Code.Unavailable,
      );
    }

    // Ask the cloud about every server first: it must exist with both of our tags. All or nothing.
    const toCheck = targets.filter((t): t is Extract<Target, { uuid: string }> => t.kind === "server" || t.kind === "check");
    const seen = new Set<string>();
    const checked = await mapBounded(toCheck, 10, async (t) => {
      if (seen.has(t.uuid)) return { t, verdict: "duplicate" as const };
      seen.add(t.uuid);
      let server: Server | null;
      try {
        server = await this.deps.cloud.getServer(t.uuid, signal);
      } catch (e) {
        throw new ConnectError(`nothing deleted: cannot read server ${t.uuid} to confirm it is ours: ${(e as Error).message}`, Code.Unavailable);
      }
      if (!server) return { t, verdict: "gone" as const };
      if (server.tags?.[CLUSTER_TAG] !== this.deps.config.clusterName || server.tags?.[GROUP_TAG] !== groupId) {
        return { t, verdict: "foreign" as const, server };
      }
      return { t, verdict: "ours" as const };
    });
    const foreign = checked.filter((c) => c.verdict === "foreign");
    if (foreign.length) {
      throw new ConnectError(
        `nothing deleted: ${foreign.map((c) => `node "${c.t.label}" (server ${c.t.uuid}) does not carry this provider's tags for node group "${groupId}"`).slice(0, 5).join("; ")}`,
        Code.PermissionDenied,
      );
    }
    const ours = checked.filter((c) => c.verdict === "ours").map((c) => c.t.uuid);
    const pendingNames = targets.filter((t): t is Extract<Target, { kind: "pending" }> => t.kind === "pending").map((t) => t.name);
    // Min counts servers that exist, not creations still on their way (they may yet fail).
    const existing = this.existing(groupId);
    if (ours.length > 0 && existing - ours.length < g.min) {
      throw new ConnectError(
        `nothing deleted: removing ${ours.length} server(s) from "${groupId}" would leave ${existing - ours.length}, below its min size ${g.min}`,
        Code.FailedPrecondition,
      );
    }
    for (const name of pendingNames) this.pending.delete(name); // queued or failed: they never reached the cloud
    this.generation++;
    const results = await mapBounded(ours, 10, (uuid) => this.deleteOne(uuid, groupId).then(() => null, (e: Error) => `${uuid}: ${e.message}`));
    const failures = results.filter((r): r is string => r !== null);
    if (failures.length) throw new ConnectError(`some deletions failed: ${failures.slice(0, 5).join("; ")}`, Code.Unavailable);
  }

  private async deleteOne(uuid: string, group: string): Promise<void> {
    this.deleting.set(uuid, { group, issuedAt: this.now() });
    this.generation++;
    try {
      this.stats.deletes++;
      const outcome = await this.deps.cloud.deleteServer(uuid);
      const mark = this.deleting.get(uuid);
      if (mark) {
        mark.completedAt = this.now();
        mark.confirmed = true;
      }
      for (const [name, p] of this.pending) if (p.uuid === uuid) this.pending.delete(name);
      log.info(outcome === "gone" ? "server was already gone" : "server deleted", { group, uuid });
    } catch (e) {
      const err = e as CloudscaleError;
      if (!(err instanceof CloudscaleError) || !err.ambiguous) this.deleting.delete(uuid); // it still exists: count it again
      else {
        const mark = this.deleting.get(uuid);
        if (mark) mark.completedAt = this.now(); // the next list decides
      }
      log.warn("server deletion failed", { group, uuid, error: err.message });
      throw err;
    } finally {
      this.generation++;
    }
  }

  stop(): void {
    this.stopped = true;
    this.queue.length = 0;
  }
}

export async function mapBounded<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
