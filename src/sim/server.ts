// cloudscale.ch API simulator over real HTTP (Bun.serve), for tests, benchmarks and the demo.
//
// The cloud API's routes are in api-routes.ts, the control API (/_sim/…) in control.ts. Here: listening,
// authentication, request counters and injected faults.
//
// Authentication: 401 {"detail": "Invalid token."} (or "Authentication credentials were not
// provided."); 403 for writes with a read-only token. 405 {"detail": "Method \"X\" not allowed."}.
// Injected faults (faults.ts): 429 JSON {"detail": "Request was throttled. …"} + Retry-After; 503 JSON
// {"detail": …}; 500 Django-style HTML; 502/504 nginx-style HTML (what a proxy in front of the real API
// would send).
//
// Counter keys are "<METHOD> <route pattern>", e.g. "GET /v1/servers", "DELETE /v1/servers/:uuid",
// "POST /v1/servers/:uuid/start"; unknown paths count under their literal path. Every /v1 request is
// counted on arrival, including those answered 401 or by an injected fault.

import { apiRoutes, matchRoute, type Route } from "./api-routes.ts";
import { sleep } from "../clock.ts";
import type { SimTime } from "./clock.ts";
import { controlHandler } from "./control.ts";
import { Faults, MAX_HOLD_MS, type FaultRule, type HeldRequest } from "./faults.ts";
import { dropConnection, faultResponse, html, json, NGINX } from "./http.ts";
import { NOT_FOUND, type Quota, type SeedData } from "./records.ts";
import { SimState } from "./state.ts";

export interface SimulatorOptions {
  /** "HOST:PORT", default "127.0.0.1:0" (a free port). IPv6 as "[::1]:PORT". */
  listen?: string;
  /** If set, only this bearer token is accepted; otherwise any non-empty token. */
  token?: string;
  /** Tokens that may only GET (403 on writes), like cloudscale's read-only tokens. */
  readOnlyTokens?: string[];
  /** changing → running delay of new servers, seconds (default 5). */
  bootSeconds?: number;
  /** changing → settled delay of start/stop/reboot/flavor change, seconds (default 2). */
  actionSeconds?: number;
  quota?: Partial<Quota>;
  /** Seed of the fault PRNG (default 1). */
  rngSeed?: number;
  /** Base clock for statuses (default Date.now); /_sim/clock adds an offset on top. */
  clock?: SimTime;
  /** Extra catalog entries and servers, loaded before listening. */
  seed?: SeedData;
  /** Zone for create requests without one (default rma1). */
  defaultZone?: string;
  /** Called with one line per /v1 request ("POST /v1/servers 201 3ms"). */
  log?: (line: string) => void;
}

export interface Simulator {
  /** e.g. http://127.0.0.1:41234 */
  origin: string;
  /** origin + "/v1" — what a client uses as its API base URL. */
  apiUrl: string;
  /** Same as apiUrl. */
  url: string;
  hostname: string;
  port: number;
  state: SimState;
  faults: Faults;
  /** Requests per "<METHOD> <pattern>" since start / last reset. */
  counters: Map<string, number>;
  /** counters.get(key) ?? 0 */
  count(key: string): number;
  resetCounters(): void;
  /** Full reset, as POST /_sim/reset. */
  reset(): void;
  /** /v1 requests that have arrived and not been answered yet (held, or waiting out a latency). */
  inFlight(): number;
  /** The held requests, oldest first. */
  held(): HeldRequest[];
  /** Releases up to `count` held requests (all by default), oldest first, of one "<METHOD> <pattern>" if
   *  given; returns how many. */
  release(count?: number, request?: string): number;
  stop(): Promise<void>;
}

export function parseListen(s: string): { hostname: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(s.trim());
  if (!m) throw new Error(`invalid listen address "${s}" (expected HOST:PORT)`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`invalid port in "${s}"`);
  return { hostname: (m[1] ?? m[2])!, port };
}

const LOOPBACK = new Set(["127.0.0.1", "::1", "::ffff:127.0.0.1"]);

