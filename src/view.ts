// The provider's view of the cloud, as pure functions: a list of our servers
// becomes a view; the view plus the marks (what the list cannot show yet:
// accepted creations, issued deletions) answer target size, instances and the
// group of a node; and what a newer list means for each mark is decided here.
// Nothing in this file does I/O or keeps state; the reconciler owns the state.
import { CLUSTER_TAG, GROUP_TAG, type Server } from "./types";

const PROVIDER_ID_PREFIX = "cloudscale://";
/** Instance ids of creations that have no server UUID yet. */
export const PENDING_ID_PREFIX = "cloudscale://pending/";

export const OUT_OF_RESOURCES = 1;
export const OTHER_ERROR = 99;

/** The error codes a failed creation is shown to CA with (and counted by in the metrics). */
export const CREATE_ERROR_CODES = {
  quota: "QUOTA_EXCEEDED",
  capacity: "OUT_OF_CAPACITY",
  other: "CREATE_FAILED",
} as const;

export type InstanceState = "running" | "creating" | "deleting";
/** An instance as an operator counts it: CA's state, or failed when it carries an error. */
export type ServerState = InstanceState | "failed";
export const SERVER_STATES: readonly ServerState[] = ["running", "creating", "deleting", "failed"];

export interface InstanceView {
  id: string;
  state: InstanceState;
  error?: { code: string; message: string; errorClass: number };
}

/** What the view keeps of a listed server. The list's other fields (flavor, image, volumes,
 *  interfaces, …; ~1.8 KB of JSON per server) are not kept, so they do not stay on the heap. */
export type ServerView = Pick<Server, "uuid" | "name" | "status" | "tags" | "created_at">;

export interface View {
  servers: Map<string, ServerView>;
  byName: Map<string, ServerView>;
  byGroup: Map<string, ServerView[]>;
}

export type PendingState = "queued" | "creating" | "verifying" | "created" | "failed";

