// cloudscale.ch API simulator over real HTTP (Bun.serve), for tests, benchmarks and the demo.
//
// ## Cloud API (base <origin>/v1, JSON, `Authorization: Bearer <token>`)
//   GET    /v1/servers[?tag:<k>=<v>&tag:<k>…]      all filters must match; `tag:<k>` without "=" = has key
//   POST   /v1/servers                              201 + Server (status "changing", "running" after boot)
//   GET    /v1/servers/<uuid>       PATCH (204; one of name|flavor|interfaces|tags)
//   DELETE /v1/servers/<uuid>       204; 400 {"detail": …} while the server is still `changing`, as the real API
//   POST   /v1/servers/<uuid>/start|stop|reboot    204
//   GET    /v1/flavors  /v1/images  /v1/custom-images[/<uuid>]  /v1/regions  /v1/networks[/<uuid>]
//          /v1/subnets[/<uuid>]
//   GET    /v1/server-groups   POST /v1/server-groups (201)   GET|DELETE /v1/server-groups/<uuid>
// Errors: 400 {"<field>": "<msg>"} or {"detail": "<msg>"}; 401 {"detail": "Invalid token."} (or
// "Authentication credentials were not provided."); 403 for writes with a read-only token; 404
// {"detail": "Not found."}; 405 {"detail": "Method \"X\" not allowed."}; 415 for a non-JSON body.
// Quota exceeded on create: 400 {"detail": "Quota exceeded: ..."}; out of capacity: 400 {"detail":
// "Insufficient capacity for flavor F in zone Z."} (the real shapes are unknown; see state.ts).
// Injected faults: 429 JSON {"detail": "Request was throttled. …"} + Retry-After; 503 JSON {"detail": …};
// 500 Django-style HTML; 502/504 nginx-style HTML (what a proxy in front of the real API would send).
//
// ## Control API (no auth; only answered for loopback peers; not counted, never faulted)
//   GET    /_sim/state[?servers=0]    {servers (full: + user_data, ssh_keys, pending), counters, quota,
//                                      usage, faults, clock, config}
//   GET    /_sim/servers[?tag:k=v]    full server views
//   POST   /_sim/servers              seed servers without validation/quota/latency. Body: a SeedServer,
//                                      a list of them, or {"servers": [...]}. SeedServer = {count?, uuid?,
//                                      name?, flavor?, image?, zone?, status?, tags?, user_data?,
//                                      volume_size_gb?, server_groups?, created_at?}; "{i}" in name and tag
//                                      values = 1..count; status defaults to "running", a seeded
//                                      "changing" server boots like a new one. → 201 {"uuids": [...]}
//   GET    /_sim/servers/<uuid>       full server view (incl. user_data)
//   DELETE /_sim/servers/<uuid>       vanish: delete behind the provider's back (204 / 404)
//   POST   /_sim/servers/<uuid>/status  {"status": "error"} | {"status": "changing"} (stuck for good) |
//                                      {"status": "changing", "then": "running", "afterSeconds": 3}
//   GET    /_sim/faults               faults snapshot (rules with fired counts, capacity, boot outcome)
//   POST   /_sim/faults               FaultsUpdate JSON (see faults.ts): {seed?, rules? (replace),
//                                      addRules? (append), outOfCapacity?: [{flavor, zone}],
//                                      bootOutcome?: "running"|"changing"|"error",
//                                      rejectDeleteWhileChanging?: bool (default true)}. A rule: {method?, path? (route
//                                      pattern as in the counters, "*" or a "prefix*"), latencyMs?,
//                                      action?: "error"|"timeout"|"drop"|"lost-response", status?,
//                                      retryAfterSeconds?, body?, commit?, holdMs?, mode?: "502"|"drop",
//                                      count?, probability?}
//   POST   /_sim/reset-faults         clear all fault knobs (PRNG restarts from its seed)
//   GET    /_sim/counters             {"GET /v1/servers": 3, "POST /v1/servers": 1, ...}
//   POST   /_sim/counters/reset       zero the counters
//   POST   /_sim/quota                {"servers"?: n|null, "vcpus"?: n|null, "memoryGb"?: n|null}
//   POST   /_sim/clock                {"advanceSeconds": n} → push the simulated clock forward
//   POST   /_sim/config               {"bootSeconds"?: n, "actionSeconds"?: n}
//   POST   /_sim/reset                everything back to the start (servers, groups, catalog, faults,
//                                      counters, clock offset, quota from the options)
//
// Counter keys are "<METHOD> <route pattern>", e.g. "GET /v1/servers", "DELETE /v1/servers/:uuid",
// "POST /v1/servers/:uuid/start"; unknown paths count under their literal path. Every /v1 request is
// counted on arrival, including those answered 401 or by an injected fault.

