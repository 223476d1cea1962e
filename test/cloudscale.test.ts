// The cloudscale client against the simulator over real HTTP: what it retries
// (503 during maintenance, on lists and deletes, honouring Retry-After) and how it
// reads the API's refusal to delete a server that is still being created.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { CloudscaleError, createClient } from "../src/cloudscale";
import { startSimulator, type Simulator } from "../src/sim/server";
import { CLUSTER_TAG, GROUP_TAG } from "../src/types";

let sim: Simulator;
beforeAll(async () => {
  sim = await startSimulator({ listen: "127.0.0.1:0", bootSeconds: 5 });
});
afterAll(async () => {
  await sim?.stop();
});
beforeEach(async () => {
  await fetch(`${sim.origin}/_sim/reset`, { method: "POST" });
});

const client = () => createClient({ url: sim.apiUrl, token: "t", attempts: 4, maxBackoffMs: 50 });
const tags = { [CLUSTER_TAG]: "c", [GROUP_TAG]: "g" };
const control = (path: string, body: unknown) => fetch(`${sim.origin}${path}`, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" } }).then((r) => r.json());
async function seed(status: "running" | "changing") {
  const { uuids } = (await control("/_sim/servers", { name: "c-g-1", tags, status })) as { uuids: string[] };
  return uuids[0]!;
}

describe("503 during maintenance", () => {
  test("a list is retried until it is answered", async () => {
    await seed("running");
    sim.faults.failNext("GET", "/v1/servers", 503, 2);
    expect((await client().listServers({ [CLUSTER_TAG]: "c" })).map((s) => s.name)).toEqual(["c-g-1"]);
    expect(sim.count("GET /v1/servers")).toBe(3);
  });

  test("a delete is retried until it is answered", async () => {
    const uuid = await seed("running");
    sim.faults.failNext("DELETE", "/v1/servers/:uuid", 503, 2);
    expect(await client().deleteServer(uuid)).toBe("deleted");
    expect(sim.count("DELETE /v1/servers/:uuid")).toBe(3);
  });

  test("Retry-After on a 503 is honoured", async () => {
    sim.faults.failNext("GET", "/v1/servers", 503, 1, 1);
    const t0 = performance.now();
    await createClient({ url: sim.apiUrl, token: "t" }).listServers({}); // default backoff cap: 5 s
    expect(performance.now() - t0).toBeGreaterThanOrEqual(950);
  });

  test("a maintenance longer than the attempts: an error that says the outcome is unknown", async () => {
    sim.faults.failRate("GET", "/v1/servers", 503, 1);
    const e = await client().listServers({}).catch((x) => x);
    expect(e).toBeInstanceOf(CloudscaleError);
    expect({ kind: e.kind, ambiguous: e.ambiguous, calls: sim.count("GET /v1/servers") }).toEqual({ kind: "server", ambiguous: true, calls: 4 });
  });
});

describe("DELETE of a server still being created", () => {
  test("the API's 400 reads as busy: nothing happened, not retried here, not an ambiguous failure", async () => {
    const uuid = await seed("changing");
    const e = await client().deleteServer(uuid).catch((x) => x);
    expect({ kind: e.kind, status: e.status, ambiguous: e.ambiguous, retryable: e.retryable }).toEqual({ kind: "busy", status: 400, ambiguous: false, retryable: false });
    expect(e.body).toEqual({ detail: expect.stringContaining("changing") }); // the API's answer as it came (check compares its shape)
    expect(sim.count("DELETE /v1/servers/:uuid")).toBe(1);
    await control("/_sim/clock", { advanceSeconds: 6 });
    expect(await client().deleteServer(uuid)).toBe("deleted");
  });
});

describe("error answers", () => {
  test("a proxy's HTML page becomes one line of the message; the body is kept as it came", async () => {
    await control("/_sim/faults", { rules: [{ method: "GET", path: "/v1/servers", action: "error", status: 502 }] });
    const e = await createClient({ url: sim.apiUrl, token: "t", attempts: 1 }).listServers({}).catch((x) => x);
    expect(e.message).toMatch(/^listing servers: HTTP 502: <html> <head><title>502 Bad Gateway<\/title><\/head> <body>/);
    expect(e.message).not.toContain("\n");
    expect(e.body).toContain("\r\n");
  });
});
