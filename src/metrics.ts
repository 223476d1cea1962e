// Prometheus metrics (prom-client): one registry, every family an operator
// reads, and small typed recorders that the composition root (cli.ts) hands to
// the modules that see events happen, as their recording hooks (the API
// client's, the reconciler's); the server records the gRPC calls. Numbers that mirror the
// provider's view (servers by state, sizes, pending and held creates, view age)
// are not pushed: they are read from a snapshot of the view when scraped, so
// they cannot drift from what the provider answers CA.
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
// prom-client's parts one by one, not its index (see prom-client-parts.d.ts); the process metrics
// are loaded when serve turns them on (startMetrics).
import Counter from "prom-client/lib/counter";
import Gauge from "prom-client/lib/gauge";
import Histogram from "prom-client/lib/histogram";
import Registry from "prom-client/lib/registry";
import type { ApiRecorder } from "./cloudscale";
import type { FindingsSnapshot } from "./findings";
import type { GroupSnapshot, ReconcilerSnapshot } from "./snapshot";
import type { ProviderConfig } from "./types";
import { commit, version } from "./version";
import { CREATE_ERROR_CODES, SERVER_STATES } from "./view";

const PREFIX = "autoscaler_cloudscale_";

export const registry = new Registry();

// ------------------------------------------------------------------ events

const grpcCalls = new Counter({
  name: `${PREFIX}grpc_calls_total`,
  help: "gRPC calls answered, by method and gRPC status code.",
  labelNames: ["method", "code"] as const,
  registers: [registry],
});
const grpcDuration = new Histogram({
  name: `${PREFIX}grpc_call_duration_seconds`,
  help: "Time to answer a gRPC call, by method.",
  labelNames: ["method"] as const,
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [registry],
});

const apiRequests = new Counter({
  name: `${PREFIX}api_requests_total`,
  help: "cloudscale.ch API requests (each attempt), by HTTP method, endpoint template and status class (2xx, 4xx, 5xx; network or timeout when no answer came).",
  labelNames: ["method", "endpoint", "status_class"] as const,
  registers: [registry],
});
const apiDuration = new Histogram({
  name: `${PREFIX}api_request_duration_seconds`,
  help: "Duration of one cloudscale.ch API request (one attempt), by HTTP method and endpoint template.",
  labelNames: ["method", "endpoint"] as const,
  buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registers: [registry],
});
const apiRetries = new Counter({
  name: `${PREFIX}api_retries_total`,
  help: "cloudscale.ch API requests sent again after a failed attempt, by HTTP method, endpoint template and the failure (rate-limit, server, network, timeout).",
  labelNames: ["method", "endpoint", "reason"] as const,
  registers: [registry],
});
const listDuration = new Histogram({
  name: `${PREFIX}list_duration_seconds`,
  help: "Time of the list that rebuilds the view (Refresh's, or the provider's own while creations are held), all attempts and backoff included, by result (ok, error).",
  labelNames: ["result"] as const,
  buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  registers: [registry],
});

const createFailures = new Counter({
  name: `${PREFIX}create_failures_total`,
  help: "Server creations given up and reported to CA as failed, by node group and error code.",
  labelNames: ["group", "code"] as const,
  registers: [registry],
});

/** The cloudscale.ch client's recording hook (cloudscale.ts ApiRecorder). `endpoint` is a template: /v1/servers/{uuid}. */
export const apiMetrics: ApiRecorder = {
  request(method, endpoint, statusClass, seconds) {
    apiRequests.inc({ method, endpoint, status_class: statusClass });
    apiDuration.observe({ method, endpoint }, seconds);
  },
  retry(method, endpoint, reason) {
    apiRetries.inc({ method, endpoint, reason });
  },
};

/**
 * The reconciler's recording hook (reconciler.ts ReconcilerRecorder): the list that rebuilds the
 * view (only that one: the create queue's lists that look for an unanswered create by its name
 * are not timed here; api_request_duration_seconds has every request), and creations given up
 * (shown to CA with `code`, view.ts CREATE_ERROR_CODES).
 */
export const reconcilerMetrics = {
  list(seconds: number, ok: boolean): void {
    listDuration.observe({ result: ok ? "ok" : "error" }, seconds);
  },
  createFailed(group: string, code: string): void {
    createFailures.inc({ group, code });
  },
};

/**
 * Counts and times every gRPC call by method and final status code (gRPC's names: OK,
 * InvalidArgument, Unavailable, …). Registered outermost, so it sees the code CA receives.
 */
export function grpcMetricsInterceptor(): Interceptor {
  // Each method's series, found once: prom-client hashes the labels of every inc() and observe()
  // it is given as an object, which CA's thousands of calls per loop would pay each time.
  const series = new Map<string, { duration: ReturnType<typeof grpcDuration.labels>; ok: ReturnType<typeof grpcCalls.labels>; failed: Map<string, ReturnType<typeof grpcCalls.labels>> }>();
  return (next) => async (req) => {
    const method = req.method.name;
    let s = series.get(method);
    if (!s) series.set(method, (s = { duration: grpcDuration.labels({ method }), ok: grpcCalls.labels({ method, code: "OK" }), failed: new Map() }));
    const started = performance.now();
    try {
      const res = await next(req);
      s.ok.inc();
      return res;
    } catch (e) {
      const code = Code[e instanceof ConnectError ? e.code : Code.Unknown];
      let failed = s.failed.get(code);
      if (!failed) s.failed.set(code, (failed = grpcCalls.labels({ method, code })));
      failed.inc();
      throw e;
    } finally {
      s.duration.observe((performance.now() - started) / 1000);
    }
  };
}

