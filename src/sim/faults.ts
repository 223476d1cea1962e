// Fault and latency knobs for the cloudscale.ch API simulator.
//
// Two kinds of knobs live here:
//  1. Per-request rules (`FaultRule`): matched against the method and the route pattern of each /v1 request
//     (the same key the request counters use, e.g. "POST /v1/servers", "GET /v1/servers/:uuid"). A rule that
//     "fires" adds its latency and may replace the response with an error, a held request (timeout), a dropped
//     connection, or a lost response (the request takes effect, the client never learns).
//  2. Cloud-side knobs read by the state when a server is created or deleted: flavors out of capacity in a
//     zone, the outcome of booting new servers (running / stuck in changing / error), and whether DELETE of a
//     server that is still `changing` is refused with 400. The real API refuses it (cloudscale's acceptance
//     tests retry such a DELETE: https://github.com/cloudscale-ch/acceptance-tests, api.py), so the
//     simulator does too unless this is turned off.
//
// All randomness comes from one seedable PRNG so runs are reproducible.

/** Status codes a rule may answer with. 429 carries Retry-After. 200 is a success that is not the API's
 *  answer: a captive portal's or a misrouted balancer's HTML page, or `body` where the API's JSON belongs. */
export type FaultStatus = 200 | 400 | 404 | 409 | 429 | 500 | 502 | 503 | 504;

export type FaultAction =
  /** Answer with `status` instead of handling the request (unless `commit`). */
  | "error"
  /** Hold the request until the client gives up (or `holdMs`, at most 60 s), then answer 504. */
  | "timeout"
  /** Close the connection without an HTTP response. */
  | "drop"
  /** The request takes effect (e.g. the server IS created), then the answer is lost: a 502 (mode "502",
   *  the default) or a dropped connection (mode "drop"). Shorthand for error/drop with commit: true. */
  | "lost-response"
  /** Hold the request until the control API releases it (POST /_sim/release; at most 60 s), then handle
   *  it as usual; with `commit`, it is handled (and its answer taken) first and only the answer waits.
   *  A test orders a race on it: "this list is on its way" is a held request, not a sleep. */
  | "hold";

export interface FaultRule {
  /** Assigned when the rule is added; used in snapshots. */
  id?: string;
  /** HTTP method, or "*" (default). */
  method?: string;
  /** Route pattern as in the counters ("/v1/servers", "/v1/servers/:uuid", "/v1/servers/:uuid/start"),
   *  "*" (default) for every path, or a prefix glob ending in "*" ("/v1/servers*"). */
  path?: string;
  /** Delay added before the request is handled, in ms (wall clock). The request is still handled even if
   *  the client gave up meanwhile, as a real API behind a proxy would. */
  latencyMs?: number;
  action?: FaultAction;
  /** For "error": the status to answer (default 500). For "lost-response": 502 unless mode is "drop". */
  status?: FaultStatus;
  /** Retry-After value in seconds for 429 (default 1) and, when set, for 503. */
  retryAfterSeconds?: number;
  /** Replace the default error body: any JSON object or list (the real API's values are plain strings;
   *  other shapes, such as Django REST framework's default lists, show how a client copes; with status
   *  200, an answer of the wrong shape). */
  body?: Record<string, unknown> | unknown[];
  /** For "error"/"timeout"/"drop": let the request take effect before the fault is applied. For "hold":
   *  take the answer before holding it. */
  commit?: boolean;
  /** For "timeout": how long to hold before answering 504 if the client is still waiting (default and max
   *  60000 ms). */
  holdMs?: number;
  /** For "lost-response": how the answer is lost. */
  mode?: "502" | "drop";
  /** Fire at most this many times (then the rule is exhausted). Without count and probability: always. */
  count?: number;
  /** Fire with this probability (0..1), drawn from the seeded PRNG. Combined with count: both apply. */
  probability?: number;
}

/** What the HTTP layer should do with one request. */
export interface FaultPlan {
  latencyMs: number;
  /** The rule whose action applies, if any. */
  rule?: Required<Pick<FaultRule, "id">> & FaultRule;
}

/** A request the simulator holds (fault action "hold") until it is released. */
export interface HeldRequest {
  id: number;
  /** "<METHOD> <route pattern>", as the counters name it. */
  request: string;
  /** The id of the rule that holds it. */
  rule: string;
  /** Whether it has taken effect already (the rule's commit), so only its answer waits. */
  committed: boolean;
  heldMs: number;
}

export type BootOutcome = "running" | "changing" | "error";

export interface CapacityOutage {
  flavor: string;
  zone: string;
}

/** The JSON accepted by POST /_sim/faults (every field optional; given fields replace the current value,
 *  except `addRules`, which appends). */
export interface FaultsUpdate {
  seed?: number;
  rules?: FaultRule[];
  addRules?: FaultRule[];
  outOfCapacity?: CapacityOutage[];
  bootOutcome?: BootOutcome;
  rejectDeleteWhileChanging?: boolean;
}

