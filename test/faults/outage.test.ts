// Outage: the API down (answering 5xx, 429, dropping connections, or hanging)
// for longer than the staleness bound. Refresh serves the last good view within
// the bound and fails clearly past it; the provider recovers without a restart;
// nothing is created or deleted from a stale view; a handler answers before the
// caller's deadline. Orders are forced with the simulator's hold and read from its
// counters and from the provider's /status, not from sleeps; each test checks that
// the faults it injected fired.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { details, expectCode, grpc, type Client } from "../helpers/grpc";
import { startSim, until, untilHeld, type SimProc, type SimServer } from "../helpers/procs";
import { providerConfig, providers } from "../helpers/provider";
import { checkNoSecretsAtEnd } from "./lib";

checkNoSecretsAtEnd();

const CLUSTER = "ou";
const MAX_AGE_S = 4;

let sim: SimProc;
const served = providers();
const serveWith = (o: { createConcurrency?: number; apiTimeout?: string } = {}) =>
  served.start({
    apiUrl: sim.apiUrl,
    health: true,
    config: providerConfig(CLUSTER, { createConcurrency: o.createConcurrency ?? 4, createVerifyDelay: "300ms", apiTimeout: o.apiTimeout ?? "1s", maxViewAge: `${MAX_AGE_S}s` }),
  });

const ours = (): Promise<SimServer[]> => sim.ours(CLUSTER);
/** Refresh, until it fails as past the staleness bound; returns that error. */
const untilStale = (c: Client, deadlineMs?: number) =>
  until("Refresh to fail past the staleness bound", () => c.call("Refresh", {}, deadlineMs ? { deadlineMs } : undefined).then(() => false as const, (e: grpc.ServiceError) => e.code === grpc.status.UNAVAILABLE && e), (MAX_AGE_S + 15) * 1000, 100);
/** The provider's /status document (the health listener's). */
const status = async (healthPort: number) => (await fetch(`http://127.0.0.1:${healthPort}/status`)).json() as Promise<{ hold: { reason: string } | null; groups: { name: string; pending: number; held: number }[] }>;
const mutations = async () => {
  const k = await sim.counters();
  return { creates: k["POST /v1/servers"] ?? 0, deletes: k["DELETE /v1/servers/:uuid"] ?? 0, reads: k["GET /v1/servers/:uuid"] ?? 0 };
};

beforeAll(async () => {
  sim = await startSim(["--boot-seconds", "0"]);
});

afterEach(async () => {
  await sim.resetFaults();
  await served.stopAll();
  await sim.reset();
});

afterAll(async () => {
  await sim?.stop();
});

/** Two servers of ours, listed by a fresh view. */
async function twoServers(c: Client) {
  await c.call("Refresh");
  await c.call("NodeGroupIncreaseSize", { id: "pool", delta: 2 });
  const servers = await until("2 servers", async () => {
    const s = await ours();
    return s.length === 2 && s;
  }, 10_000);
  await c.call("Refresh");
  return servers;
}