// -------------------------------------------------------------- the view

/** The numbers the view gauges show, taken once per scrape: the reconciler's per-group snapshot and the configured bounds. */
export interface ViewMetrics {
  /** Seconds since the start of the last list that was applied; Infinity before the first. */
  viewAgeSeconds: number;
  maxViewAgeSeconds: number;
  /** Other provider instances that created servers for this cluster while this one served CA. */
  otherInstances: number;
  /** This cluster's servers in no configured node group, by the group tag they carry. */
  orphans: Record<string, number>;
  /** Nodes CA asked about that have one of our servers' names but no providerID. */
  nodesWithoutProviderId: number;
  groups: (Omit<GroupSnapshot, "lastError"> & { min: number; max: number })[];
}

/** The gauges' numbers from the reconciler's snapshot, the findings and the configured bounds. */
export function viewMetrics(snapshot: ReconcilerSnapshot, config: ProviderConfig, findings?: FindingsSnapshot): ViewMetrics {
  const byName = new Map(config.nodeGroups.map((g) => [g.name, g]));
  const orphans: Record<string, number> = {};
  for (const o of findings?.orphans ?? []) orphans[o.group] = (orphans[o.group] ?? 0) + 1;
  return {
    viewAgeSeconds: snapshot.viewAgeSeconds ?? Infinity,
    maxViewAgeSeconds: config.maxViewAgeSeconds,
    otherInstances: snapshot.otherInstances.length,
    orphans,
    nodesWithoutProviderId: findings?.nodesWithoutProviderId.length ?? 0,
    groups: snapshot.groups.map(({ lastError: _, ...g }) => ({ ...g, min: byName.get(g.name)?.min ?? 0, max: byName.get(g.name)?.max ?? 0 })),
  };
}

let viewSource: (() => ViewMetrics) | undefined;
/** The snapshot of the scrape under way; every view gauge reads this one. */
let scraped: ViewMetrics | undefined;

function viewGauge(name: string, help: string, labelNames: string[], fill: (g: Gauge<string>, v: ViewMetrics) => void) {
  return new Gauge({
    name: `${PREFIX}${name}`,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      const v = scraped ?? viewSource?.();
      if (v) fill(this, v);
    },
  });
}

viewGauge("servers", "Servers of a node group by state as CA sees them (running, creating, deleting, failed); accepted creations count as creating.", ["group", "state"], (m, v) => {
  for (const g of v.groups) for (const state of SERVER_STATES) m.set({ group: g.name, state }, g.servers[state]);
});
viewGauge("node_group_target_size", "Target size of a node group (NodeGroupTargetSize).", ["group"], (m, v) => {
  for (const g of v.groups) m.set({ group: g.name }, g.targetSize);
});
viewGauge("node_group_min_size", "Configured minimum size of a node group.", ["group"], (m, v) => {
  for (const g of v.groups) m.set({ group: g.name }, g.min);
});
viewGauge("node_group_max_size", "Configured maximum size of a node group.", ["group"], (m, v) => {
  for (const g of v.groups) m.set({ group: g.name }, g.max);
});
viewGauge("creates_pending", "Accepted server creations the cloud has not confirmed yet, by node group.", ["group"], (m, v) => {
  for (const g of v.groups) m.set({ group: g.name }, g.pending);
});
viewGauge("creates_held", "Accepted server creations held back because the view is stale or the startup grace has not passed, by node group.", ["group"], (m, v) => {
  for (const g of v.groups) m.set({ group: g.name }, g.held);
});
viewGauge("view_age_seconds", "Seconds since the start of the last successful list of servers (+Inf before the first).", [], (m, v) => {
  m.set(v.viewAgeSeconds);
});
viewGauge("view_max_age_seconds", "Configured maxViewAge: past this age Refresh fails and no server is created or deleted. The provider lists by itself when CA is quiet, so the view only gets this old while the API fails.", [], (m, v) => {
  m.set(v.maxViewAgeSeconds);
});
viewGauge("orphaned_servers", "Servers tagged for this cluster whose node group is not configured (renamed or removed), by the group tag they carry: they run and are billed, and CA does not see them. Keep the group's name, or delete them with `autoscaler-cloudscale cleanup`.", ["group"], (m, v) => {
  for (const [group, n] of Object.entries(v.orphans)) m.set({ group }, n);
});
viewGauge("nodes_without_provider_id", "Nodes CA asked about that carry one of this cluster's server names but no spec.providerID: the cloud controller manager is missing, and CA deletes such nodes as never registered.", [], (m, v) => {
  m.set(v.nodesWithoutProviderId);
});
viewGauge("other_instances", "Other provider instances that created servers for this cluster (instance tag) while this one served CA, in the last 10 minutes. Anything above 0 means two active providers: run one replica.", [], (m, v) => {
  m.set(v.otherInstances);
});

