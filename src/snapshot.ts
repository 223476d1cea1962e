// What an operator reads of the reconciler (the /status document, the metrics gauges,
// the logs): counts and reasons, never the servers themselves. Types only, so that the
// readers (status.ts, metrics.ts) and the reconciler do not import one another.
import type { ServerState } from "./view";

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

/** Servers created by another instance of the provider for this cluster while this one was active. */
export interface OtherInstance {
  /** Its instance id (the instance tag on the servers it created). */
  id: string;
  /** Its servers in the last list that were created while this instance was active. */
  servers: number;
  /** When the newest of them was created (ms since the epoch). */
  lastCreatedAt: number;
}

export interface ReconcilerSnapshot {
  /** Seconds since the start of the last applied list; null before the first. */
  viewAgeSeconds: number | null;
  /** When the startup grace ends (ms since the epoch) and whether a list past it was applied. */
  graceEndsAt: number;
  settled: boolean;
  /** This process's instance id: the instance tag on the servers it creates. */
  instanceId: string;
  /** Other instances that created servers for this cluster while this one served CA (there should be none). */
  otherInstances: OtherInstance[];
  /** Why creations are held, since when, in a sentence; null when none is. */
  hold: { reason: HoldReason; since: number; detail: string } | null;
  /** The last list that failed (Refresh's or the provider's own). */
  lastListError: LastError | null;
  groups: GroupSnapshot[];
}
