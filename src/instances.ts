// More than one provider for a cluster. Each process tags the servers it creates with
// its instance id (INSTANCE_TAG). Servers that another instance created while this one
// was serving CA mean two providers act on one cluster at once: each counts only its own
// creations in flight, so together they can overshoot a group's max. Pure: the
// reconciler asks this after each list and warns (reconciler.ts, rule 15).
import { log } from "./log";
import type { OtherInstance } from "./snapshot";
import { INSTANCE_TAG } from "./types";
import type { View } from "./view";

/** How long a server by another instance counts as a fresh creation (ms). */
const FRESH_CREATION_MS = 10 * 60_000;

/**
 * Other instances whose servers in `view` were created after `since` (this instance's active
 * period, past its startup grace: a predecessor's creates land before that) and within the last
 * FRESH_CREATION_MS. Servers without an instance tag (created by an older version) do not count.
 */
export function otherInstances(view: View, ourId: string, since: number, now: number): OtherInstance[] {
  const byId = new Map<string, OtherInstance>();
  const after = Math.max(since, now - FRESH_CREATION_MS);
  for (const s of view.servers.values()) {
    const id = s.tags[INSTANCE_TAG];
    if (!id || id === ourId) continue;
    const created = Date.parse(s.created_at);
    if (!Number.isFinite(created) || created <= after) continue;
    const o = byId.get(id) ?? { id, servers: 0, lastCreatedAt: 0 };
    o.servers++;
    o.lastCreatedAt = Math.max(o.lastCreatedAt, created);
    byId.set(id, o);
  }
  return [...byId.values()].sort((a, b) => a.id.localeCompare(b.id));
}

/** The shortest silence that counts as another instance having served CA (rule 14): longer than CA's scan interval. */
export const IDLE_RESTART_FLOOR_MS = 60_000;

/**
 * When this process serves CA: since its start, or since the first call after a silence long
 * enough for another instance to have served CA meanwhile (rule 14). And what it has seen of
 * other instances' creations while it served (rule 15), each warned about once.
 */
export class Activity {
  private lastCallAt: number;
  /** When this process last became active: its start, or the call after a silence. */
  activeSince: number;
  others: OtherInstance[] = [];
  private readonly warned = new Set<string>();
  private readonly silenceMs: number;

  constructor(
    now: number,
    private readonly graceMs: number,
    readonly instanceId: string,
  ) {
    this.lastCallAt = this.activeSince = now;
    this.silenceMs = Math.max(graceMs, IDLE_RESTART_FLOOR_MS);
  }

  /** CA called at `now`. Returns the silence before it (ms) when it counts as a start, else 0. */
  call(now: number): number {
    const silence = now - this.lastCallAt;
    this.lastCallAt = now;
    if (this.graceMs === 0 || silence <= this.silenceMs) return 0;
    this.activeSince = now;
    return silence;
  }

  /** After a list: other instances' fresh creations while this one serves, warned about once each. */
  notice(view: View, now: number): void {
    const serving = now - this.lastCallAt <= this.silenceMs;
    this.others = serving ? otherInstances(view, this.instanceId, this.activeSince + this.graceMs, now) : [];
    for (const o of this.others) {
      if (this.warned.has(o.id)) continue;
      this.warned.add(o.id);
      log.warn("another provider instance is creating servers for this cluster while this one serves CA: run one replica (docs/operating.md)", {
        otherInstance: o.id,
        thisInstance: this.instanceId,
        servers: o.servers,
        lastCreatedAt: new Date(o.lastCreatedAt).toISOString(),
      });
    }
  }
}