import type { ServerStatus } from "../types.ts";
import { Faults, MAX_HOLD_MS, type FaultRule, type FaultsUpdate } from "./faults.ts";
import { NOT_FOUND, REGIONS, SimState, type Clock, type Quota, type Result, type SeedData, type SeedServer, type TagFilter } from "./state.ts";

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
  clock?: Clock;
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
  stop(): Promise<void>;
}

export function parseListen(s: string): { hostname: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(s.trim());
  if (!m) throw new Error(`invalid listen address "${s}" (expected HOST:PORT)`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`invalid port in "${s}"`);
  return { hostname: (m[1] ?? m[2])!, port };
}

// ---------------------------------------------------------------------------------------------------------
// Responses

const JSON_HEADERS = { "Content-Type": "application/json" };

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { ...JSON_HEADERS, ...headers } });
}

function rawJson(status: number, text: string): Response {
  return new Response(text, { status, headers: JSON_HEADERS });
}

const noContent = (): Response => new Response(null, { status: 204 });

function html(status: number, text: string): Response {
  return new Response(text, { status, headers: { "Content-Type": "text/html" } });
}

const NGINX = (code: number, reason: string) =>
  `<html>\r\n<head><title>${code} ${reason}</title></head>\r\n<body>\r\n<center><h1>${code} ${reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n`;

function fromResult<T>(r: Result<T>, ok: (v: T) => Response): Response {
  return r.ok ? ok(r.value) : json(r.status, r.body);
}

/** A response that makes Bun close the connection before any status line is sent. */
function dropConnection(): Response {
  return new Response(
    new ReadableStream({
      pull(c) {
        c.error(); // an undefined reason: Bun aborts the socket without logging
      },
    }),
    { status: 200 },
  );
}

function faultResponse(rule: FaultRule): Response {
  const status = rule.status ?? (rule.action === "lost-response" ? 502 : 500);
  if (rule.body) {
    const h: Record<string, string> = {};
    if (status === 429 || (status === 503 && rule.retryAfterSeconds !== undefined)) h["Retry-After"] = String(rule.retryAfterSeconds ?? 1);
    return json(status, rule.body, h);
  }
  switch (status) {
    case 429: {
      const ra = rule.retryAfterSeconds ?? 1;
      return json(429, { detail: `Request was throttled. Expected available in ${ra} seconds.` }, { "Retry-After": String(ra) });
    }
    case 503: {
      const h: Record<string, string> = {};
      if (rule.retryAfterSeconds !== undefined) h["Retry-After"] = String(rule.retryAfterSeconds);
      return json(503, { detail: "Service temporarily unavailable, try again later." }, h);
    }
    case 500:
      return html(500, "<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Server Error (500)</title>\n</head>\n<body>\n  <h1>Server Error (500)</h1><p></p>\n</body>\n</html>\n");
    case 502:
      return html(502, NGINX(502, "Bad Gateway"));
    case 504:
      return html(504, NGINX(504, "Gateway Time-out"));
    case 404:
      return json(404, { detail: "Not found." });
    case 409:
      return json(409, { detail: "Conflict." });
    default:
      return json(status, { detail: "Bad request." });
  }
}

// ---------------------------------------------------------------------------------------------------------
// Request helpers

type BodyResult = { ok: true; value: unknown } | { ok: false; response: Response };

async function readJson(req: Request): Promise<BodyResult> {
  const ct = req.headers.get("content-type");
  const text = await req.text();
  if (text.trim() === "") return { ok: true, value: {} };
  if (ct && !/^application\/(.+\+)?json\b/i.test(ct)) {
    return { ok: false, response: json(415, { detail: `Unsupported media type "${ct}" in request.` }) };
  }
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (e) {
    return { ok: false, response: json(400, { detail: `JSON parse error - ${(e as Error).message}` }) };
  }
}

