// The operator's view through the compiled binary: `status` against a running
// provider's /status (a table, --json, clear errors when it cannot be reached),
// and creations that never wait silently, tried as a new user would: serve,
// IncreaseSize at once, never a Refresh.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { nodeGroup, providerConfig, providers } from "./helpers/provider";
import { closedPort, runBin, startSim, until, type SimProc } from "./helpers/procs";
import type { StatusReport } from "../src/status";

let sim: SimProc;
const served = providers();

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

const GROUPS = [nodeGroup({ name: "pool", min: 1, max: 6 }), "{name: big, flavor: flex-16-4, image: debian-13, zone: rma1, min: 0, max: 2}"];
const start = (cluster: string, settings: Record<string, string> = {}) => served.start({ apiUrl: sim.apiUrl, config: providerConfig(cluster, settings, GROUPS), health: true });
const status = (port: number, ...flags: string[]) => runBin(["status", "--health", `127.0.0.1:${port}`, ...flags]);
const statusJson = async (port: number): Promise<StatusReport> => (await fetch(`http://127.0.0.1:${port}/status`)).json() as Promise<StatusReport>;

/** The table's rows by group name, each a map of column -> cell (the last column, LAST ERROR, may hold spaces). */
function table(text: string): Map<string, Record<string, string>> {
  const lines = text.split("\n");
  const h = lines.findIndex((l) => l.startsWith("GROUP "));
  expect(h).toBe(1); // a header line, then the table
  const header = lines[h]!;
  const names = header.split(/\s{2,}/);
  const starts = names.map((n) => header.indexOf(n));
  const rows = new Map<string, Record<string, string>>();
  for (const line of lines.slice(h + 1)) {
    if (!line || !/^\S+\s{2,}/.test(line) || line.startsWith("creations held") || line.startsWith("last failed list")) continue;
    const row: Record<string, string> = {};
    names.forEach((n, i) => (row[n] = line.slice(starts[i], i + 1 < names.length ? starts[i + 1] : undefined).trim()));
    rows.set(row.GROUP!, row);
  }
  return rows;
}

describe("a new user: serve, IncreaseSize at once, never a Refresh", () => {
  test("the servers appear shortly after the startup grace; the hold is logged once, and its end", async () => {
    const { s, c, healthPort } = await start("nu", { startupGrace: "2s" });
    await c.call("NodeGroupIncreaseSize", { id: "pool", delta: 3 });
    // CA would call Refresh every 10 s; this user never does.
    const servers = await until("3 servers in the cloud", async () => {
      const list = await sim.ours("nu", "pool");
      return list.length === 3 && list;
    });
    expect(servers.every((x) => x.name.startsWith("nu-pool-"))).toBe(true);
    await until("the release logged", async () => /held creations released/.test(s.output()));
    const out = s.output();
    expect(out.match(/creations are held: /g)).toHaveLength(1);
    expect(out).toMatch(/INFO  creations are held: requests a previous instance sent may still land until \S+ \(startupGrace 2s after the start\).* creates=3 reason=startup-grace groups="pool=3"/);
    expect(out.match(/held creations released: they go out now creates=3/g)).toHaveLength(1);
    const after = await statusJson(healthPort!);
    expect(after.hold).toBeNull();
    expect(after.settled).toBe(true);
    expect(after.groups[0]).toMatchObject({ name: "pool", targetSize: 3, pending: 0, held: 0 });
    const metrics = await (await fetch(`http://127.0.0.1:${healthPort}/metrics`)).text();
    expect(metrics).not.toContain('method="Refresh"');
  });
});