export interface FaultsSnapshot {
  seed: number;
  rules: (FaultRule & { id: string; fired: number })[];
  outOfCapacity: CapacityOutage[];
  /** Creates refused for capacity since the last reset. */
  capacityRefusals: number;
  bootOutcome: BootOutcome;
  rejectDeleteWhileChanging: boolean;
}

/** Upper bound for "timeout" holds and latency, so a forgotten knob cannot hang a test run forever. */
export const MAX_HOLD_MS = 60_000;

const ACTIONS: readonly FaultAction[] = ["error", "timeout", "drop", "lost-response", "hold"];
const STATUSES: readonly number[] = [200, 400, 404, 409, 429, 500, 502, 503, 504];

/** mulberry32: small, fast, good enough for fault injection; fully determined by the seed. */
export function makeRng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface LiveRule extends FaultRule {
  id: string;
  fired: number;
}

export class Faults {
  private rules: LiveRule[] = [];
  private nextId = 1;
  private seedValue: number;
  private rng: () => number;
  /** Flavor+zone pairs that answer "Insufficient capacity" on create. */
  outOfCapacity: CapacityOutage[] = [];
  /** Creates refused for capacity since the last reset. */
  capacityRefusals = 0;
  /** What newly created servers turn into after the boot delay. "changing" = stuck forever. */
  bootOutcome: BootOutcome = "running";
  /** Refuse DELETE of a server still `changing` with 400, as the real API does (see the module comment). */
  rejectDeleteWhileChanging = true;

  constructor(seed = 1) {
    this.seedValue = seed;
    this.rng = makeRng(seed);
  }

  /** Restart the PRNG from `seed`. */
  seed(seed: number): void {
    this.seedValue = seed;
    this.rng = makeRng(seed);
  }

  /** A number in [0, 1) from the seeded PRNG. */
  random(): number {
    return this.rng();
  }

  /** Append a rule; returns its id. Throws on an invalid rule. */
  addRule(rule: FaultRule): string {
    const r = validateRule(rule);
    const id = `r${this.nextId++}`;
    this.rules.push({ ...r, id, fired: 0 });
    return id;
  }

  removeRule(id: string): boolean {
    const before = this.rules.length;
    this.rules = this.rules.filter((r) => r.id !== id);
    return this.rules.length !== before;
  }

  /** Convenience: latency for every request matching method+path. */
  setLatency(method: string, path: string, latencyMs: number): string {
    return this.addRule({ method, path, latencyMs });
  }

  /** Convenience: fail the next `count` matching requests with `status`. */
  failNext(method: string, path: string, status: FaultStatus, count = 1, retryAfterSeconds?: number): string {
    return this.addRule({ method, path, action: "error", status, count, retryAfterSeconds });
  }

  /** Convenience: fail matching requests with `status` at `probability`. */
  failRate(method: string, path: string, status: FaultStatus, probability: number): string {
    return this.addRule({ method, path, action: "error", status, probability });
  }

  /** Convenience: the next `count` POST /v1/servers create the server, then lose the answer. */
  loseCreateResponses(count = 1, mode: "502" | "drop" = "502"): string {
    return this.addRule({ method: "POST", path: "/v1/servers", action: "lost-response", mode, count });
  }

  setOutOfCapacity(flavor: string, zone: string, out = true): void {
    this.outOfCapacity = this.outOfCapacity.filter((o) => !(o.flavor === flavor && o.zone === zone));
    if (out) this.outOfCapacity.push({ flavor, zone });
  }

  /** Whether a create of this flavor in this zone is refused for capacity (counted when it is). */
  isOutOfCapacity(flavor: string, zone: string): boolean {
    const out = this.outOfCapacity.some((o) => o.flavor === flavor && o.zone === zone);
    if (out) this.capacityRefusals++;
    return out;
  }

  /** Clear every knob (the seed is kept, the PRNG restarts from it). */
  reset(): void {
    this.rules = [];
    this.outOfCapacity = [];
    this.capacityRefusals = 0;
    this.bootOutcome = "running";
    this.rejectDeleteWhileChanging = true;
    this.rng = makeRng(this.seedValue);
  }

  /** Apply a POST /_sim/faults body. Throws Error with a readable message on invalid input (before any
   *  change is made). */
  update(u: FaultsUpdate): void {
    if (typeof u !== "object" || u === null || Array.isArray(u)) throw new Error("expected a JSON object");
    const rules = u.rules === undefined ? undefined : checkRuleList(u.rules, "rules");
    const addRules = u.addRules === undefined ? undefined : checkRuleList(u.addRules, "addRules");
    if (u.seed !== undefined && (typeof u.seed !== "number" || !Number.isFinite(u.seed))) {
      throw new Error("seed must be a number");
    }
    if (u.outOfCapacity !== undefined) {
      if (!Array.isArray(u.outOfCapacity)) throw new Error("outOfCapacity must be a list");
      for (const o of u.outOfCapacity) {
        if (typeof o?.flavor !== "string" || typeof o?.zone !== "string") {
          throw new Error("outOfCapacity entries need string flavor and zone");
        }
      }
    }
    if (u.bootOutcome !== undefined && !["running", "changing", "error"].includes(u.bootOutcome)) {
      throw new Error("bootOutcome must be running, changing or error");
    }
    if (u.rejectDeleteWhileChanging !== undefined && typeof u.rejectDeleteWhileChanging !== "boolean") {
      throw new Error("rejectDeleteWhileChanging must be a boolean");
    }
    if (u.seed !== undefined) this.seed(u.seed);
    if (rules) {
      this.rules = [];
      for (const r of rules) this.addRule(r);
    }
    if (addRules) for (const r of addRules) this.addRule(r);
    if (u.outOfCapacity) this.outOfCapacity = u.outOfCapacity.map((o) => ({ flavor: o.flavor, zone: o.zone }));
    if (u.bootOutcome) this.bootOutcome = u.bootOutcome;
    if (u.rejectDeleteWhileChanging !== undefined) this.rejectDeleteWhileChanging = u.rejectDeleteWhileChanging;
  }

