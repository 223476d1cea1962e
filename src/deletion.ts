// Deletion: which servers a DeleteNodes call names (all ours and of the group,
// or nothing is deleted), the cloud's word that each one carries our tags, the
// group's min, and the DELETE calls themselves. The cloud refuses to delete a
// server that is still `changing` (booting); such a delete is kept and tried
// again until the server can be deleted, for a bounded time.
import type { Clock } from "./clock";
import { CloudscaleError, type Cloudscale } from "./cloudscale";
import { ProviderError } from "./errors";
import { log } from "./log";
import { CLUSTER_TAG, GROUP_TAG, type Server } from "./types";
import { parseProviderId, pendingWithUuid, type DeleteMark, type Marks, type View } from "./view";

export type Target =
  /** A server the view or an accepted creation knows. */
  | { kind: "server"; uuid: string; label: string }
  /** An accepted creation with no server yet. */
  | { kind: "pending"; name: string }
  /** Already deleted, or being deleted: nothing to do. */
  | { kind: "gone" }
  /** A server the view does not know: the cloud decides. */
  | { kind: "check"; uuid: string; label: string };

export interface NodeRef {
  providerID: string;
  name: string;
}

/**
 * What a DeleteNodes call asks for, node by node, from the view alone. Any problem
 * (not a cloudscale server, not ours, of another group) means nothing is deleted.
 */
export function planDeletion(view: View, marks: Marks, group: string, nodes: NodeRef[]): { targets: Target[]; problems: string[] } {
  const targets: Target[] = [];
  const problems: string[] = [];
  const otherGroup = (label: string, owner: string) => `node "${label}" belongs to node group "${owner}", not "${group}"`;
  for (const n of nodes) {
    const label = (n.name || n.providerID).slice(0, 120);
    if (n.providerID) {
      const parsed = parseProviderId(n.providerID);
      if (!parsed) {
        problems.push(`node "${label}" has providerID "${n.providerID.slice(0, 120)}", which is not a cloudscale server`);
        continue;
      }
      if (parsed.pendingName !== undefined) {
        const p = marks.pending.get(parsed.pendingName);
        if (p && p.group !== group) problems.push(otherGroup(label, p.group));
        // CA read the instance while its create was on its way; the POST may have been answered since.
        else if (p?.uuid) targets.push(marks.deleting.has(p.uuid) ? { kind: "gone" } : { kind: "server", uuid: p.uuid, label });
        else targets.push(p ? { kind: "pending", name: p.name } : { kind: "gone" });
        continue;
      }
      const uuid = parsed.uuid!;
      const s = view.servers.get(uuid);
      const p = pendingWithUuid(marks, uuid);
      const owner = s?.tags[GROUP_TAG] ?? p?.group ?? marks.deleting.get(uuid)?.group;
      if (owner !== undefined && owner !== group) problems.push(otherGroup(label, owner));
      else if (marks.deleting.has(uuid)) targets.push({ kind: "gone" });
      else if (s || p) targets.push({ kind: "server", uuid, label });
      else targets.push({ kind: "check", uuid, label }); // unknown to the view: ask the cloud
      continue;
    }
    const s = view.byName.get(n.name);
    const p = marks.pending.get(n.name);
    if (s) {
      if (s.tags[GROUP_TAG] !== group) problems.push(otherGroup(label, s.tags[GROUP_TAG]!));
      else targets.push(marks.deleting.has(s.uuid) ? { kind: "gone" } : { kind: "server", uuid: s.uuid, label });
    } else if (p) {
      if (p.group !== group) problems.push(otherGroup(label, p.group));
      else targets.push(p.uuid ? { kind: "server", uuid: p.uuid, label } : { kind: "pending", name: p.name });
    } else problems.push(`node "${label}" is not a server of node group "${group}"`);
  }
  return { targets, problems };
}

/** Targets that name a server in the cloud (known to the view or not). */
export function serverTargets(targets: Target[]): Extract<Target, { uuid: string }>[] {
  return targets.filter((t): t is Extract<Target, { uuid: string }> => t.kind === "server" || t.kind === "check");
}

/** Why removing `removing` servers of a group with `existing` servers would break its min, or undefined. */
export function belowMin(group: string, existing: number, removing: number, min: number): string | undefined {
  if (removing === 0 || existing - removing >= min) return undefined;
  return `removing ${removing} server(s) from "${group}" would leave ${existing - removing}, below its min size ${min}`;
}

/**
 * Asks the cloud about every named server: each must exist with both of our tags for this
 * group. All or nothing: throws when one cannot be read or is not ours. Returns the UUIDs to
 * delete (gone ones and repeats left out).
 */
