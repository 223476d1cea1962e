// The create queue: accepted creations wait here until they may go to the cloud
// (a fresh view, the startup grace over), at most `concurrency` at once. A create
// is never re-sent blindly: after an answer that leaves it open (5xx, timeout,
// dropped connection) the server is looked for by its unique name first, and
// only sent again when the cloud shows it does not exist. Each send is an attempt
// of its own (PendingCreate.attempts numbers them): whatever an older attempt
// learns after a newer one went out is not acted on.
import { CloudscaleError, type Cloudscale } from "./cloudscale";
import type { Clock } from "./clock";
import { log, redact } from "./log";
import { CLUSTER_TAG, GROUP_TAG, type CreateServerRequest, type NodeGroupConfig, type Server } from "./types";
import { CREATE_ERROR_CODES, OTHER_ERROR, OUT_OF_RESOURCES, type PendingCreate } from "./view";

export interface CreateQueueDeps {
  clusterName: string;
  groups: ReadonlyMap<string, NodeGroupConfig>;
  cloud: Pick<Cloudscale, "createServer" | "listServers">;
  /** Builds the POST body for one server of a group (user-data patched for that server). */
  createRequest: (group: NodeGroupConfig, name: string) => CreateServerRequest;
  /** The accepted creations by name, shared with the view (a creation leaves it when a list shows its server). */
  pending: Map<string, PendingCreate>;
  clock: Clock;
  concurrency: number;
  /** Wait before checking whether an unanswered create took effect (ms). */
  verifyDelayMs: number;
  /** Create attempts per accepted server before it is reported as failed. */
  maxAttempts: number;
  /** Whether creations may go to the cloud now (a fresh view, past the startup grace). */
  mayCreate: () => boolean;
  /** Called when queued creations stay queued because they may not go out now (they are held). */
  onHeld?: () => void;
  /** Called when a creation is given up (its error is set). */
  onFailed?: (p: PendingCreate) => void;
}

export class CreateQueue {
  private readonly queue: PendingCreate[] = [];
  private active = 0;
  private stopped = false;
  /** Aborted by stop(): ends the verify waits at once. */
  private readonly stopping = new AbortController();
  private readonly idle = new Set<() => void>();
  /** Changes made in place to accepted creations that CA sees (a server UUID, a failure). */
  changes = 0;

  constructor(private readonly deps: CreateQueueDeps) {}

  /** Accepts one creation under a name no server or creation has; it goes out as soon as it may. */
  accept(group: string, name: string): PendingCreate {
    const p: PendingCreate = { name, group, acceptedAt: this.deps.clock.now(), state: "queued", attempts: 0 };
    this.deps.pending.set(name, p);
    this.queue.push(p);
    this.pump();
    return p;
  }

  /**
   * An unanswered create that a list showed did not happen: queued again (sent by the next
   * pump), or given up when it has had all its attempts. Returns whether it was queued.
   */
  retry(p: PendingCreate): boolean {
    const err = new CloudscaleError("network", `creating server ${p.name}: ${p.attempts} attempt(s) got no clear answer and the cloud does not show the server`);
    if (p.attempts >= this.deps.maxAttempts) {
      this.fail(p, err);
      return false;
    }
    p.state = "queued";
    p.uncertainSince = undefined;
    this.queue.push(p);
    return true;
  }

  /** Cancels up to `n` creations of a group that have not been sent, the newest first; returns how many. */
  cancelQueued(group: string, n: number): number {
    if (n <= 0) return 0;
    const queued = [...this.deps.pending.values()]
      .filter((p) => p.group === group && p.state === "queued")
      .sort((a, b) => b.acceptedAt - a.acceptedAt)
      .slice(0, n);
    for (const p of queued) this.deps.pending.delete(p.name);
    return queued.length;
  }

  /** Sends queued creations while they may go out. Queued ones wait for the next applied list otherwise. */
  pump(): void {
    while (!this.stopped && this.deps.mayCreate() && this.active < this.deps.concurrency && this.queue.length) {
      const p = this.queue.shift()!;
      if (!this.live(p)) continue; // cancelled meanwhile
      this.active++;
      this.createOne(p)
        .catch((e: unknown) => this.fail(p, e instanceof Error ? e : new Error(String(e))))
        .finally(() => {
          this.active--;
          this.pump();
          if (this.active === 0 && this.queue.length === 0) for (const f of this.idle) f();
        })
        .catch((e: unknown) => log.error("create queue bookkeeping failed", { error: String(e) }));
    }
    if (!this.stopped && !this.deps.mayCreate() && this.queue.some((p) => this.live(p))) this.deps.onHeld?.();
  }

  private live(p: PendingCreate): boolean {
    return this.deps.pending.get(p.name) === p && p.state === "queued";
  }

