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

describe("answers that are not the API's are errors, never data", () => {
  const rule = (method: string, path: string, extra: object) => control("/_sim/faults", { rules: [{ method, path, action: "error", status: 200, ...extra }] });

  test("a 200 HTML page where the list belongs: malformed, retried, and the next good answer is the result", async () => {
    await seed("running");
    await rule("GET", "/v1/servers", { count: 1 });
    expect((await client().listServers({ [CLUSTER_TAG]: "c" })).map((s) => s.name)).toEqual(["c-g-1"]);
    expect(sim.count("GET /v1/servers")).toBe(2);
  });

  test("a page on every try: one error that says what came instead of what, ambiguous like a 5xx", async () => {
    await rule("GET", "/v1/servers", {});
    const e = await client().listServers({}).catch((x) => x);
    expect(e).toBeInstanceOf(CloudscaleError);
    expect({ kind: e.kind, status: e.status, ambiguous: e.ambiguous, calls: sim.count("GET /v1/servers") }).toEqual({ kind: "malformed", status: 200, ambiguous: true, calls: 4 });
    expect(e.message).toMatch(/^listing servers: the HTTP 200 answer is not the API's: expected a list of servers, got text that is not JSON \("<!DOCTYPE html>/);
  });

  test("a JSON object where the list belongs, and a list whose fields have the wrong types", async () => {
    await rule("GET", "/v1/servers", { body: { detail: "ok" } });
    const object = await createClient({ url: sim.apiUrl, token: "t", attempts: 1 }).listServers({}).catch((x) => x);
    expect(object.message).toContain("expected a list of servers, got a JSON object");
    await rule("GET", "/v1/servers", { body: [{ uuid: 5, name: "c-g-1", status: "running", tags: { a: 1 } }] });
    const fields = await createClient({ url: sim.apiUrl, token: "t", attempts: 1 }).listServers({}).catch((x) => x);
    expect(fields.kind).toBe("malformed");
    expect(fields.message).toMatch(/0\.uuid: .*; 0\.flavor: .*; 0\.zone: .* \(and \d+ more\)/);
  });

  test("flavors, images, regions and server groups are parsed too; a status the API adds later is not a wrong type", async () => {
    for (const [path, call] of [
      ["/v1/flavors", (c: ReturnType<typeof client>) => c.listFlavors()],
      ["/v1/images", (c: ReturnType<typeof client>) => c.listImages()],
      ["/v1/custom-images", (c: ReturnType<typeof client>) => c.listCustomImages()],
      ["/v1/regions", (c: ReturnType<typeof client>) => c.listRegions()],
      ["/v1/server-groups", (c: ReturnType<typeof client>) => c.listServerGroups()],
    ] as const) {
      await rule("GET", path, { body: [{ slug: 7 }] });
      const e = await call(createClient({ url: sim.apiUrl, token: "t", attempts: 1 })).then(() => null, (x) => x);
      expect({ path, kind: e?.kind }).toEqual({ path, kind: "malformed" });
    }
    await control("/_sim/reset-faults", {});
    const uuid = await seed("running");
    await rule("GET", "/v1/servers/:uuid", { body: { ...((await (await fetch(`${sim.origin}/_sim/servers/${uuid}`)).json()) as object), status: "migrating" } });
    expect((await client().getServer(uuid))?.status).toBe("migrating");
  });

  test("a create answered 201-then-page is ambiguous and not sent again; a DELETE answered with a page is retried", async () => {
    await control("/_sim/faults", { rules: [{ method: "POST", path: "/v1/servers", action: "error", status: 200, commit: true, count: 1 }] });
    const e = await client().createServer({ name: "c-g-2", flavor: "flex-4-1", image: "debian-13", volume_size_gb: 10, ssh_keys: [], tags }).catch((x) => x);
    expect({ kind: e.kind, ambiguous: e.ambiguous, posts: sim.count("POST /v1/servers") }).toEqual({ kind: "malformed", ambiguous: true, posts: 1 });
    const uuid = await seed("running");
    await rule("DELETE", "/v1/servers/:uuid", { count: 1 });
    expect(await client().deleteServer(uuid)).toBe("deleted");
    expect(sim.count("DELETE /v1/servers/:uuid")).toBe(2);
  });
});