describe("the API down for longer than the staleness bound", () => {
  const outages = [
    { label: "503 on every request", rules: [{ path: "/v1/*", action: "error", status: 503 }] },
    { label: "HTML 502 from a proxy", rules: [{ path: "/v1/*", action: "error", status: 502 }] },
    { label: "connections dropped", rules: [{ path: "/v1/*", action: "drop" }] },
    { label: "429 (Retry-After: 0)", rules: [{ path: "/v1/*", action: "error", status: 429, retryAfterSeconds: 0 }] },
  ];
  for (const o of outages) {
    test(`${o.label}: last good view within the bound, a clear UNAVAILABLE past it, no create or delete, recovery without restart`, async () => {
      const { s, c, ready } = await serveWith();
      const [a, b] = await twoServers(c);
      expect((await ready()).status).toBe(200);
      const outageStart = performance.now();
      await sim.faults({ rules: o.rules });

      // Within the bound: Refresh succeeds and the view is the last good one.
      await c.call("Refresh");
      expect((await c.call("NodeGroupTargetSize", { id: "pool" })).targetSize).toBe(2);
      expect(((await c.call("NodeGroupNodes", { id: "pool" })).instances as { id: string }[]).map((i) => i.id).sort()).toEqual([a, b].map((x) => `cloudscale://${x!.uuid}`).sort());
      expect(performance.now() - outageStart).toBeLessThan(MAX_AGE_S * 1000); // the assertions above ran inside the bound

      // Past the bound: Refresh fails with UNAVAILABLE, naming the age and the limit.
      const e = await untilStale(c);
      expect((await sim.fired())[0]).toBeGreaterThan(0); // the outage was served
      const m = /the last good view is (\d+)s old \(limit (\d+)s\)/.exec(details(e));
      expect(m, details(e)).not.toBeNull();
      expect(Number(m![1])).toBeGreaterThanOrEqual(MAX_AGE_S);
      expect(Number(m![2])).toBe(MAX_AGE_S);
      // Still ready (CA can reach it and is told why it cannot act); the age is in the answer.
      const r = await ready();
      expect(r.status).toBe(200);
      expect(r.text).toMatch(/ok, but the view of the cloud is \d+s old \(limit \d+s\)/);

      // Nothing is created or deleted from the stale view; not even a read is made for a delete.
      const before = await mutations();
      const inc = await expectCode(c.call("NodeGroupIncreaseSize", { id: "pool", delta: 1 }), grpc.status.UNAVAILABLE);
      expect(details(inc)).toMatch(new RegExp(`refusing to create servers: the view of the cloud is \\d+s old \\(limit ${MAX_AGE_S}s\\)`));
      const del = await expectCode(c.call("NodeGroupDeleteNodes", { id: "pool", nodes: [{ providerID: `cloudscale://${a!.uuid}`, name: a!.name }] }), grpc.status.UNAVAILABLE);
      expect(details(del)).toMatch(new RegExp(`refusing to delete servers: the view of the cloud is \\d+s old \\(limit ${MAX_AGE_S}s\\)`));
      // One more round trip through the provider: what a refusal might have started would be under way by its end.
      await expectCode(c.call("Refresh"), grpc.status.UNAVAILABLE);
      expect(await mutations()).toEqual(before);
      expect((await ours()).map((x) => x.uuid).sort()).toEqual([a!.uuid, b!.uuid].sort());

      // Recovery, same process.
      await sim.resetFaults();
      await c.call("Refresh");
      expect((await ready()).status).toBe(200);
      expect((await c.call("NodeGroupTargetSize", { id: "pool" })).targetSize).toBe(2);
      await c.call("NodeGroupIncreaseSize", { id: "pool", delta: 1 });
      await c.call("NodeGroupDeleteNodes", { id: "pool", nodes: [{ providerID: `cloudscale://${a!.uuid}`, name: a!.name }] });
      await until("2 servers again (one new, one deleted)", async () => {
        const x = await ours();
        return x.length === 2 && !x.some((y) => y.uuid === a!.uuid);
      }, 10_000);
      expect(s.proc.exitCode).toBeNull();
    }, 60_000);
  }

  test("a short maintenance (503 for a moment) on a list and on a delete: both are retried and succeed", async () => {
    const { c } = await serveWith();
    const [a, b] = await twoServers(c);
    await sim.resetCounters();
    await sim.faults({ rules: [{ method: "GET", path: "/v1/servers", action: "error", status: 503, count: 2 }, { method: "DELETE", path: "/v1/servers/:uuid", action: "error", status: 503, count: 2 }] });
    await c.call("Refresh");
    await c.call("NodeGroupDeleteNodes", { id: "pool", nodes: [{ providerID: `cloudscale://${a!.uuid}`, name: a!.name }] });
    const k = await sim.counters();
    expect({ lists: k["GET /v1/servers"], deletes: k["DELETE /v1/servers/:uuid"], left: (await ours()).map((s) => s.uuid) }).toEqual({ lists: 3, deletes: 3, left: [b!.uuid] });
  });

  test("a 429 with Retry-After: Refresh waits as told, then succeeds", async () => {
    const { c } = await serveWith();
    await c.call("Refresh");
    await sim.resetCounters();
    await sim.faults({ rules: [{ method: "GET", path: "/v1/servers", action: "error", status: 429, retryAfterSeconds: 1, count: 1 }] });
    const t0 = performance.now();
    await c.call("Refresh");
    expect(performance.now() - t0).toBeGreaterThanOrEqual(950);
    expect((await sim.counters())["GET /v1/servers"]).toBe(2);
  });

  test("creates accepted while the view was fresh are not sent once it is stale; they go out after recovery", async () => {
    // One create at a time; the first is held at the simulator while the view turns stale.
    const { c, healthPort } = await serveWith({ createConcurrency: 1, apiTimeout: "5s" });
    await c.call("Refresh");
    await sim.faults({ rules: [{ method: "POST", path: "/v1/servers", action: "hold", count: 1 }] });
    await c.call("NodeGroupIncreaseSize", { id: "pool", delta: 6 });
    await untilHeld(sim, 1, "POST /v1/servers"); // the first create is on its way, five wait their turn
    await sim.faults({ addRules: [{ method: "GET", path: "/v1/servers", action: "error", status: 503 }] }); // listing is down, creating works
    await untilStale(c); // CA keeps calling Refresh; the view turns stale after the bound
    expect(await sim.release()).toBe(1); // the first create lands: the queue's turn comes, on a stale view
    // The provider says it holds the other five for the stale view, and sent none of them.
    const st = await until("the provider to hold the five", async () => {
      const x = await status(healthPort!);
      const pool = x.groups.find((g) => g.name === "pool")!;
      return x.hold?.reason === "stale-view" && pool.held === 5 && (await sim.held()).inFlight === 0 && x;
    });
    expect(st.groups.find((g) => g.name === "pool")!.held).toBe(5); // the first one is sent, the other five held
    expect((await mutations()).creates).toBe(1);
    expect(await c.call("Refresh").then(() => "ok", () => "still stale")).toBe("still stale");
    expect((await mutations()).creates).toBe(1);
    expect((await sim.fired())[1]).toBeGreaterThan(0); // the lists did fail
    await sim.resetFaults();
    await c.call("Refresh");
    await until("all 6 created after recovery", async () => (await ours()).length === 6, 20_000);
    expect((await mutations()).creates).toBe(6);
  }, 60_000);

  test("an API that hangs: Refresh answers within CA's deadline from the last good view, and past the bound fails clearly", async () => {
    // apiTimeout 20 s: one list attempt outlives CA's 2 s call deadline.
    const { c } = await serveWith({ apiTimeout: "20s" });
    await twoServers(c);
    await sim.faults({ rules: [{ method: "GET", path: "/v1/servers", action: "timeout", holdMs: 60_000 }] });
    const within = await c.call("Refresh", {}, { deadlineMs: 2000 }).then(() => "ok", (e) => `${grpc.status[e.code]}: ${details(e)}`);
    expect((await sim.fired())[0]).toBeGreaterThan(0); // the list hangs at the API
    const past = await untilStale(c, 2000);
    expect({ withinTheBound: within, pastTheBound: grpc.status[past.code] }).toEqual({ withinTheBound: "ok", pastTheBound: "UNAVAILABLE" });
  }, 60_000);

  test("a handler honours the caller's deadline: DeleteNodes against a slow API gives up, and deletes nothing", async () => {
    const { c } = await serveWith();
    const [s] = await twoServers(c);
    await sim.faults({ rules: [{ method: "GET", path: "/v1/servers/:uuid", action: "hold", count: 1 }] });
    await expectCode(c.call("NodeGroupDeleteNodes", { id: "pool", nodes: [{ providerID: `cloudscale://${s!.uuid}`, name: s!.name }] }, { deadlineMs: 500 }), grpc.status.DEADLINE_EXCEEDED);
    await untilHeld(sim, 1, "GET /v1/servers/:uuid"); // the read was made, and is still unanswered when the caller gave up
    expect(await sim.release()).toBe(1); // the abandoned read is answered…
    await until("the read answered", async () => (await sim.held()).inFlight === 0);
    await c.call("Refresh"); // …and one more round trip through the provider: nothing followed it
    expect(await ours()).toHaveLength(2);
    expect((await mutations()).deletes).toBe(0);
  });
});