export async function startSimulator(opts: SimulatorOptions = {}): Promise<Simulator> {
  const { hostname, port } = parseListen(opts.listen ?? "127.0.0.1:0");
  const faults = new Faults(opts.rngSeed ?? 1);
  const state = new SimState({
    clock: opts.clock,
    faults,
    bootSeconds: opts.bootSeconds,
    actionSeconds: opts.actionSeconds,
    quota: opts.quota,
    defaultZone: opts.defaultZone,
  });
  const initialQuota = { ...state.quota };
  const initialConfig = { bootSeconds: state.bootSeconds, actionSeconds: state.actionSeconds };
  if (opts.seed) state.applySeed(opts.seed);

  const counters = new Map<string, number>();
  const stopCtl = new AbortController();
  let inFlight = 0;
  let heldSeq = 0;
  const holds: { id: number; request: string; rule: string; committed: boolean; since: number; release: () => void }[] = [];

  /** Waits until released, the simulator stops, or MAX_HOLD_MS pass (a forgotten hold ends a test, not a run). */
  function hold(request: string, rule: FaultRule & { id: string }, committed: boolean): Promise<void> {
    return new Promise((resolve) => {
      const entry = { id: ++heldSeq, request, rule: rule.id, committed, since: performance.now(), release: () => done() };
      const done = () => {
        clearTimeout(timer);
        stopCtl.signal.removeEventListener("abort", done);
        const i = holds.indexOf(entry);
        if (i >= 0) holds.splice(i, 1);
        resolve();
      };
      const timer = setTimeout(done, Math.min(rule.holdMs ?? MAX_HOLD_MS, MAX_HOLD_MS));
      stopCtl.signal.addEventListener("abort", done);
      holds.push(entry);
    });
  }
  const held = (): HeldRequest[] =>
    holds.map((h) => ({ id: h.id, request: h.request, rule: h.rule, committed: h.committed, heldMs: Math.round(performance.now() - h.since) }));
  function release(count = Infinity, request?: string): number {
    const chosen = holds.filter((h) => request === undefined || h.request === request).slice(0, count);
    for (const h of chosen) h.release();
    return chosen.length;
  }
  const readOnly = new Set(opts.readOnlyTokens ?? []);
  const routes = apiRoutes(state);

  function authenticate(req: Request): Response | null {
    const h = req.headers.get("authorization");
    const WWW = { "WWW-Authenticate": 'Bearer realm="api"' };
    if (!h) return json(401, { detail: "Authentication credentials were not provided." }, WWW);
    const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
    if (!m) return json(401, { detail: "Invalid token." }, WWW);
    const token = m[1]!;
    if (opts.token !== undefined && token !== opts.token && !readOnly.has(token)) return json(401, { detail: "Invalid token." }, WWW);
    if (readOnly.has(token) && req.method !== "GET") {
      return json(403, { detail: "You do not have permission to perform this action." });
    }
    return null;
  }

  async function handleApi(req: Request, url: URL, path: string): Promise<Response> {
    inFlight++;
    try {
      return await faultedApi(req, url, path);
    } finally {
      inFlight--;
    }
  }

  async function faultedApi(req: Request, url: URL, path: string): Promise<Response> {
    const { route: matched, params } = matchRoute(routes, path);
    const pattern = matched?.pattern ?? path;
    const key = `${req.method} ${pattern}`;
    counters.set(key, (counters.get(key) ?? 0) + 1);

    const plan = faults.plan(req.method, pattern);
    if (plan.latencyMs > 0) await sleep(plan.latencyMs, stopCtl.signal);
    const rule = plan.rule;
    if (rule?.action === "hold") {
      // Handled when released, or (commit) handled now and answered when released.
      if (!rule.commit) await hold(key, rule, false);
      const res = await handleApiInner(req, url, matched, params);
      if (rule.commit) await hold(key, rule, true);
      return res;
    }
    const commit = rule && (rule.action === "lost-response" || rule.commit === true);
    if (rule && !commit) return applyFault(rule, req);

    const res = await handleApiInner(req, url, matched, params);
    if (rule) {
      // The request took effect; its answer is lost.
      await res.arrayBuffer().catch(() => undefined);
      return applyFault(rule, req);
    }
    return res;
  }

  async function applyFault(rule: FaultRule, req: Request): Promise<Response> {
    switch (rule.action) {
      case "drop":
        return dropConnection();
      case "lost-response":
        return rule.mode === "drop" ? dropConnection() : faultResponse({ ...rule, status: rule.status ?? 502 });
      case "timeout":
        await sleep(Math.min(rule.holdMs ?? MAX_HOLD_MS, MAX_HOLD_MS), AbortSignal.any([stopCtl.signal, req.signal]));
        return html(504, NGINX(504, "Gateway Time-out"));
      default:
        return faultResponse(rule);
    }
  }

  async function handleApiInner(req: Request, url: URL, matched: Route | undefined, params: string[]): Promise<Response> {
    if (!matched) return json(404, NOT_FOUND.body);
    const denied = authenticate(req);
    if (denied) return denied;
    const h = matched.methods[req.method];
    if (!h) {
      return json(405, { detail: `Method "${req.method}" not allowed.` }, { Allow: Object.keys(matched.methods).join(", ") });
    }
    return h({ req, url, params });
  }

  function reset(): void {
    state.reset();
    faults.reset();
    counters.clear();
    state.clock.offsetMs = 0;
    state.quota = { ...initialQuota };
    state.bootSeconds = initialConfig.bootSeconds;
    state.actionSeconds = initialConfig.actionSeconds;
    if (opts.seed) state.applySeed(opts.seed);
  }

  const handleControl = controlHandler({ state, faults, counters, reset, requests: { inFlight: () => inFlight, held, release } });

  const server = Bun.serve({
    hostname,
    port,
    idleTimeout: 0, // held requests ("timeout" fault) and long latencies must not be cut by Bun
    development: false,
    async fetch(req, srv) {
      const url = new URL(req.url);
      let path = url.pathname;
      if (path.length > 1 && path.endsWith("/")) path = path.replace(/\/+$/, "");
      if (path === "/_sim" || path.startsWith("/_sim/")) {
        const ip = srv.requestIP(req)?.address;
        if (!ip || !(LOOPBACK.has(ip) || ip.startsWith("127."))) return json(403, { detail: "The control API only answers loopback clients." });
        return handleControl(req, url, path);
      }
      const t0 = performance.now();
      const res = await handleApi(req, url, path);
      opts.log?.(`${req.method} ${url.pathname}${url.search} ${res.status} ${Math.round(performance.now() - t0)}ms`);
      return res;
    },
    error(err) {
      console.error("sim: internal error:", err);
      return json(500, { detail: "A server error occurred." });
    },
  });

  const boundHost = server.hostname ?? hostname;
  const hostPart = boundHost.includes(":") ? `[${boundHost}]` : boundHost;
  const origin = `http://${hostPart}:${server.port}`;
  const apiUrl = `${origin}/v1`;
  state.setApiUrl(apiUrl);

  let stopped = false;
  return {
    origin,
    apiUrl,
    url: apiUrl,
    hostname: boundHost,
    port: server.port!,
    state,
    faults,
    counters,
    count: (key: string) => counters.get(key) ?? 0,
    resetCounters: () => counters.clear(),
    reset,
    inFlight: () => inFlight,
    held,
    release,
    async stop() {
      if (stopped) return;
      stopped = true;
      stopCtl.abort();
      await server.stop(true);
    },
  };
}
