// Interleavings and shutdown, driven through the compiled binary. Each order is
// forced with the simulator's hold: a list is held at the simulator (its answer
// taken when it arrived) while the test makes its calls, then released; the test
// checks that the order it meant is the order that happened. (The same orders are
// forced with a fake clock in reconciler.test.ts; lost responses and outages are
// in test/faults.)
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { grpc, targetSize } from "./helpers/grpc";
import { makePki, type Pki } from "./helpers/certs";
import { startSim, until, untilHeld, type SimProc } from "./helpers/procs";
import { providerConfig, providers } from "./helpers/provider";

let pki: Pki;
let sim: SimProc;
const served = providers();
const serveWith = () => served.start({ apiUrl: sim.apiUrl, pki, config: providerConfig("rs", { createConcurrency: 8, createVerifyDelay: "300ms" }) });
const ours = () => sim.ours("rs");

beforeAll(async () => {
  pki = makePki();
  sim = await startSim(["--boot-seconds", "0"]);
});

afterEach(async () => {
  await sim.resetFaults();
  await served.stopAll();
  // Leave the cloud empty for the next test (behind the provider's back is fine here).
  for (const s of await ours()) await sim.vanish(s.uuid);
});

afterAll(async () => {
  await sim?.stop();
});

describe("interleavings", () => {
  test("a Refresh whose list started before a create was accepted neither drops nor doubles it", async () => {
    const { c } = await serveWith();
    await c.call("Refresh");
    await sim.faults({ rules: [{ method: "GET", path: "/v1/servers", action: "hold", commit: true, count: 1 }] });
    const slowRefresh = c.call("Refresh");
    await untilHeld(sim, 1, "GET /v1/servers"); // the list has been taken, before the creates exist
    await c.call("NodeGroupIncreaseSize", { id: "pool", delta: 3 });
    await until("3 servers created", async () => (await ours()).length === 3);
    expect(await sim.release()).toBe(1);
    await slowRefresh; // its list predates the creates: it shows none of them
    expect(await sim.fired()).toEqual([1]);
    expect(await targetSize(c, "pool")).toBe(3);
    await c.call("Refresh");
    expect(await targetSize(c, "pool")).toBe(3);
    expect(await ours()).toHaveLength(3);
  });

  test("a Refresh whose list started before a delete does not bring the server back", async () => {
    const { c } = await serveWith();
    await c.call("Refresh");
    await c.call("NodeGroupIncreaseSize", { id: "pool", delta: 2 });
    const [victim] = await until("2 servers", async () => {
      const s = await ours();
      return s.length === 2 && s;
    });
    await c.call("Refresh");
    await sim.faults({ rules: [{ method: "GET", path: "/v1/servers", action: "hold", commit: true, count: 1 }] });
    const slowRefresh = c.call("Refresh");
    await untilHeld(sim, 1, "GET /v1/servers"); // the list has been taken: it shows the victim
    await c.call("NodeGroupDeleteNodes", { id: "pool", nodes: [{ providerID: `cloudscale://${victim!.uuid}`, name: victim!.name }] });
    await until("the victim deleted", async () => !(await ours()).some((s) => s.uuid === victim!.uuid));
    expect(await sim.release()).toBe(1);
    await slowRefresh; // answered with the list that still shows the victim
    expect(await sim.fired()).toEqual([1]);
    expect(await targetSize(c, "pool")).toBe(1);
    const inst = (await c.call("NodeGroupNodes", { id: "pool" })).instances;
    expect(inst.find((i: any) => i.id === `cloudscale://${victim!.uuid}`)?.status.instanceState ?? "gone").not.toBe("instanceRunning");
    await c.call("Refresh");
    expect(await targetSize(c, "pool")).toBe(1);
    expect((await ours()).map((s) => s.uuid)).not.toContain(victim!.uuid);
  });

  test("concurrent IncreaseSize calls never exceed max and never double", async () => {
    const { c } = await serveWith();
    await c.call("Refresh");
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => c.call("NodeGroupIncreaseSize", { id: "pool", delta: 3 })));
    const ok = results.filter((r) => r.status === "fulfilled").length;
    expect(ok).toBe(6); // 6 × 3 = 18 ≤ 20; a 7th would be 21
    for (const r of results) if (r.status === "rejected") expect((r.reason as grpc.ServiceError).code).toBe(grpc.status.OUT_OF_RANGE);
    await until("18 servers", async () => (await ours()).length === 18, 30_000);
    await c.call("Refresh");
    expect(await targetSize(c, "pool")).toBe(18);
    const names = (await ours()).map((s) => s.name);
    expect(new Set(names).size).toBe(18);
  });
});

describe("process", () => {
  test("SIGTERM drains in-flight calls, then exits", async () => {
    const { s, c } = await serveWith();
    await c.call("Refresh");
    await sim.faults({ rules: [{ method: "GET", path: "/v1/servers", action: "hold", count: 1 }] });
    const inflight = c.call("Refresh", {}, { deadlineMs: 10_000 });
    await untilHeld(sim, 1, "GET /v1/servers"); // the Refresh is in flight
    s.proc.kill("SIGTERM");
    await until("the drain to start", async () => s.output().includes("draining in-flight calls"));
    expect(s.proc.exitCode).toBeNull(); // still waiting for the call
    expect(await sim.release()).toBe(1);
    await inflight; // answered, not cut off
    const code = await s.proc.exited;
    expect(code).toBe(0);
  });
});