/** One accepted creation, from IncreaseSize until a list shows its server. */
export interface PendingCreate {
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

/** One issued deletion, until a list no longer shows its server. */
export interface DeleteMark {
  group: string;
  issuedAt: number;
  /** When the DELETE call ended (answered or not). Unset while it is still being tried. */
  completedAt?: number;
  /** The API confirmed the deletion. */
  confirmed?: boolean;
}

/**
 * A Map that counts its changes. What CA is answered (target sizes, instances) is encoded once and
 * kept until something it depends on changes (service.ts); counting at the map itself means no
 * mutation site can forget to say so.
 */
export class CountingMap<K, V> extends Map<K, V> {
  changes = 0;
  override set(key: K, value: V): this {
    this.changes++;
    return super.set(key, value);
  }
  override delete(key: K): boolean {
    const had = super.delete(key);
    if (had) this.changes++;
    return had;
  }
  override clear(): void {
    this.changes++;
    super.clear();
  }
}

/** What the list cannot show yet: accepted creations by name, issued deletions by server UUID. */
export interface Marks {
  pending: Map<string, PendingCreate>;
  deleting: Map<string, DeleteMark>;
}

export function emptyView(groups: Iterable<string>): View {
  return { servers: new Map(), byName: new Map(), byGroup: new Map([...groups].map((g) => [g, []])) };
}

/**
 * The view of one list. Servers without both of our tags, or of a group no longer configured,
 * are left out (never touched). Two servers with one name are one creation sent twice (a lost
 * response, then a re-send): the older is the server, the newer a duplicate to delete.
 */
export function viewOfList(list: Server[], clusterName: string, groups: Iterable<string>): { view: View; duplicates: ServerView[] } {
  const view = emptyView(groups);
  const duplicates: ServerView[] = [];
  for (const full of list) {
    const s: ServerView = { uuid: full.uuid, name: full.name, status: full.status, tags: full.tags, created_at: full.created_at };
    // Defence in depth: the API filtered by tag, but never trust a server without both of our tags.
    if (s.tags?.[CLUSTER_TAG] !== clusterName) continue;
    if (!view.byGroup.has(s.tags?.[GROUP_TAG] ?? "")) continue;
    const twin = view.byName.get(s.name);
    if (twin) {
      const [older, newer] = twin.created_at <= s.created_at ? [twin, s] : [s, twin];
      duplicates.push(newer);
      view.byName.set(older.name, older);
      continue;
    }
    view.byName.set(s.name, s);
  }
  for (const s of view.byName.values()) {
    view.servers.set(s.uuid, s);
    view.byGroup.get(s.tags[GROUP_TAG]!)!.push(s);
  }
  return { view, duplicates };
}

export function parseProviderId(providerID: string): { uuid?: string; pendingName?: string } | null {
  if (!providerID.startsWith(PROVIDER_ID_PREFIX)) return null;
  if (providerID.startsWith(PENDING_ID_PREFIX)) return { pendingName: providerID.slice(PENDING_ID_PREFIX.length) };
  const uuid = providerID.slice(PROVIDER_ID_PREFIX.length).replace(/^\/+/, "");
  return /^[0-9a-f-]{36}$/i.test(uuid) ? { uuid: uuid.toLowerCase() } : null;
}

function serversOf(view: View, group: string): ServerView[] {
  return view.byGroup.get(group) ?? [];
}

export function pendingOf(marks: Marks, group: string): PendingCreate[] {
  const out: PendingCreate[] = [];
  for (const p of marks.pending.values()) if (p.group === group) out.push(p);
  return out;
}

/** Queued creations (not sent yet), and the same by group as "a=2,b=1". */
export function queuedByGroup(marks: Marks): { held: number; heldByGroup: string } {
  let held = 0;
  const byGroup = new Map<string, number>();
  for (const p of marks.pending.values()) {
    if (p.state !== "queued") continue;
    held++;
    byGroup.set(p.group, (byGroup.get(p.group) ?? 0) + 1);
  }
  return { held, heldByGroup: [...byGroup].map(([g, n]) => `${g}=${n}`).join(",") };
}

/** An accepted creation the cloud has confirmed but no list has shown yet. */
export function pendingWithUuid(marks: Marks, uuid: string): PendingCreate | undefined {
  for (const p of marks.pending.values()) if (p.uuid === uuid) return p;
  return undefined;
}

/** Servers of a group that exist in the cloud and are not being deleted (listed, or confirmed created). */
export function existing(view: View, marks: Marks, group: string): number {
  let n = 0;
  for (const s of serversOf(view, group)) if (!marks.deleting.has(s.uuid)) n++;
  for (const p of marks.pending.values()) if (p.group === group && p.state === "created" && !(p.uuid && marks.deleting.has(p.uuid))) n++;
  return n;
}

/** Servers that exist and are not being deleted, plus accepted creations not yet listed. */
export function targetSize(view: View, marks: Marks, group: string): number {
  let n = 0;
  for (const s of serversOf(view, group)) if (!marks.deleting.has(s.uuid)) n++;
  for (const p of marks.pending.values()) if (p.group === group && !(p.uuid && marks.deleting.has(p.uuid))) n++;
  return n;
}

/** The instances CA sees for a group: listed servers, then accepted creations. */
export function instances(view: View, marks: Marks, group: string): InstanceView[] {
  const out: InstanceView[] = [];
  for (const s of serversOf(view, group)) {
    const id = PROVIDER_ID_PREFIX + s.uuid;
    if (marks.deleting.has(s.uuid)) out.push({ id, state: "deleting" });
    else if (s.status === "error") {
      out.push({ id, state: "creating", error: { code: "server-error", message: `server ${s.name} is in status error`, errorClass: OTHER_ERROR } });
    } else if (s.status === "changing") out.push({ id, state: "creating" });
    else out.push({ id, state: "running" });
  }
  for (const p of pendingOf(marks, group)) {
    const id = p.uuid ? PROVIDER_ID_PREFIX + p.uuid : PENDING_ID_PREFIX + p.name;
    if (p.uuid && marks.deleting.has(p.uuid)) out.push({ id, state: "deleting" });
    else out.push(p.state === "failed" ? { id, state: "creating", error: p.error } : { id, state: "creating" });
  }
  return out;
}

/** Instances by the state an operator counts them in. */
export function countStates(list: InstanceView[]): Record<ServerState, number> {
  const out: Record<ServerState, number> = { running: 0, creating: 0, deleting: 0, failed: 0 };
  for (const i of list) out[i.error ? "failed" : i.state]++;
  return out;
}

/** The group of a node, or "" when it is not one of our servers. */
export function groupForNode(view: View, marks: Marks, providerID: string, name: string): string {
  if (providerID) {
    const parsed = parseProviderId(providerID);
    if (!parsed) return "";
    if (parsed.pendingName !== undefined) return marks.pending.get(parsed.pendingName)?.group ?? "";
    const s = view.servers.get(parsed.uuid!);
    if (s) return s.tags[GROUP_TAG]!;
    return pendingWithUuid(marks, parsed.uuid!)?.group ?? marks.deleting.get(parsed.uuid!)?.group ?? "";
  }
  if (!name) return "";
  const s = view.byName.get(name);
  if (s) return s.tags[GROUP_TAG]!;
  return marks.pending.get(name)?.group ?? "";
}

// ---------------------------------------------------------------- what a newer list means

export interface ListRules {
  /** Wait before an unanswered create is checked (ms); a list that started this long after it decides. */
  verifyDelayMs: number;
  /** How long a failed creation stays visible to CA (ms). */
  failedCreateTtlMs: number;
  /** How long after a confirmed delete a server that is still listed is believed to exist (ms). */
  deleteConfirmWindowMs: number;
}

export type PendingFate =
  /** The list shows its server: the view counts it from now on. */
  | "listed"
  /** Confirmed created, and a list that started afterwards does not show it: it is gone. */
  | "vanished"
  /** An unanswered create that a list started well after it does not show: it did not happen. */
  | "retry"
  /** Failed long enough ago: CA has seen the error. */
  | "expired"
  | "keep";

/** What a list that started at `startedAt` says about one accepted creation. */
export function pendingFate(p: PendingCreate, listed: boolean, startedAt: number, now: number, rules: ListRules): PendingFate {
  if (listed) return "listed";
  if (p.state === "created" && p.confirmedAt !== undefined && p.confirmedAt < startedAt) return "vanished";
  if (p.state === "verifying" && p.uncertainSince !== undefined && p.uncertainSince + rules.verifyDelayMs < startedAt) return "retry";
  if (p.state === "failed" && p.failedAt !== undefined && now - p.failedAt > rules.failedCreateTtlMs) return "expired";
  return "keep";
}

/**
 * Whether a list that started at `startedAt` ends a delete mark. A list that may predate the
 * DELETE's end decides nothing. Gone: done. Still listed after an unanswered delete: it
 * survived, count it again. Still listed long after a confirmed delete: believe the cloud.
 */
export function deleteMarkDone(mark: DeleteMark, listed: boolean, startedAt: number, now: number, rules: ListRules): boolean {
  if (mark.completedAt === undefined || mark.completedAt >= startedAt) return false;
  return !listed || !mark.confirmed || now - mark.completedAt > rules.deleteConfirmWindowMs;
}

/**
 * Servers per group in `next` that `previous` did not have and that no creation of this
 * process explains (its name is not one we gave). After a start these are creates a
 * previous process sent before it died, landing late. The first list of a process has
 * none: what it shows is where CA starts from.
 */
export function newcomers(previous: View | undefined, next: View, marks: Marks): Map<string, number> {
  const out = new Map<string, number>();
  if (!previous) return out;
  for (const s of next.servers.values()) {
    if (previous.servers.has(s.uuid) || marks.pending.has(s.name) || pendingWithUuid(marks, s.uuid)) continue;
    const g = s.tags[GROUP_TAG]!;
    out.set(g, (out.get(g) ?? 0) + 1);
  }
  return out;
}