function parseTagFilters(search: string): TagFilter[] | null {
  const out: TagFilter[] = [];
  if (search.length <= 1) return out;
  try {
    for (const part of search.slice(1).split("&")) {
      if (!part) continue;
      const eq = part.indexOf("=");
      const dec = (s: string) => decodeURIComponent(s.replace(/\+/g, " "));
      const key = dec(eq < 0 ? part : part.slice(0, eq));
      if (!key.startsWith("tag:")) continue;
      out.push({ key: key.slice(4), value: eq < 0 ? undefined : dec(part.slice(eq + 1)) });
    }
  } catch {
    return null;
  }
  return out;
}

function sleep(ms: number, stop: AbortSignal, client?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (stop.aborted || client?.aborted || ms <= 0) return resolve();
    const done = () => {
      clearTimeout(t);
      stop.removeEventListener("abort", done);
      client?.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    stop.addEventListener("abort", done);
    client?.addEventListener("abort", done);
  });
}

// ---------------------------------------------------------------------------------------------------------
// Routing

interface Ctx {
  req: Request;
  url: URL;
  params: string[];
}
type Handler = (c: Ctx) => Response | Promise<Response>;
interface Route {
  pattern: string;
  re: RegExp;
  methods: Record<string, Handler>;
}

function route(pattern: string, methods: Record<string, Handler>): Route {
  const re = new RegExp(`^${pattern.replace(/:[a-z]+/g, "([^/]+)")}$`);
  return { pattern, re, methods };
}

const SERVER_STATUSES: ServerStatus[] = ["changing", "running", "stopped", "paused", "rescue_running", "rescue_stopped", "error", "unknown"];

