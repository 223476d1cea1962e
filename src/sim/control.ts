// The simulator's control API (no auth; only answered for loopback peers; not counted, never faulted):
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
//                                      action?: "error"|"timeout"|"drop"|"lost-response"|"hold", status? (200:
//                                      a captive portal's HTML page, or `body` where the API's JSON belongs),
//                                      retryAfterSeconds?, body?, commit?, holdMs?, mode?: "502"|"drop",
//                                      count?, probability?}
//   POST   /_sim/reset-faults         clear all fault knobs (PRNG restarts from its seed)
//   GET    /_sim/held                 {"inFlight": n (requests arrived, not answered yet), "held": [{id,
//                                      request: "<METHOD> <pattern>", rule, committed, heldMs}]}
//   POST   /_sim/release              {"count"?: n, "request"?: "<METHOD> <pattern>"} → release held
//                                      requests, oldest first (all by default) → {"released": n}
//   GET    /_sim/counters             {"GET /v1/servers": 3, "POST /v1/servers": 1, ...}
//   POST   /_sim/counters/reset       zero the counters
//   POST   /_sim/quota                {"servers"?: n|null, "vcpus"?: n|null, "memoryGb"?: n|null}
//   POST   /_sim/clock                {"advanceSeconds": n} → push the simulated clock forward
//   POST   /_sim/config               {"bootSeconds"?: n, "actionSeconds"?: n}
//   POST   /_sim/reset                everything back to the start (servers, groups, catalog, faults,
//                                      counters, clock offset, quota from the options)

import type { ServerStatus } from "../types.ts";
import type { Faults, FaultsUpdate, HeldRequest } from "./faults.ts";
import { json, noContent, parseTagFilters, readJson, type BodyResult } from "./http.ts";
import { NOT_FOUND, type Quota, type SeedServer } from "./records.ts";
import type { SimState } from "./state.ts";

const SERVER_STATUSES: ServerStatus[] = ["changing", "running", "stopped", "paused", "rescue_running", "rescue_stopped", "error", "unknown"];

export interface ControlDeps {
  state: SimState;
  faults: Faults;
  counters: Map<string, number>;
  /** Everything back to the start, as POST /_sim/reset. */
  reset(): void;
  /** Requests on their way through the simulator, and the held ones. */
  requests: {
    inFlight(): number;
    held(): HeldRequest[];
    release(count?: number, request?: string): number;
  };
}

export function controlHandler({ state, faults, counters, reset, requests }: ControlDeps): (req: Request, url: URL, path: string) => Promise<Response> {
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

  return async function handleControl(req: Request, url: URL, path: string): Promise<Response> {
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
    if (path === "/_sim/held" && m === "GET") return json(200, { inFlight: requests.inFlight(), held: requests.held() });
    if (path === "/_sim/release" && m === "POST") {
      const b = await body();
      if (!b.ok) return b.response;
      const v = b.value as { count?: unknown; request?: unknown };
      if (v.count !== undefined && !(Number.isInteger(v.count) && (v.count as number) >= 0)) return bad(new Error("count must be an integer >= 0"));
      if (v.request !== undefined && typeof v.request !== "string") return bad(new Error('request must be "<METHOD> <pattern>"'));
      return json(200, { released: requests.release(v.count as number | undefined, v.request as string | undefined) });
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
  };
}
