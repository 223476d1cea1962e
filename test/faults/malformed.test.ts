// Answers that are not the API's: a 200 HTML page (a captive portal, a misrouted balancer), a JSON
// object where the list of servers belongs, a list whose fields have the wrong types. The provider
// must not believe them: Refresh keeps the last good view (within maxViewAge, and past it fails as in
// an outage), IncreaseSize past max is refused, and the cloud never holds more than a group's max.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { details, expectCode, grpc, targetSize } from "../helpers/grpc";
import { startSim, until, type SimProc } from "../helpers/procs";
import { nodeGroup, providerConfig, providers } from "../helpers/provider";
import { CLUSTER_TAG, GROUP_TAG } from "../../src/types";
import { checkNoSecretsAtEnd } from "./lib";

checkNoSecretsAtEnd();

const CLUSTER = "ma";
const MAX = 3;
const MAX_AGE_S = 3;

let sim: SimProc;
const served = providers();
const serve = () =>
  served.start({
    apiUrl: sim.apiUrl,
    config: providerConfig(CLUSTER, { createVerifyDelay: "300ms", apiTimeout: "2s", maxViewAge: `${MAX_AGE_S}s` }, [nodeGroup({ max: MAX })]),
  });

beforeAll(async () => {
  sim = await startSim(["--boot-seconds", "0"]);
});
afterEach(async () => {
  await served.stopAll();
  await sim.reset();
});
afterAll(async () => {
  await sim?.stop();
});

const lists = async () => (await sim.counters())["GET /v1/servers"] ?? 0;
const posts = async () => (await sim.counters())["POST /v1/servers"] ?? 0;
/** How often each fault rule fired, in the order they were set. */
const fired = async () => ((await sim.control("/_sim/faults")) as { rules: { fired: number }[] }).rules.map((r) => r.fired);

/** A group at its max: three running servers of ours, listed by a first good Refresh. */
async function atMax() {
  await sim.seed({ count: MAX, name: `${CLUSTER}-pool-{i}`, tags: { [CLUSTER_TAG]: CLUSTER, [GROUP_TAG]: "pool" } });
  const p = await serve();
  await p.c.call("Refresh");
  expect(await targetSize(p.c, "pool")).toBe(MAX);
  return p;
}

/** After the fault: IncreaseSize past max is refused, nothing is created, the cloud holds max servers. */
async function stillAtMax(c: Awaited<ReturnType<typeof atMax>>["c"]) {
  expect(await targetSize(c, "pool")).toBe(MAX);
  const e = await expectCode(c.call("NodeGroupIncreaseSize", { id: "pool", delta: MAX }), grpc.status.OUT_OF_RANGE);
  expect(details(e)).toContain(`above its max size ${MAX} (target size now ${MAX})`);
  await sim.resetFaults();
  await c.call("Refresh");
  expect(await targetSize(c, "pool")).toBe(MAX);
  expect(await posts()).toBe(0);
  expect((await sim.ours(CLUSTER)).length).toBe(MAX);
}

describe("an answer that is not the API's is never an empty truth", () => {
  test("one list answered 200 with an HTML page: retried, the view stays, max holds", async () => {
    const { c } = await atMax();
    await sim.faults({ rules: [{ method: "GET", path: "/v1/servers", action: "error", status: 200, count: 1 }] });
    const before = await lists();
    await c.call("Refresh");
    expect(await targetSize(c, "pool")).toBe(MAX);
    expect(await fired()).toEqual([1]); // the page was served…
    expect((await lists()) - before).toBe(2); // …and the list was asked again
    await stillAtMax(c);
  });

  test("every try answered with the page: the last good view with its age, logged; past maxViewAge Refresh fails", async () => {
    const { s, c } = await atMax();
    await sim.faults({ rules: [{ method: "GET", path: "/v1/servers", action: "error", status: 200 }] });
    await c.call("Refresh");
    expect((await fired())[0]).toBeGreaterThanOrEqual(2);
    expect(s.output()).toMatch(/listing servers failed; serving the last good view.*not the API's: expected a list of servers, got text that is not JSON/);
    expect(s.output()).toMatch(/viewAgeSeconds/);
    expect(await targetSize(c, "pool")).toBe(MAX);
    // The page never counts as a good list: the view ages until Refresh fails as in an outage.
    const err = await until("Refresh to fail past maxViewAge", () => c.call("Refresh").then(() => false as const, (x: grpc.ServiceError) => x), (MAX_AGE_S + 10) * 1000, 250);
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expect(details(err)).toMatch(/the last good view is \d+s old \(limit 3s\)/);
    await stillAtMax(c);
  });

  test("a JSON object where the list belongs: not applied, and the view's age is not reset by it", async () => {
    const { c } = await atMax();
    await sim.faults({ rules: [{ method: "GET", path: "/v1/servers", action: "error", status: 200, body: { detail: "ok" } }] });
    await c.call("Refresh");
    expect((await fired())[0]).toBeGreaterThanOrEqual(1);
    expect(await targetSize(c, "pool")).toBe(MAX);
    const err = await until("Refresh to fail past maxViewAge", () => c.call("Refresh").then(() => false as const, (x: grpc.ServiceError) => x), (MAX_AGE_S + 10) * 1000, 250);
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    await stillAtMax(c);
  });

  test("a list whose fields have the wrong types: not applied", async () => {
    const { c } = await atMax();
    const wrong = [{ uuid: 5, name: `${CLUSTER}-pool-x`, status: "running", tags: { [CLUSTER_TAG]: CLUSTER, [GROUP_TAG]: "pool" }, created_at: 0 }];
    await sim.faults({ rules: [{ method: "GET", path: "/v1/servers", action: "error", status: 200, body: wrong }] });
    await c.call("Refresh");
    expect((await fired())[0]).toBeGreaterThanOrEqual(1);
    await stillAtMax(c);
  });
});
