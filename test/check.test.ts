// `check --live` of the compiled binary against the simulator: the dry run costs
// nothing (no write call reaches the API), the full run creates, waits, lists and
// deletes one server per zone, and every fault path (a failed create, a lost
// answer, a server stuck in changing, deletes refused while changing, Ctrl-C)
// ends with nothing left behind.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { TEST_TOKEN, runBin, spawnUntil, startSim, until, writeConfig, type SimProc } from "./helpers/procs";
import { CLUSTER_TAG, GROUP_TAG } from "../src/types";

let sim: SimProc;
beforeAll(async () => {
  sim = await startSim(["--boot-seconds", "0"]);
});
afterEach(async () => {
  await sim.reset();
});
afterAll(async () => {
  await sim?.stop();
});

const TWO_ZONES = writeConfig(`clusterName: ck
nodeGroups:
  - {name: pool, flavor: flex-8-2, image: debian-13, zone: lpg1, min: 0, max: 5}
  - {name: gpu, flavor: flex-16-4, image: ubuntu-24.04, zone: rma1, min: 0, max: 2, volumeSizeGb: 20}
`);
const ONE_ZONE = writeConfig(`clusterName: ck
createVerifyDelay: 300ms
nodeGroups:
  - {name: pool, flavor: flex-8-2, image: debian-13, zone: lpg1, min: 0, max: 5}
`);

const env = () => ({ CLOUDSCALE_API_TOKEN: TEST_TOKEN, CLOUDSCALE_API_URL: sim.apiUrl });
const check = (config: string, ...flags: string[]) => runBin(["check", "--config", config, "--live", "--poll", "100ms", ...flags], env());
const writes = (counters: Record<string, number>) => Object.entries(counters).filter(([k]) => !k.startsWith("GET "));
/** Every server in the simulator (not only ours): the check must leave none. */
const everything = async () => (await sim.servers()).map((s) => `${s.name} ${s.status}`);
const step = (out: string, zoneLine: RegExp) => out.split("\n").slice(out.split("\n").findIndex((l) => zoneLine.test(l)));

describe("check --live without --yes", () => {
  test("explains what it would do and costs nothing: no write call reaches the API", async () => {
    await sim.resetCounters();
    const r = await check(TWO_ZONES);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('check --live without --yes: nothing is created. With --yes, for cluster "ck"');
    expect(r.stdout).toContain("lpg1: create one server ck-check-<8 random> of flex-4-1 (the smallest of 13 flavors offered in lpg1: 1 vCPU, 4 GiB), image debian-13, 10 GiB root volume");
    expect(r.stdout).toContain("rma1: create one server ck-check-<8 random> of flex-4-1 (the smallest of 13 flavors offered in rma1: 1 vCPU, 4 GiB), image ubuntu-24.04, 20 GiB root volume");
    expect(r.stdout).toContain(`tags ${CLUSTER_TAG}=ck, ${GROUP_TAG}=check`);
    expect(r.stdout).toContain("Pass --yes to run it.");
    const counters = await sim.counters();
    expect(writes(counters)).toEqual([]);
    expect(counters["GET /v1/flavors"]).toBe(1);
    expect(await everything()).toEqual([]);
  });

  test("without a token it still explains, and says what is missing", async () => {
    await sim.resetCounters();
    const r = await runBin(["check", "--config", ONE_ZONE, "--live"], { CLOUDSCALE_API_URL: sim.apiUrl });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("of the smallest flavor offered there");
    expect(r.stdout).toContain("No API token: set CLOUDSCALE_API_TOKEN or pass --token-file to run it.");
    expect(await sim.counters()).toEqual({});
  });

  test("--live is required, and --help explains the command", async () => {
    const r = await runBin(["check", "--config", ONE_ZONE], env());
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("check talks to the real API: pass --live");
    const h = await runBin(["check", "--help"]);
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/^Usage: autoscaler-cloudscale check --config FILE --live \[--yes\]/);
    for (const flag of ["--yes", "--image", "--wait-running", "--wait-delete", "--poll", "--token-file"]) expect(h.stdout).toContain(flag);
  });
});

