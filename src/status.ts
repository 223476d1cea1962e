// The operator's one-screen view: the /status document the health listener
// serves (built from the reconciler's snapshot and the configuration), and the
// `status` command that fetches it from a running provider and prints it as one
// table, a line per node group.
import { CCM_DOCS, ORPHAN_DOCS, type FindingsSnapshot } from "./findings";
import { orphansByGroup } from "./orphans";
import type { GroupSnapshot, LastError, ReconcilerSnapshot } from "./snapshot";
import type { ProviderConfig } from "./types";
import { commit, version } from "./version";
import { SERVER_STATES } from "./view";

type Stamped<T> = Omit<T, "at"> & { at: string };

/** GET /status. Times are ISO 8601 (UTC), ages in seconds. */
export interface StatusReport {
  version: string;
  commit: string;
  cluster: string;
  time: string;
  ready: boolean;
  readiness: string;
  /** Seconds since the start of the last good list; null before the first. */
  viewAgeSeconds: number | null;
  maxViewAgeSeconds: number;
  startupGraceEndsAt: string;
  /** This process's instance id (the instance tag on the servers it creates). */
  instanceId: string;
  /** Other instances that created servers for this cluster while this one served CA: there should be none. */
  otherInstances: { id: string; servers: number; lastCreatedAt: string }[];
  /** A list that started after the startup grace has been applied: creations and deletions may go out. */
  settled: boolean;
  hold: { reason: string; since: string; detail: string } | null;
  lastListError: Stamped<LastError> | null;
  /** The reconciler's snapshot of each group (snapshot.ts GroupSnapshot) with its configuration. */
  groups: (Omit<GroupSnapshot, "lastError"> & { flavor: string; zone: string; min: number; max: number; lastError: Stamped<LastError> | null })[];
  /** This cluster's servers in no configured node group (findings.ts): billed, and CA does not see them. */
  orphans: FindingsSnapshot["orphans"];
  /** Nodes CA asked about that have one of our servers' names but no providerID: no cloud controller manager. */
  nodesWithoutProviderId: FindingsSnapshot["nodesWithoutProviderId"];
}

const iso = (ms: number) => new Date(ms).toISOString();
const stamped = (e: LastError | null) => (e ? { ...e, at: iso(e.at) } : null);

const NO_FINDINGS: FindingsSnapshot = { orphans: [], nodesWithoutProviderId: [] };

export function statusReport(
  snapshot: ReconcilerSnapshot,
  config: ProviderConfig,
  readiness: { ok: boolean; detail: string },
  now = Date.now(),
  findings: FindingsSnapshot = NO_FINDINGS,
): StatusReport {
  const byName = new Map(config.nodeGroups.map((g) => [g.name, g]));
  return {
    version,
    commit,
    cluster: config.clusterName,
    time: iso(now),
    ready: readiness.ok,
    readiness: readiness.detail,
    viewAgeSeconds: snapshot.viewAgeSeconds,
    maxViewAgeSeconds: config.maxViewAgeSeconds,
    startupGraceEndsAt: iso(snapshot.graceEndsAt),
    instanceId: snapshot.instanceId,
    otherInstances: snapshot.otherInstances.map((o) => ({ ...o, lastCreatedAt: iso(o.lastCreatedAt) })),
    settled: snapshot.settled,
    hold: snapshot.hold && { reason: snapshot.hold.reason, since: iso(snapshot.hold.since), detail: snapshot.hold.detail },
    lastListError: stamped(snapshot.lastListError),
    groups: snapshot.groups.map(({ name, lastError, ...g }) => {
      const cfg = byName.get(name);
      return { name, flavor: cfg?.flavor ?? "", zone: cfg?.zone ?? "", min: cfg?.min ?? 0, max: cfg?.max ?? 0, ...g, lastError: stamped(lastError) };
    }),
    orphans: findings.orphans,
    nodesWithoutProviderId: findings.nodesWithoutProviderId,
  };
}

// ----------------------------------------------------------------- the command

export const DEFAULT_HEALTH = "127.0.0.1:8087";

/** The /status URL for --health: a URL (its path, else /status) or HOST:PORT (an any-address host means this machine). */
export function statusUrl(health: string): string {
  if (/^https?:\/\//i.test(health)) {
    const u = new URL(health);
    if (u.pathname === "/" || u.pathname === "") u.pathname = "/status";
    return u.toString();
  }
  const m = /^(\[[^\]]*\]|[^:]*):(\d{1,5})$/.exec(health);
  if (!m || Number(m[2]) > 65535) throw new Error(`--health must be a URL or HOST:PORT (got "${health}")`);
  let host = m[1]!;
  if (host === "" || host === "0.0.0.0") host = "127.0.0.1";
  if (host === "[::]") host = "[::1]";
  return `http://${host}:${m[2]}/status`;
}