new Gauge({
  name: `${PREFIX}build_info`,
  help: "Always 1; the labels name the version and commit of this build and the Bun runtime in it.",
  labelNames: ["version", "commit", "bun_version"] as const,
  registers: [registry],
}).set({ version, commit, bun_version: typeof Bun === "undefined" ? "" : Bun.version }, 1);

/** Expiry of the TLS material the gRPC server serves with; registered on the first load (TLS only). */
export interface TlsExpiry {
  /** notAfter of the serving certificate (the first one in --tls-cert), Unix seconds. */
  servingCert: number;
  /** The earliest notAfter of the certificates in --tls-client-ca, Unix seconds. */
  clientCa: number;
}
let tlsGauges: { servingCert: Gauge; clientCa: Gauge } | undefined;
export function recordTlsExpiry(expiry: TlsExpiry): void {
  tlsGauges ??= {
    servingCert: new Gauge({
      name: `${PREFIX}tls_serving_cert_expiry_timestamp_seconds`,
      help: "When the gRPC server's certificate (--tls-cert) expires, Unix time; follows renewed files.",
      registers: [registry],
    }),
    clientCa: new Gauge({
      name: `${PREFIX}tls_client_ca_expiry_timestamp_seconds`,
      help: "When the first certificate of the client CA bundle (--tls-client-ca) expires, Unix time; after it no client certificate is accepted.",
      registers: [registry],
    }),
  };
  tlsGauges.servingCert.set(expiry.servingCert);
  tlsGauges.clientCa.set(expiry.clientCa);
}

// ------------------------------------------------------------- lifecycle

/**
 * Process metrics prom-client computes that mean something under Bun. Left out: nodejs_heap_space_*
 * (V8 heap spaces; JavaScriptCore has none, Bun answers zeros), nodejs_version_info (Bun's Node
 * compatibility version, not the runtime; build_info names Bun), nodejs_active_* (empty under Bun),
 * nodejs_gc_duration_seconds (Bun emits no GC performance entries) and process_heap_bytes (VmData:
 * gigabytes of address space JavaScriptCore reserves, not a heap). nodejs_heap_size_* are the
 * JavaScriptCore heap as Bun's process.memoryUsage() reports it. Some prom-client families are
 * filled by another one's collect() (the event-loop lag, the heap sizes), so those stay together.
 */
const PROCESS_METRICS = [
  "process_cpu_user_seconds_total",
  "process_cpu_system_seconds_total",
  "process_cpu_seconds_total",
  "process_start_time_seconds",
  "process_resident_memory_bytes",
  "process_virtual_memory_bytes",
  "process_open_fds",
  "process_max_fds",
  "nodejs_eventloop_lag_seconds",
  "nodejs_eventloop_lag_p50_seconds",
  "nodejs_eventloop_lag_p99_seconds",
  "nodejs_eventloop_lag_max_seconds",
  "nodejs_heap_size_total_bytes", // its collect() also sets the next two
  "nodejs_heap_size_used_bytes",
  "nodejs_external_memory_bytes",
];

let started = false;
/** The process metrics being loaded; a scrape waits for them. */
let processMetrics: Promise<void> | undefined;

/**
 * Turns on the process metrics and the view gauges (serve only; other commands record into the
 * registry too, but nobody scrapes them). `view` is called once per scrape.
 */
export function startMetrics(view: () => ViewMetrics, groups: string[]): void {
  viewSource = view;
  for (const group of groups) for (const code of Object.values(CREATE_ERROR_CODES)) createFailures.inc({ group, code }, 0);
  if (started) return;
  started = true;
  const all = new Registry();
  processMetrics = import("prom-client/lib/defaultMetrics").then(({ default: collectDefaultMetrics }) => {
    // The event-loop delay is sampled every 100 ms, not every 10 ms (prom-client's default): an idle
    // provider then wakes 10 times a second, not 100, for a figure that only matters when it is large.
    collectDefaultMetrics({ register: all, eventLoopMonitoringPrecision: 100 });
    for (const name of PROCESS_METRICS) {
      const m = all.getSingleMetric(name);
      if (m) registry.registerMetric(m);
    }
  });
}

/** One scrape: a snapshot of the view, then the exposition in the Prometheus text format. */
export async function scrape(): Promise<{ body: string; contentType: string }> {
  await processMetrics;
  scraped = viewSource?.();
  try {
    return { body: await registry.metrics(), contentType: registry.contentType };
  } finally {
    scraped = undefined;
  }
}

/** GET /metrics on the health listener. */
export async function metricsResponse(): Promise<Response> {
  try {
    const { body, contentType } = await scrape();
    return new Response(body, { headers: { "content-type": contentType } });
  } catch (e) {
    return new Response(`cannot collect metrics: ${(e as Error).message}\n`, { status: 500 });
  }
}