describe("check --live --yes against the simulator", () => {
  test("each zone: create, running, listed by the provider's list, delete, gone; each step timed; nothing left", async () => {
    await sim.control("/_sim/config", { bootSeconds: 1 });
    await sim.resetCounters();
    const r = await check(TWO_ZONES, "--yes");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    for (const [zone, image, volume] of [["lpg1", "debian-13", 10], ["rma1", "ubuntu-24.04", 20]] as const) {
      const lines = step(r.stdout, new RegExp(`^zone ${zone}: `));
      expect(lines[0]).toBe(`zone ${zone}: flex-4-1 (smallest of 13 offered there), image ${image}, ${volume} GiB root volume`);
      expect(lines[1]).toMatch(/^  create\s+\d+\.\ds  ck-check-[a-z0-9]{8} \(uuid [0-9a-f-]{36}\), status changing$/);
      expect(lines[2]).toMatch(/^  running\s+\d+\.\ds  changing → running$/);
      expect(lines[3]).toMatch(/^  listed\s+\d+\.\ds  found by the provider's list \(GET \/v1\/servers\?tag:autoscaler-cloudscale-cluster=ck: 1 server\(s\)\)$/);
      expect(lines[4]).toMatch(/^  delete\s+\d+\.\ds  DELETE answered 204$/);
      expect(lines[5]).toMatch(/^  gone\s+\d+\.\ds  GET answers 404$/);
    }
    expect(r.stdout).toContain("every answer was what the provider expects");
    expect(r.stdout).toMatch(/\ncheck passed in \d+\.\ds; nothing left behind\n$/);
    const counters = await sim.counters();
    expect(counters["POST /v1/servers"]).toBe(2);
    expect(counters["DELETE /v1/servers/:uuid"]).toBe(2);
    expect(await everything()).toEqual([]);
  });

  test("a create that fails: what the provider would tell CA; the other zone still runs; nothing left", async () => {
    await sim.control("/_sim/quota", { servers: 0 });
    const r = await check(TWO_ZONES, "--yes");
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/\n  create\s+\d+\.\ds  FAILED: creating server ck-check-[a-z0-9]{8}: HTTP 400: Quota exceeded: .*; the provider would show CA QUOTA_EXCEEDED \(OutOfResources/);
    expect(r.stdout.match(/FAILED: creating server/g)).toHaveLength(2); // both zones were tried
    expect(r.stdout).toMatch(/\ncheck FAILED in \d+\.\ds; nothing left behind\n$/);
    expect(await everything()).toEqual([]);
  });

  test("a refusal in another shape than the API's is reported as a difference", async () => {
    // Django REST framework's default field errors are lists; cloudscale's API answers plain strings.
    await sim.faults({ rules: [{ method: "POST", path: "/v1/servers", action: "error", status: 400, body: { name: ["This field may not be blank."] }, count: 1 }] });
    const r = await check(TWO_ZONES, "--yes");
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/FAILED: creating server \S+: HTTP 400: name: This field may not be blank\.; the provider would show CA CREATE_FAILED \(class Other\)/);
    expect(r.stdout).toContain('answers that differ from what the provider expects:\n  - POST /v1/servers answered HTTP 400 with {"name":["This field may not be blank."]}: name not a plain string');
    expect(r.stdout).toMatch(/\n  gone\s+\d+\.\ds  GET answers 404\n/); // the other zone ran through
    expect(await everything()).toEqual([]);
  });

  test("a create whose answer is lost: found by its name, as the provider does, and deleted", async () => {
    await sim.faults({ rules: [{ method: "POST", path: "/v1/servers", action: "lost-response", count: 1 }] });
    const r = await check(ONE_ZONE, "--yes");
    expect(r.stdout).toMatch(/\n  create\s+\d+\.\ds  creating server ck-check-\S+: HTTP 502.*, but the server exists \(found by its name: uuid [0-9a-f-]{36}\); the provider does the same\n/);
    expect(r.stdout).toMatch(/\n  gone\s+\d+\.\ds  GET answers 404\n/);
    expect(r.stdout).toContain("every answer was what the provider expects"); // a proxy's 502 page is read by its status only
    expect(r.code).toBe(0);
    expect((await sim.counters())["POST /v1/servers"]).toBe(1); // never sent twice
    expect(await everything()).toEqual([]);
  });

  test("a server that stays changing: a bounded wait, then it is deleted anyway", async () => {
    await sim.faults({ bootOutcome: "changing", rejectDeleteWhileChanging: false });
    const r = await check(ONE_ZONE, "--yes", "--wait-running", "1s");
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/\n  running\s+\d+\.\ds  FAILED: changing: not running within 1s; deleting it anyway\n/);
    expect(r.stdout).toMatch(/\n  listed\s+\d+\.\ds  found by the provider's list/);
    expect(r.stdout).toMatch(/\n  delete\s+\d+\.\ds  DELETE answered 204\n/);
    expect(r.stdout).toMatch(/nothing left behind\n$/);
    expect(await everything()).toEqual([]);
  });

  test("a delete answered 400 while the server is changing is tried again until it takes", async () => {
    await sim.control("/_sim/config", { bootSeconds: 3 });
    const r = await check(ONE_ZONE, "--yes", "--wait-running", "200ms");
    expect(r.stdout).toMatch(/\n  delete\s+\d+\.\ds  DELETE answered 204 after \d+ refusal\(s\) while the server was changing \(HTTP 400, which the provider retries\)\n/);
    expect(r.stdout).toMatch(/\n  gone\s+\d+\.\ds  GET answers 404\n/);
    expect(r.stdout).toMatch(/nothing left behind\n$/);
    expect(r.stdout).not.toContain("DELETE /v1/servers/{uuid} answered HTTP 400 with"); // its shape is the API's: {"detail": "…"}
    expect(r.code).toBe(1); // it did not run within 200 ms
    expect(await everything()).toEqual([]);
  });

  test("a delete refused for good: bounded, the server is named; the next check deletes it", async () => {
    await sim.faults({ bootOutcome: "changing" });
    const r = await check(ONE_ZONE, "--yes", "--wait-running", "200ms", "--wait-delete", "1s");
    expect(r.code).toBe(1);
    const [, uuid] = /\n  delete\s+\d+\.\ds  FAILED: deleting server ([0-9a-f-]{36}): HTTP 400: .*; server \1 is left behind: delete it by hand\n/.exec(r.stdout) ?? [];
    expect(uuid).toBeDefined();
    expect(r.stdout).toMatch(new RegExp(`LEFT BEHIND: ck-check-[a-z0-9]{8} \\(${uuid}\\) \\(delete by hand\\)\\n$`));
    // It boots after all; the next check finds what the earlier one left and deletes it too.
    await sim.control(`/_sim/servers/${uuid}/status`, { status: "changing", then: "running", afterSeconds: 0 });
    await sim.faults({ bootOutcome: "running" });
    const again = await check(ONE_ZONE, "--yes");
    expect(again.stdout).toMatch(/1 server\(s\) left by an earlier check: deleted at the end \(ck-check-/);
    expect(again.stdout).toMatch(/\ncleanup: 1 server\(s\)\n  cleanup\s+\d+\.\ds  DELETE answered 204\n/);
    expect(again.code).toBe(0);
    expect(await everything()).toEqual([]);
  });
});

describe("Ctrl-C during check --yes", () => {
  test("while waiting for the server to run: it is deleted (once it can be), exit 130", async () => {
    await sim.control("/_sim/config", { bootSeconds: 3 });
    const p = await spawnUntil(["check", "--config", ONE_ZONE, "--live", "--yes", "--poll", "100ms"], /^  create .*status changing/, env());
    // What it created is a server as the provider tags its own, of the smallest flavor, without user-data.
    const [s] = await sim.servers();
    expect(s).toMatchObject({ status: "changing", tags: { [CLUSTER_TAG]: "ck", [GROUP_TAG]: "check" }, flavor: { slug: "flex-4-1" }, zone: { slug: "lpg1" } });
    expect(s!.user_data ?? null).toBeNull();
    p.proc.kill("SIGINT");
    expect(await p.proc.exited).toBe(130);
    const out = p.output();
    expect(out).toContain("SIGINT: stopping; deleting what the check created");
    expect(out).toMatch(/\ninterrupted: deleting what the check created\ncleanup: 1 server\(s\)\n  cleanup\s+\d+\.\ds  DELETE answered 204/);
    expect(out).toMatch(/check interrupted in \d+\.\ds; nothing left behind\n/);
    expect(await everything()).toEqual([]);
  });

  test("while the create is on its way: its answer is awaited, then the server is deleted", async () => {
    await sim.faults({ rules: [{ method: "POST", path: "/v1/servers", latencyMs: 1500 }] });
    const p = await spawnUntil(["check", "--config", ONE_ZONE, "--live", "--yes", "--poll", "100ms"], /^zone lpg1: /, env());
    p.proc.kill("SIGINT");
    expect(await p.proc.exited).toBe(130);
    expect(p.output()).toMatch(/nothing left behind\n/);
    await until("the simulator is empty", async () => (await everything()).length === 0, 5000);
  });
});