export class StatusError extends Error {}

/** Fetches a running provider's /status: the body as it came, and the report in it. Throws StatusError with what to do. */
export async function fetchStatus(url: string, timeoutMs = 5000): Promise<{ body: string; report: StatusReport }> {
  const hint = "is `autoscaler-cloudscale serve` running with --health-listen there? Point --health at its health listener";
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: "manual" });
  } catch (e) {
    const err = e as Error & { code?: string };
    const why =
      err.name === "TimeoutError" ? `no answer in ${timeoutMs / 1000}s` : err.code === "ConnectionRefused" || /ECONNREFUSED|refused/i.test(`${err.code} ${err.message}`) ? "connection refused" : err.message;
    throw new StatusError(`cannot reach the provider at ${url}: ${why}; ${hint}`);
  }
  const body = await res.text();
  if (res.status === 404) throw new StatusError(`${url} answered 404: not the health listener of autoscaler-cloudscale ${version} or later (${hint})`);
  if (!res.ok) throw new StatusError(`${url} answered HTTP ${res.status}: ${body.slice(0, 200)}`);
  let report: StatusReport;
  try {
    report = JSON.parse(body);
  } catch {
    throw new StatusError(`${url} answered something that is not JSON (${JSON.stringify(body.slice(0, 80))}); ${hint}`);
  }
  if (!report || typeof report !== "object" || !Array.isArray(report.groups)) throw new StatusError(`${url} answered JSON that is not a status report (no groups); ${hint}`);
  return { body, report };
}

/** Seconds as an operator reads them: 42s, 7m, 3h, 2d. */
export function age(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return "never";
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172_800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86_400)}d`;
}

function since(at: string, now: number): string {
  return `${at.replace(/\.\d+Z$/, "Z")} (${age((now - Date.parse(at)) / 1000)} ago)`;
}

/** The report as a header line, one table (a line per group) and, when there are any, the hold and the last failed list. */
export function renderStatus(r: StatusReport, now = Date.parse(r.time)): string {
  const header = ["GROUP", "FLAVOR", "ZONE", "MIN/TARGET/MAX", ...SERVER_STATES.map((s) => s.toUpperCase()), "PENDING", "HELD", "VIEW AGE", "LAST ERROR"];
  const rows = r.groups.map((g) => [
    g.name,
    g.flavor,
    g.zone,
    `${g.min}/${g.targetSize}/${g.max}`,
    ...SERVER_STATES.map((s) => String(g.servers?.[s] ?? 0)),
    String(g.pending),
    String(g.held),
    age(r.viewAgeSeconds),
    g.lastError ? `${since(g.lastError.at, now)} ${g.lastError.code}: ${oneLine(g.lastError.message, 120)}` : "-",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join("  ").trimEnd();
  const out = [
    `autoscaler-cloudscale ${r.version} (commit ${r.commit}) · cluster ${r.cluster} · ${r.ready ? "ready" : "NOT READY"}: ${r.readiness} · max view age ${age(r.maxViewAgeSeconds)}`,
    line(header),
    ...rows.map(line),
  ];
  if (!r.groups.length) out.push("(no node groups)");
  if (r.hold) out.push(`creations held since ${since(r.hold.since, now)}: ${r.hold.detail}`);
  else if (!r.settled) out.push(`startup grace: no server is created or deleted before a list that starts after ${r.startupGraceEndsAt}`);
  for (const o of r.otherInstances ?? []) {
    out.push(`another provider instance ${o.id} created ${o.servers} server(s) while this one served CA (last ${since(o.lastCreatedAt, now)}): run one replica`);
  }
  // (A provider older than this command sends neither.)
  const orphans = r.orphans ?? [];
  if (orphans.length) {
    out.push(`in no node group: ${orphans.length} server${orphans.length === 1 ? "" : "s"} (${orphansByGroup(orphans)}): billed, and CA does not see them; keep the group's name, or run autoscaler-cloudscale cleanup (${ORPHAN_DOCS})`);
  }
  const unlinked = r.nodesWithoutProviderId ?? [];
  if (unlinked.length) {
    const names = unlinked.slice(0, 6).map((n) => n.name).join(", ") + (unlinked.length > 6 ? `, … (${unlinked.length} in all)` : "");
    out.push(`nodes without providerID: ${unlinked.length} (${names}): CA cannot link them to their servers and deletes them after --max-node-provision-time; install the cloudscale cloud controller manager (${CCM_DOCS})`);
  }
  if (r.lastListError) out.push(`last failed list: ${since(r.lastListError.at, now)}: ${oneLine(r.lastListError.message, 200)}`);
  return `${out.join("\n")}\n`;
}

function oneLine(text: string, max: number): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}