  /** Resolves when no creation is queued or running (tests, shutdown). */
  whenIdle(): Promise<void> {
    if (this.active === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const f = () => {
        this.idle.delete(f);
        resolve();
      };
      this.idle.add(f);
    });
  }

  stop(): void {
    this.stopped = true;
    this.queue.length = 0;
    this.stopping.abort();
    if (this.active === 0) for (const f of this.idle) f();
  }

  private fail(p: PendingCreate, err: CloudscaleError | Error): void {
    if (this.deps.pending.get(p.name) !== p || p.state === "failed") return;
    const outOfResources = err instanceof CloudscaleError && (err.kind === "quota" || err.kind === "capacity");
    p.state = "failed";
    p.failedAt = this.deps.clock.now();
    this.changes++;
    p.error = {
      code: outOfResources ? CREATE_ERROR_CODES[(err as CloudscaleError).kind as "quota" | "capacity"] : CREATE_ERROR_CODES.other,
      message: redact(err.message).slice(0, 1000),
      errorClass: outOfResources ? OUT_OF_RESOURCES : OTHER_ERROR,
    };
    this.deps.onFailed?.(p);
    log.warn("server creation failed", { group: p.group, server: p.name, errorClass: p.error.errorClass, error: err.message });
  }

  /** Whether `attempt` is still the creation's latest attempt, in `state`. */
  private current(p: PendingCreate, attempt: number, state: PendingCreate["state"]): boolean {
    return this.deps.pending.get(p.name) === p && p.attempts === attempt && p.state === state;
  }

  private created(p: PendingCreate, uuid: string): void {
    p.uuid = uuid;
    p.state = "created";
    p.confirmedAt = this.deps.clock.now();
    this.changes++;
  }

  /** Sends one accepted creation: attempt after attempt while the cloud shows an unanswered one did not happen. */
  private async createOne(p: PendingCreate): Promise<void> {
    const { deps } = this;
    const g = deps.groups.get(p.group)!;
    let body: CreateServerRequest;
    try {
      body = deps.createRequest(g, p.name);
    } catch (e) {
      this.fail(p, e as Error);
      return;
    }
    while (!this.stopped) {
      if (!deps.mayCreate()) {
        // The view went stale while this one waited: back to the queue until a list lands.
        p.state = "queued";
        this.queue.unshift(p);
        this.deps.onHeld?.();
        return;
      }
      const attempt = ++p.attempts;
      p.state = "creating";
      let err: CloudscaleError;
      try {
        const server = await deps.cloud.createServer(body);
        if (!this.current(p, attempt, "creating")) return;
        this.created(p, server.uuid);
        log.info("server created", { group: p.group, server: p.name, uuid: server.uuid });
        return;
      } catch (e) {
        if (!this.current(p, attempt, "creating")) return;
        err = e instanceof CloudscaleError ? e : new CloudscaleError("network", String(e));
        if (!err.ambiguous) return this.fail(p, err);
      }
      if (!(await this.verify(p, attempt, err))) return;
      if (p.attempts >= deps.maxAttempts) return this.fail(p, err);
      p.uncertainSince = undefined;
    }
  }

  /**
   * The create may have happened: look for it by its unique name after verifyDelayMs. Returns true
   * when the cloud shows it did not happen (send it again); false when it is settled or no longer
   * this attempt's to decide (found, a newer attempt, a list, a cancel, a stop).
   */
  private async verify(p: PendingCreate, attempt: number, err: CloudscaleError): Promise<boolean> {
    const { deps } = this;
    p.state = "verifying";
    p.uncertainSince = deps.clock.now();
    log.warn("create got no clear answer; checking whether the server exists", { server: p.name, error: err.message });
    await deps.clock.sleep(deps.verifyDelayMs, this.stopping.signal);
    if (this.stopped || !this.current(p, attempt, "verifying")) return false; // resolved by a Refresh meanwhile
    let found: Server | undefined;
    try {
      const list = await deps.cloud.listServers({ [CLUSTER_TAG]: deps.clusterName, [GROUP_TAG]: p.group });
      found = list.find((s) => s.name === p.name);
    } catch (verifyErr) {
      // Cannot tell now: stay "verifying"; the next successful Refresh decides.
      log.warn("cannot check the unanswered create now; the next refresh decides", { server: p.name, error: (verifyErr as Error).message });
      return false;
    }
    // A list taken before a newer attempt was sent says nothing about that attempt.
    if (!this.current(p, attempt, "verifying")) return false;
    if (!found) return true;
    this.created(p, found.uuid);
    log.info("the unanswered create did take effect", { server: p.name, uuid: found.uuid });
    return false;
  }
}

/** Queued creations of a group that would take it above `max`, counting what exists and what is being sent. */
export function queuedOverMax(pending: PendingCreate[], existingServers: number, max: number): number {
  const queued = pending.filter((p) => p.state === "queued").length;
  const sending = pending.filter((p) => p.state === "creating" || p.state === "verifying").length;
  return Math.max(0, queued - Math.max(0, max - existingServers - sending));
}

/** Creations DecreaseTargetSize may cancel (they never reached the cloud): failed ones first, then queued, newest first. */
export function cancellable(pending: PendingCreate[]): PendingCreate[] {
  return pending
    .filter((p) => p.state === "queued" || p.state === "failed")
    .sort((a, b) => (a.state === b.state ? b.acceptedAt - a.acceptedAt : a.state === "failed" ? -1 : 1));
}
