// Servers of this cluster that are in no configured node group: they carry both ownership tags,
// but the group tag names a group the configuration no longer has (a group renamed or removed, or
// an entry turned from `flavor` into `flavors`, which renames its groups). They run and are billed,
// and CA no longer sees them. `validate`, `status`, the metrics and `cleanup` read this; nothing
// here does I/O.
import { CHECK_GROUP, CLUSTER_TAG, GROUP_TAG, type Server } from "./types";

export type OrphanCandidate = Pick<Server, "uuid" | "name" | "status" | "tags" | "created_at">;

export interface Orphan {
  uuid: string;
  name: string;
  /** The group tag's value: the group it was created for. */
  group: string;
  status: string;
  createdAt: string;
}

/**
 * The listed servers that are ours (cluster and group tag) and in no configured group.
 * `check`'s own servers are left out: `check` deletes what it creates, and the next run deletes
 * what a killed one left.
 */
export function orphansOf(servers: Iterable<OrphanCandidate>, clusterName: string, groups: Iterable<string>): Orphan[] {
  const configured = new Set(groups);
  const out: Orphan[] = [];
  for (const s of servers) {
    const group = s.tags?.[GROUP_TAG];
    if (s.tags?.[CLUSTER_TAG] !== clusterName || group === undefined || group === "" || configured.has(group) || group === CHECK_GROUP) continue;
    out.push({ uuid: s.uuid, name: s.name, group, status: s.status, createdAt: s.created_at });
  }
  return out.sort((a, b) => a.group.localeCompare(b.group) || a.name.localeCompare(b.name));
}

/** One orphan as a line: `prod-old-x1c9k2ab (uuid …, group old, running, created …)`. */
export function describeOrphan(o: Orphan): string {
  return `${o.name} (uuid ${o.uuid}, group ${o.group}, ${o.status}, created ${o.createdAt})`;
}

/** Orphans by group, as one short phrase: `old: prod-old-x1c9k2ab, prod-old-q81mz0ck; gone: …` (at most `max` names). */
export function orphansByGroup(orphans: readonly Pick<Orphan, "group" | "name">[], max = 6): string {
  const byGroup = new Map<string, string[]>();
  for (const o of orphans) byGroup.set(o.group, [...(byGroup.get(o.group) ?? []), o.name]);
  let left = max;
  const parts: string[] = [];
  for (const [g, names] of byGroup) {
    const shown = names.slice(0, Math.max(0, left));
    left -= shown.length;
    parts.push(`${g}: ${shown.join(", ")}${names.length > shown.length ? `, … (${names.length} in all)` : ""}`);
  }
  return parts.join("; ");
}