describe("status against a running provider", () => {
  test("one line per group: flavor, zone, min/target/max, servers by state, pending, held, view age, last error with its time", async () => {
    const { c, healthPort } = await start("st");
    await c.call("Refresh");
    await c.call("NodeGroupIncreaseSize", { id: "pool", delta: 2 });
    await until("2 servers", async () => (await sim.ours("st", "pool")).length === 2);
    await c.call("Refresh");
    const before = Date.now();
    await sim.control("/_sim/quota", { servers: 0 });
    await c.call("NodeGroupIncreaseSize", { id: "big", delta: 1 });
    await until("the failed create shows", async () => (await statusJson(healthPort!)).groups[1]!.servers.failed === 1);

    const r = await status(healthPort!);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    const lines = r.stdout.split("\n");
    expect(lines[0]).toMatch(/^autoscaler-cloudscale \S+ \(commit \S+\) · cluster st · ready: ok \(view \d+s old\) · max view age 2m$/);
    expect(lines[1]).toMatch(/^GROUP\s+FLAVOR\s+ZONE\s+MIN\/TARGET\/MAX\s+RUNNING\s+CREATING\s+DELETING\s+FAILED\s+PENDING\s+HELD\s+VIEW AGE\s+LAST ERROR$/);
    const rows = table(r.stdout);
    expect([...rows.keys()]).toEqual(["pool", "big"]);
    const { "LAST ERROR": poolError, "VIEW AGE": poolAge, ...pool } = rows.get("pool")!;
    expect(pool).toEqual({ GROUP: "pool", FLAVOR: "flex-4-2", ZONE: "lpg1", "MIN/TARGET/MAX": "1/2/6", RUNNING: "2", CREATING: "0", DELETING: "0", FAILED: "0", PENDING: "0", HELD: "0" });
    expect(poolError).toBe("-");
    expect(poolAge).toMatch(/^\d+s$/);
    const { "LAST ERROR": bigError, ...big } = rows.get("big")!;
    expect(big).toMatchObject({ FLAVOR: "flex-16-4", ZONE: "rma1", "MIN/TARGET/MAX": "0/1/2", RUNNING: "0", CREATING: "0", FAILED: "1", PENDING: "0", HELD: "0" });
    const [, at] = /^(\S+Z) \(\d+s ago\) QUOTA_EXCEEDED: .*Quota exceeded/.exec(bigError!) ?? [];
    expect(at).toBeDefined();
    expect(Date.parse(at!)).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
    expect(Date.parse(at!)).toBeLessThanOrEqual(Date.now());

    // --json prints the raw answer: the same document as GET /status.
    const j = await status(healthPort!, "--json");
    expect(j.code).toBe(0);
    const raw = JSON.parse(j.stdout);
    const direct = await statusJson(healthPort!);
    expect(raw.groups).toEqual(direct.groups);
    expect(Object.keys(raw).sort()).toEqual(Object.keys(direct).sort());
    expect(raw.groups[1].lastError).toMatchObject({ code: "QUOTA_EXCEEDED", message: expect.stringContaining("Quota exceeded") });
    expect(raw.groups[1].lastError.at.replace(/\.\d+Z$/, "Z")).toBe(at!); // the table shows it to the second
    // A URL works as well as HOST:PORT, and so does the environment's health address.
    expect((await runBin(["status", "--health", `http://127.0.0.1:${healthPort}`])).stdout).toContain("QUOTA_EXCEEDED");
    expect((await runBin(["status"], { AUTOSCALER_CLOUDSCALE_HEALTH_LISTEN: `0.0.0.0:${healthPort}` })).stdout).toContain("QUOTA_EXCEEDED");
  });

  test("held creations and why; a failed list below the table", async () => {
    const { c, healthPort } = await start("sh", { startupGrace: "10m" });
    await c.call("NodeGroupIncreaseSize", { id: "pool", delta: 2 });
    await sim.faults({ rules: [{ method: "GET", path: "/v1/servers", action: "error", status: 503, count: 4 }] });
    await c.call("Refresh"); // the list fails; the view is still fresh, so CA is answered from it
    await until("the failed list is recorded", async () => (await statusJson(healthPort!)).lastListError !== null);
    const r = await status(healthPort!);
    expect(r.code).toBe(0);
    expect(table(r.stdout).get("pool")).toMatchObject({ "MIN/TARGET/MAX": "1/2/6", CREATING: "2", PENDING: "2", HELD: "2" });
    expect(r.stdout).toMatch(/\ncreations held since \S+Z \(\d+s ago\): requests a previous instance sent may still land until \S+ \(startupGrace 600s after the start\)/);
    expect(r.stdout).toMatch(/\nlast failed list: \S+Z \(\d+s ago\): listing servers: HTTP 503/);
    expect(await sim.ours("sh")).toHaveLength(0);
  });

  test("clear errors when the provider cannot be reached", async () => {
    const port = closedPort();
    const refused = await runBin(["status", "--health", `127.0.0.1:${port}`]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe("");
    expect(refused.stderr).toBe(
      `autoscaler-cloudscale status: cannot reach the provider at http://127.0.0.1:${port}/status: connection refused; is \`autoscaler-cloudscale serve\` running with --health-listen there? Point --health at its health listener\n`,
    );
    const notOurs = await runBin(["status", "--health", sim.origin]); // something else answers there
    expect(notOurs.code).toBe(1);
    expect(notOurs.stderr).toContain(`${sim.origin}/status answered 404: not the health listener of autoscaler-cloudscale`);
    const bad = await runBin(["status", "--health", "nowhere"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--health must be a URL or HOST:PORT (got "nowhere")');
  });
});