export async function confirmOwnership(
  cloud: Pick<Cloudscale, "getServer">,
  targets: Extract<Target, { uuid: string }>[],
  clusterName: string,
  group: string,
  signal?: AbortSignal,
  /** The configured groups: a server tagged for one that is not configured is not a node of ours. */
  configured: (group: string) => boolean = () => true,
): Promise<string[]> {
  const seen = new Set<string>();
  const checked = await mapBounded(targets, 10, async (t) => {
    if (seen.has(t.uuid)) return { t, verdict: "duplicate" as const };
    seen.add(t.uuid);
    let server: Server | null;
    try {
      server = await cloud.getServer(t.uuid, signal);
    } catch (e) {
      // The caller gave up: say so (its client may not have noticed yet), not that the API failed.
      if (signal?.aborted) throw new ProviderError("deadline-exceeded", `nothing deleted: the caller's deadline passed while reading server ${t.uuid} to confirm it is ours`);
      throw new ProviderError("unavailable", `nothing deleted: cannot read server ${t.uuid} to confirm it is ours: ${(e as Error).message}`);
    }
    if (!server) return { t, verdict: "gone" as const };
    const owner = server.tags?.[GROUP_TAG] ?? "";
    if (server.tags?.[CLUSTER_TAG] !== clusterName || !configured(owner)) return { t, verdict: "foreign" as const };
    if (owner !== group) return { t, verdict: "other-group" as const, owner };
    return { t, verdict: "ours" as const };
  });
  // As from the view: a server of another of our groups is a wrong request; one without our tags (or
  // of a group no longer configured) is not ours.
  const otherGroup = checked.flatMap((c) => (c.verdict === "other-group" ? [`node "${c.t.label}" belongs to node group "${c.owner.slice(0, 100)}", not "${group}"`] : []));
  if (otherGroup.length) throw new ProviderError("invalid-argument", `nothing deleted: ${otherGroup.slice(0, 5).join("; ")}`);
  const foreign = checked.filter((c) => c.verdict === "foreign");
  if (foreign.length) {
    throw new ProviderError(
      "not-ours",
      `nothing deleted: ${foreign.map((c) => `node "${c.t.label}" (server ${c.t.uuid}) does not carry this provider's tags for node group "${group}"`).slice(0, 5).join("; ")}`,
    );
  }
  return checked.filter((c) => c.verdict === "ours").map((c) => c.t.uuid);
}

export interface DeleterDeps {
  cloud: Pick<Cloudscale, "deleteServer">;
  /** The marks shared with the view: a delete is marked from its first call until a list decides. */
  marks: Marks;
  clock: Clock;
  /** How long a delete the cloud refuses because the server is still changing is tried again (ms). */
  busyRetryMs: number;
  /** Called when a delete fails or is given up, with the reason. */
  onError?: (group: string, message: string) => void;
}

/** First wait, and the most, between tries of a delete the cloud refused while the server was changing (ms). */
const BUSY_FIRST_WAIT_MS = 2000;
const BUSY_MAX_WAIT_MS = 30_000;

export class Deleter {
  private stopped = false;
  /** Aborted by stop(): ends the waits between tries of busy deletes at once. */
  private readonly stopping = new AbortController();

  constructor(private readonly deps: DeleterDeps) {}

  /**
   * Deletes one server. Resolves once the cloud confirmed it, or once the cloud refused it
   * for now because the server is still changing ("later": tried again in the background,
   * counted as deleting meanwhile). Rejects when the delete failed.
   */
  async deleteOne(uuid: string, group: string): Promise<"deleted" | "gone" | "later"> {
    const { marks, clock } = this.deps;
    const mark: DeleteMark = { group, issuedAt: clock.now() };
    marks.deleting.set(uuid, mark);
    try {
      const outcome = await this.call(uuid, mark);
      log.info(outcome === "gone" ? "server was already gone" : "server deleted", { group, uuid });
      return outcome;
    } catch (e) {
      if (e instanceof CloudscaleError && e.kind === "busy") {
        log.info("the server is still changing; its delete is tried again until it can be done", { group, uuid });
        this.retryWhileBusy(uuid, mark).catch((err: unknown) => this.failed(uuid, mark, err instanceof Error ? err : new Error(String(err))));
        return "later";
      }
      this.failed(uuid, mark, e as Error);
      throw e;
    }
  }

  stop(): void {
    this.stopped = true;
    this.stopping.abort();
  }

  private async call(uuid: string, mark: DeleteMark): Promise<"deleted" | "gone"> {
    const outcome = await this.deps.cloud.deleteServer(uuid);
    mark.completedAt = this.deps.clock.now();
    mark.confirmed = true;
    for (const [name, p] of this.deps.marks.pending) if (p.uuid === uuid) this.deps.marks.pending.delete(name);
    return outcome;
  }

  /** A delete that failed: unanswered ones wait for a list to decide; refused ones count the server again. */
  private failed(uuid: string, mark: DeleteMark, err: Error): void {
    if (err instanceof CloudscaleError && err.ambiguous) mark.completedAt = this.deps.clock.now();
    else if (this.deps.marks.deleting.get(uuid) === mark) this.deps.marks.deleting.delete(uuid);
    log.warn("server deletion failed", { group: mark.group, uuid, error: err.message });
    this.deps.onError?.(mark.group, `deleting server ${uuid} failed: ${err.message}`);
  }

  private async retryWhileBusy(uuid: string, mark: DeleteMark): Promise<void> {
    const { marks, clock } = this.deps;
    const giveUpAt = clock.now() + this.deps.busyRetryMs;
    let wait = BUSY_FIRST_WAIT_MS;
    for (;;) {
      await clock.sleep(wait, this.stopping.signal);
      wait = Math.min(wait * 2, BUSY_MAX_WAIT_MS);
      if (this.stopped || marks.deleting.get(uuid) !== mark) return;
      try {
        const outcome = await this.call(uuid, mark);
        log.info(outcome === "gone" ? "server was already gone" : "server deleted", { group: mark.group, uuid });
        return;
      } catch (e) {
        const busy = e instanceof CloudscaleError && e.kind === "busy";
        if (busy && clock.now() < giveUpAt) continue;
        if (busy) {
          log.warn("the server stayed in changing; giving up deleting it (it counts again, CA decides anew)", { group: mark.group, uuid });
          this.deps.onError?.(mark.group, `server ${uuid} stayed in changing; gave up deleting it after ${Math.round(this.deps.busyRetryMs / 1000)}s`);
          if (marks.deleting.get(uuid) === mark) marks.deleting.delete(uuid);
          return;
        }
        this.failed(uuid, mark, e as Error);
        return;
      }
    }
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
