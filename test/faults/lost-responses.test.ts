// Lost responses: the cloud did what we asked, but the answer never came back
// (a 502 after the fact, a dropped connection, a request held past our timeout).
// A create is then found again by its unique name and tags, never re-sent
// blindly; a delete whose answer was lost is not an error the next time.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { details, expectCode, grpc, instances as instancesOf, targetSize as targetSizeOf, type Client, type Instance } from "../helpers/grpc";
import { sleep, startSim, until, type SimProc, type SimServer } from "../helpers/procs";
import { providerConfig, providers, type Served } from "../helpers/provider";
import { CLUSTER_TAG, GROUP_TAG } from "../../src/types";
import { checkNoSecretsAtEnd } from "./lib";

checkNoSecretsAtEnd();

const CLUSTER = "lr";

let sim: SimProc;
const served = providers();
let serve: Served["s"];
let c: Client;

const instances = (): Promise<Instance[]> => instancesOf(c, "pool");
const targetSize = (): Promise<number> => targetSizeOf(c, "pool");
const ours = (): Promise<SimServer[]> => sim.ours(CLUSTER);
const count = async (key: string) => (await sim.counters())[key] ?? 0;

beforeAll(async () => {
  sim = await startSim(["--boot-seconds", "0"]);
  ({ s: serve, c } = await served.start({ apiUrl: sim.apiUrl, config: providerConfig(CLUSTER, { createConcurrency: 4, createVerifyDelay: "300ms", apiTimeout: "1s" }) }));
});

afterEach(async () => {
  await sim.resetFaults();
  // Back to an empty group, behind the provider's back, and a view that knows it.
  for (const s of await ours()) await sim.vanish(s.uuid);
  await until("an empty view", async () => {
    await c.call("Refresh");
    return (await instances()).length === 0;
  }, 10_000);
  await sim.resetCounters();
});

afterAll(async () => {
  await served.stopAll("SIGTERM");
  await sim?.stop();
});

/** Accepts `n` creates and returns the unique names the provider gave them (their pending ids). */
async function acceptCreates(n: number): Promise<string[]> {
  await c.call("Refresh");
  await c.call("NodeGroupIncreaseSize", { id: "pool", delta: n });
  const pending = (await instances()).map((i) => i.id).filter((id) => id.startsWith("cloudscale://pending/"));
  return pending.map((id) => id.slice("cloudscale://pending/".length)).sort();
}

/** Refresh until every instance has a server UUID (no creation in flight) and `n` are listed. */
async function settledInstances(n: number, timeoutMs = 15_000): Promise<Instance[]> {
  return until(`${n} created instances`, async () => {
    await c.call("Refresh");
    const inst = await instances();
    return inst.length === n && inst.every((i) => !i.id.includes("/pending/")) && inst;
  }, timeoutMs, 100);
}

function expectOursWithNames(servers: SimServer[], names: string[]) {
  expect(servers.map((s) => s.name).sort()).toEqual(names);
  for (const s of servers) expect(s.tags).toMatchObject({ [CLUSTER_TAG]: CLUSTER, [GROUP_TAG]: "pool" });
}

describe("a create whose response never arrives", () => {
  const kinds = [
    { label: "lost-response 502 (the API created it, a proxy answered 502)", rule: { action: "lost-response", mode: "502" } },
    { label: "lost-response drop (created, then the connection closed without an answer)", rule: { action: "lost-response", mode: "drop" } },
    { label: "timeout with commit (created, then held past our 1 s API timeout)", rule: { action: "timeout", commit: true, holdMs: 4000 } },
  ] as const;
  for (const k of kinds) {
    test(`${k.label}: found again by its name and tags, never re-sent`, async () => {
      await sim.faults({ rules: [{ method: "POST", path: "/v1/servers", count: 3, ...k.rule }] });
      const names = await acceptCreates(3);
      expect(names).toHaveLength(3);
      expect(await targetSize()).toBe(3);
      const inst = await settledInstances(3);
      const servers = await ours();
      expectOursWithNames(servers, names); // exactly the accepted names, each once
      expect(inst.map((i) => i.id).sort()).toEqual(servers.map((s) => `cloudscale://${s.uuid}`).sort());
      expect(inst.every((i) => !i.status.errorInfo)).toBe(true);
      expect(await count("POST /v1/servers")).toBe(3); // one POST per accepted creation: none re-sent
      expect(await targetSize()).toBe(3);
      await sleep(800); // past the verify delay again: still nothing re-sent, nothing doubled
      expect(await count("POST /v1/servers")).toBe(3);
      expect(await ours()).toHaveLength(3);
    });
  }

  test("lost while listing fails too: the create waits for the next good Refresh, which finds it; no re-send", async () => {
    // The POST's answer is lost, and the check that follows cannot list (all its attempts get 503).
    await sim.faults({
      rules: [
        { method: "POST", path: "/v1/servers", action: "lost-response", count: 1 },
        { method: "GET", path: "/v1/servers", action: "error", status: 503 },
      ],
    });
    await c.call("Refresh"); // the view is fresh (served from the last good list), so IncreaseSize is allowed
    await c.call("NodeGroupIncreaseSize", { id: "pool", delta: 1 });
    const [pendingId] = (await instances()).map((i) => i.id);
    expect(pendingId).toStartWith("cloudscale://pending/");
    await until("the provider gave up checking for now", async () => serve.output().includes("cannot check the unanswered create now"), 10_000);
    expect(await ours()).toHaveLength(1); // it does exist
    expect((await instances()).map((i) => i.id)).toEqual([pendingId!]); // still accounted for, still unresolved
    expect(await targetSize()).toBe(1);
    await sim.resetFaults();
    const [inst] = await settledInstances(1);
    const [server] = await ours();
    expect(pendingId).toBe(`cloudscale://pending/${server!.name}`);
    expect(inst!.id).toBe(`cloudscale://${server!.uuid}`);
    expect(await count("POST /v1/servers")).toBe(1);
  });

  for (const k of [
    { label: "held past our timeout", rule: { action: "timeout", holdMs: 3000 } },
    { label: "answered 503", rule: { action: "error", status: 503 } },
  ] as const) {
    test(`a create ${k.label} without taking effect is sent again, once, after checking`, async () => {
      await sim.faults({ rules: [{ method: "POST", path: "/v1/servers", count: 1, ...k.rule }] });
      const names = await acceptCreates(1);
      await settledInstances(1);
      expectOursWithNames(await ours(), names); // the same name: the second POST is the same creation
      expect(await count("POST /v1/servers")).toBe(2);
      expect(serve.output()).toContain("create got no clear answer; checking whether the server exists");
    });
  }

  test("a create that lands only after we gave up and re-sent it: the twin is deleted, one server remains", async () => {
    // The first POST reaches the API but is processed 2.5 s later (after our 1 s timeout and the
    // check that did not find it); the re-sent POST is processed at once. README: "If two servers
    // ever share one creation's name, the newer one is deleted."
    await sim.faults({ rules: [{ method: "POST", path: "/v1/servers", latencyMs: 2500, count: 1 }] });
    const names = await acceptCreates(1);
    await until("the late create landed", async () => (await ours()).length === 2 || (await count("DELETE /v1/servers/:uuid")) > 0, 10_000);
    const [inst] = await until("one server left", async () => {
      await c.call("Refresh");
      const s = await ours();
      const i = await instances();
      return s.length === 1 && i.length === 1 && !i[0]!.id.includes("/pending/") && i;
    }, 10_000, 100);
    const servers = await ours();
    expectOursWithNames(servers, names);
    expect(inst!.id).toBe(`cloudscale://${servers[0]!.uuid}`);
    expect(await count("POST /v1/servers")).toBe(2);
    expect(await count("DELETE /v1/servers/:uuid")).toBe(1);
    expect(await targetSize()).toBe(1);
  });
});