  snapshot(): FaultsSnapshot {
    return {
      seed: this.seedValue,
      rules: this.rules.map((r) => ({ ...r })),
      outOfCapacity: this.outOfCapacity.map((o) => ({ ...o })),
      capacityRefusals: this.capacityRefusals,
      bootOutcome: this.bootOutcome,
      rejectDeleteWhileChanging: this.rejectDeleteWhileChanging,
    };
  }

  /** Decide what happens to one request. Consumes counts and PRNG draws of the rules that are evaluated.
   *  Rules are evaluated in order; latencies of all firing rules add up; the first firing rule with an
   *  action decides the action (later rules with actions are then not evaluated at all). */
  plan(method: string, pattern: string): FaultPlan {
    let latencyMs = 0;
    let chosen: LiveRule | undefined;
    for (const r of this.rules) {
      if (!matches(r, method, pattern)) continue;
      if (r.action && chosen) continue;
      if (r.count !== undefined && r.fired >= r.count) continue;
      if (r.probability !== undefined && !(this.rng() < r.probability)) continue;
      r.fired++;
      if (r.latencyMs) latencyMs += r.latencyMs;
      if (r.action) chosen = r;
    }
    return { latencyMs: Math.min(latencyMs, MAX_HOLD_MS), rule: chosen };
  }
}

function matches(r: FaultRule, method: string, pattern: string): boolean {
  const m = r.method ?? "*";
  if (m !== "*" && m.toUpperCase() !== method) return false;
  const p = r.path ?? "*";
  if (p === "*") return true;
  if (p.endsWith("*")) return pattern.startsWith(p.slice(0, -1));
  return p === pattern;
}

function checkRuleList(v: unknown, name: string): FaultRule[] {
  if (!Array.isArray(v)) throw new Error(`${name} must be a list`);
  return v.map((r) => validateRule(r as FaultRule));
}

function validateRule(rule: FaultRule): FaultRule {
  if (typeof rule !== "object" || rule === null || Array.isArray(rule)) throw new Error("a rule must be an object");
  const r: FaultRule = { ...rule };
  delete r.id;
  delete (r as { fired?: unknown }).fired;
  if (r.method !== undefined && typeof r.method !== "string") throw new Error("rule.method must be a string");
  if (r.path !== undefined && typeof r.path !== "string") throw new Error("rule.path must be a string");
  if (r.latencyMs !== undefined && !(typeof r.latencyMs === "number" && r.latencyMs >= 0)) {
    throw new Error("rule.latencyMs must be a number >= 0");
  }
  if (r.action !== undefined && !ACTIONS.includes(r.action)) {
    throw new Error(`rule.action must be one of ${ACTIONS.join(", ")}`);
  }
  if (r.status !== undefined && !STATUSES.includes(r.status)) {
    throw new Error(`rule.status must be one of ${STATUSES.join(", ")}`);
  }
  if (r.count !== undefined && !(Number.isInteger(r.count) && r.count >= 0)) {
    throw new Error("rule.count must be an integer >= 0");
  }
  if (r.probability !== undefined && !(typeof r.probability === "number" && r.probability >= 0 && r.probability <= 1)) {
    throw new Error("rule.probability must be between 0 and 1");
  }
  if (r.retryAfterSeconds !== undefined && !(typeof r.retryAfterSeconds === "number" && r.retryAfterSeconds >= 0)) {
    throw new Error("rule.retryAfterSeconds must be a number >= 0");
  }
  if (r.holdMs !== undefined && !(typeof r.holdMs === "number" && r.holdMs >= 0)) {
    throw new Error("rule.holdMs must be a number >= 0");
  }
  if (r.mode !== undefined && r.mode !== "502" && r.mode !== "drop") throw new Error('rule.mode must be "502" or "drop"');
  if (r.body !== undefined) {
    if (typeof r.body !== "object" || r.body === null) throw new Error("rule.body must be a JSON object or list");
  }
  if (r.latencyMs === undefined && r.action === undefined) throw new Error("a rule needs latencyMs or action");
  if (r.method) r.method = r.method.toUpperCase();
  return r;
}