// ---------------------------------------------------------------------------------------------------------

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
  const readOnly = new Set(opts.readOnlyTokens ?? []);

  // ---- /v1 routes

  const list = (items: unknown[]) => json(200, items);
  const routes: Route[] = [
    route("/v1/servers", {
      GET: ({ url }) => {
        const f = parseTagFilters(url.search);
        if (!f) return json(400, { detail: "Malformed query string." });
        return rawJson(200, state.listServersJson(f));
      },
      POST: async ({ req }) => {
        const b = await readJson(req);
        if (!b.ok) return b.response;
        return fromResult(state.createServer(b.value), (s) => rawJson(201, state.serverJson(s)));
      },
    }),
    route("/v1/servers/:uuid", {
      GET: ({ params }) => {
        const s = state.getServer(params[0]!);
        return s ? rawJson(200, state.serverJson(s)) : json(404, NOT_FOUND.body);
      },
      PATCH: async ({ req, params }) => {
        if (!state.getServer(params[0]!)) return json(404, NOT_FOUND.body);
        const b = await readJson(req);
        if (!b.ok) return b.response;
        return fromResult(state.patchServer(params[0]!, b.value), noContent);
      },
      DELETE: ({ params }) => fromResult(state.deleteServer(params[0]!), noContent),
    }),
    ...(["start", "stop", "reboot"] as const).map((a) =>
      route(`/v1/servers/:uuid/${a}`, { POST: ({ params }) => fromResult(state.serverAction(params[0]!, a), noContent) }),
    ),
    route("/v1/flavors", { GET: () => list(state.flavorList()) }),
    route("/v1/images", { GET: () => list(state.imageList()) }),
    route("/v1/custom-images", {
      GET: ({ url }) => {
        const f = parseTagFilters(url.search) ?? [];
        return list([...state.customImages.values()].filter((c) => tagsMatch(c.tags, f)).map((c) => state.customImageView(c)));
      },
    }),
    route("/v1/custom-images/:uuid", {
      GET: ({ params }) => {
        const c = state.customImages.get(params[0]!.toLowerCase());
        return c ? json(200, state.customImageView(c)) : json(404, NOT_FOUND.body);
      },
    }),
    route("/v1/regions", { GET: () => list(REGIONS) }),
    route("/v1/server-groups", {
      GET: ({ url }) => {
        const f = parseTagFilters(url.search) ?? [];
        return list([...state.serverGroups.values()].filter((g) => tagsMatch(g.tags, f)).map((g) => state.serverGroupView(g)));
      },
      POST: async ({ req }) => {
        const b = await readJson(req);
        if (!b.ok) return b.response;
        return fromResult(state.createServerGroup(b.value), (g) => json(201, state.serverGroupView(g)));
      },
    }),
    route("/v1/server-groups/:uuid", {
      GET: ({ params }) => {
        const g = state.serverGroups.get(params[0]!.toLowerCase());
        return g ? json(200, state.serverGroupView(g)) : json(404, NOT_FOUND.body);
      },
      DELETE: ({ params }) => fromResult(state.deleteServerGroup(params[0]!), noContent),
    }),
    route("/v1/networks", {
      GET: ({ url }) => {
        const f = parseTagFilters(url.search) ?? [];
        return list([...state.networks.values()].filter((n) => tagsMatch(n.tags, f)).map((n) => state.networkView(n)));
      },
    }),
    route("/v1/networks/:uuid", {
      GET: ({ params }) => {
        const n = state.networks.get(params[0]!.toLowerCase());
        return n ? json(200, state.networkView(n)) : json(404, NOT_FOUND.body);
      },
    }),
    route("/v1/subnets", {
      GET: () => list([...state.networks.values()].flatMap((n) => n.subnets.map((s) => state.subnetView(n, s)))),
    }),
    route("/v1/subnets/:uuid", {
      GET: ({ params }) => {
        const f = state.findSubnet(params[0]!.toLowerCase());
        return f ? json(200, state.subnetView(f.network, f.subnet)) : json(404, NOT_FOUND.body);
      },
    }),
  ];

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
    let matched: Route | undefined;
    let params: string[] = [];
    for (const r of routes) {
      const m = r.re.exec(path);
      if (m) {
        try {
          params = m.slice(1).map((p) => decodeURIComponent(p));
          matched = r;
        } catch {
          // malformed %-escape: treat as an unknown path (404)
        }
        break;
      }
    }
    const pattern = matched?.pattern ?? path;
    const key = `${req.method} ${pattern}`;
    counters.set(key, (counters.get(key) ?? 0) + 1);

    const plan = faults.plan(req.method, pattern);
    if (plan.latencyMs > 0) await sleep(plan.latencyMs, stopCtl.signal);
    const rule = plan.rule;
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
        await sleep(Math.min(rule.holdMs ?? MAX_HOLD_MS, MAX_HOLD_MS), stopCtl.signal, req.signal);
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

  // ---- control API

  function fullState(withServers: boolean): Record<string, unknown> {
    return {
      servers: withServers ? [...state.servers.values()].map((s) => state.serverFullView(s)) : undefined,
      counters: Object.fromEntries(counters),
      quota: state.quota,
      usage: state.getUsage(),
      faults: faults.snapshot(),
      clock: { now: new Date(state.now()).toISOString(), offsetMs: state.clock.offsetMs },
      config: { bootSeconds: state.bootSeconds, actionSeconds: state.actionSeconds, defaultZone: state.defaultZone, apiUrl: state.apiUrl },
    };
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

  async function handleControl(req: Request, url: URL, path: string): Promise<Response> {
    const m = req.method;
    const body = async (): Promise<BodyResult> => readJson(req);
    const bad = (e: unknown) => json(400, { detail: (e as Error).message ?? String(e) });
    let mm: RegExpExecArray | null;

    if (path === "/_sim/state" && m === "GET") return json(200, fullState(url.searchParams.get("servers") !== "0"));
    if (path === "/_sim/servers" && m === "GET") {
      const f = parseTagFilters(url.search) ?? [];
      return json(200, state.listServers(f).map((s) => state.serverFullView(s)));
    }
    if (path === "/_sim/servers" && m === "POST") {
      const b = await body();
      if (!b.ok) return b.response;
      const v = b.value as { servers?: SeedServer[] } | SeedServer | SeedServer[];
      const input = !Array.isArray(v) && v && typeof v === "object" && "servers" in v ? (v.servers as SeedServer[]) : (v as SeedServer | SeedServer[]);
      try {
        return json(201, { uuids: state.seedServers(input) });
      } catch (e) {
        return bad(e);
      }
    }
    if ((mm = /^\/_sim\/servers\/([^/]+)$/.exec(path))) {
      const uuid = decodeURIComponent(mm[1]!);
      if (m === "GET") {
        const s = state.getServer(uuid);
        return s ? json(200, state.serverFullView(s)) : json(404, NOT_FOUND.body);
      }
      if (m === "DELETE") return state.vanish(uuid) ? noContent() : json(404, NOT_FOUND.body);
    }
    if ((mm = /^\/_sim\/servers\/([^/]+)\/status$/.exec(path)) && m === "POST") {
      const b = await body();
      if (!b.ok) return b.response;
      const v = b.value as { status?: ServerStatus; then?: ServerStatus; afterSeconds?: number };
      if (!v.status || !SERVER_STATUSES.includes(v.status)) return bad(new Error(`status must be one of ${SERVER_STATUSES.join(", ")}`));
      if (v.then !== undefined && !SERVER_STATUSES.includes(v.then)) return bad(new Error("invalid then"));
      if (v.afterSeconds !== undefined && typeof v.afterSeconds !== "number") return bad(new Error("afterSeconds must be a number"));
      return state.forceStatus(decodeURIComponent(mm[1]!).toLowerCase(), v.status, v.then, v.afterSeconds ?? 0)
        ? noContent()
        : json(404, NOT_FOUND.body);
    }
    if (path === "/_sim/faults" && m === "GET") return json(200, faults.snapshot());
    if (path === "/_sim/faults" && m === "POST") {
      const b = await body();
      if (!b.ok) return b.response;
      try {
        faults.update(b.value as FaultsUpdate);
      } catch (e) {
        return bad(e);
      }
      return json(200, faults.snapshot());
    }
    if (path === "/_sim/reset-faults" && m === "POST") {
      faults.reset();
      return json(200, faults.snapshot());
    }
    if (path === "/_sim/counters" && m === "GET") return json(200, Object.fromEntries(counters));
    if ((path === "/_sim/counters/reset" || path === "/_sim/reset-counters") && m === "POST") {
      counters.clear();
      return noContent();
    }
    if (path === "/_sim/quota" && m === "POST") {
      const b = await body();
      if (!b.ok) return b.response;
      const v = b.value as Record<string, unknown>;
      const q: Partial<Quota> = {};
      for (const k of ["servers", "vcpus", "memoryGb"] as const) {
        if (v[k] === undefined) continue;
        if (v[k] !== null && !(typeof v[k] === "number" && Number.isInteger(v[k]) && (v[k] as number) >= 0)) {
          return bad(new Error(`${k} must be a non-negative integer or null`));
        }
        q[k] = v[k] as number | null;
      }
      state.setQuota(q);
      return json(200, { quota: state.quota, usage: state.getUsage() });
    }
    if (path === "/_sim/clock" && m === "POST") {
      const b = await body();
      if (!b.ok) return b.response;
      const v = b.value as { advanceSeconds?: unknown };
      if (v.advanceSeconds !== undefined) {
        if (typeof v.advanceSeconds !== "number" || !Number.isFinite(v.advanceSeconds)) return bad(new Error("advanceSeconds must be a number"));
        state.clock.advance(v.advanceSeconds * 1000);
      }
      return json(200, { now: new Date(state.now()).toISOString(), offsetMs: state.clock.offsetMs });
    }
    if (path === "/_sim/config" && m === "POST") {
      const b = await body();
      if (!b.ok) return b.response;
      const v = b.value as { bootSeconds?: unknown; actionSeconds?: unknown };
      for (const k of ["bootSeconds", "actionSeconds"] as const) {
        const x = v[k];
        if (x === undefined) continue;
        if (typeof x !== "number" || !(x >= 0)) return bad(new Error(`${k} must be a number >= 0`));
        state[k] = x;
      }
      return json(200, { bootSeconds: state.bootSeconds, actionSeconds: state.actionSeconds });
    }
    if (path === "/_sim/reset" && m === "POST") {
      reset();
      return noContent();
    }
    return json(404, NOT_FOUND.body);
  }

  const LOOPBACK = new Set(["127.0.0.1", "::1", "::ffff:127.0.0.1"]);

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
    async stop() {
      if (stopped) return;
      stopped = true;
      stopCtl.abort();
      await server.stop(true);
    },
  };
}

function tagsMatch(tags: Record<string, string>, f: TagFilter[]): boolean {
  return f.every((t) => tags[t.key] !== undefined && (t.value === undefined || tags[t.key] === t.value));
}