describe("a delete whose response is lost", () => {
  async function twoServers() {
    await acceptCreates(2);
    await settledInstances(2);
    return ours();
  }
  const node = (s: SimServer) => ({ providerID: `cloudscale://${s.uuid}`, name: s.name });

  test("lost once: the client's own retry gets 404, which counts as deleted; no error at all", async () => {
    const [a, b] = await twoServers();
    await sim.resetCounters();
    await sim.faults({ rules: [{ method: "DELETE", path: "/v1/servers/:uuid", action: "lost-response", mode: "drop", count: 1 }] });
    await c.call("NodeGroupDeleteNodes", { id: "pool", nodes: [node(a!)] });
    expect(await count("DELETE /v1/servers/:uuid")).toBe(2);
    expect((await ours()).map((s) => s.uuid)).toEqual([b!.uuid]);
    expect(await targetSize()).toBe(1);
    await c.call("Refresh");
    expect(await targetSize()).toBe(1);
  });

  for (const rule of [
    { action: "lost-response", mode: "drop" },
    { action: "lost-response", mode: "502" },
    { action: "timeout", commit: true, holdMs: 4000 },
  ] as const) {
    test(`every answer lost (${rule.action}${"mode" in rule ? ` ${rule.mode}` : " with commit"}): the call fails clearly, the next try succeeds, target size stays right`, async () => {
      const [a, b] = await twoServers();
      await sim.faults({ rules: [{ method: "DELETE", path: "/v1/servers/:uuid", ...rule }] });
      const e = await expectCode(c.call("NodeGroupDeleteNodes", { id: "pool", nodes: [node(a!)] }, { deadlineMs: 20_000 }), grpc.status.UNAVAILABLE);
      expect(details(e)).toContain(a!.uuid);
      expect((await ours()).map((s) => s.uuid)).toEqual([b!.uuid]); // it did happen
      expect(await targetSize()).toBe(1); // and is not counted while unresolved
      await sim.resetFaults();
      await c.call("NodeGroupDeleteNodes", { id: "pool", nodes: [node(a!)] }); // CA tries again: no error
      await c.call("Refresh");
      expect(await targetSize()).toBe(1);
      expect((await instances()).map((i) => i.id)).toEqual([`cloudscale://${b!.uuid}`]);
    });
  }

  test("an unanswered delete that did not take effect: the next Refresh counts the server again, the next DeleteNodes deletes it", async () => {
    const [a, b] = await twoServers();
    await sim.faults({ rules: [{ method: "DELETE", path: "/v1/servers/:uuid", action: "drop" }] });
    await expectCode(c.call("NodeGroupDeleteNodes", { id: "pool", nodes: [node(a!)] }, { deadlineMs: 20_000 }), grpc.status.UNAVAILABLE);
    expect(await ours()).toHaveLength(2); // nothing happened
    await c.call("Refresh");
    expect(await targetSize()).toBe(2); // the cloud says it is still there
    expect((await instances()).find((i) => i.id === `cloudscale://${a!.uuid}`)?.status.instanceState).toBe("instanceRunning");
    await sim.resetFaults();
    await c.call("NodeGroupDeleteNodes", { id: "pool", nodes: [node(a!)] });
    expect((await ours()).map((s) => s.uuid)).toEqual([b!.uuid]);
    await c.call("Refresh");
    expect(await targetSize()).toBe(1);
  });
});
