// /metrics on the health listener of the compiled binary: the exposition is
// well-formed Prometheus text, and the numbers move with real actions driven
// through a gRPC client that is not ours (grpc-js) against the simulator.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { connect, expectCode, grpc, type Client } from "./helpers/grpc";
import { parseExposition, sampleValue, scrape, type Family } from "./helpers/metrics";
import { BIN, runBin, until, startServe, startSim, writeConfig, type ServeProc, type SimProc } from "./helpers/procs";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const config = (extra = "") => `clusterName: mt
createVerifyDelay: 300ms
${extra.includes("startupGrace") ? "" : "startupGrace: 0s"}
${extra}
nodeGroups:
  - {name: pool, flavor: flex-4-2, image: debian-13, zone: lpg1, min: 1, max: 6}
  - {name: big, flavor: flex-16-4, image: debian-13, zone: lpg1, min: 0, max: 2}
`;

let sim: SimProc;
const started: ServeProc[] = [];
const clients: Client[] = [];

/** A provider with --health-listen on a free port; returns its gRPC client and health port. */
async function serveWith(extraConfig = "") {
  const s = await startServe({ configPath: writeConfig(config(extraConfig)), apiUrl: sim.apiUrl, extra: ["--health-listen", "127.0.0.1:0"] });
  started.push(s);
  const health = Number(/health=127\.0\.0\.1:(\d+)/.exec(s.output())?.[1]);
  if (!health) throw new Error(`no health= in the serving line:\n${s.output()}`);
  const c = connect(s.port);
  clients.push(c);
  return { s, c, health };
}

const ours = () => sim.ours("mt");
const get = async (port: number) => (await scrape(port)).families;
/** A sample's value, 0 when the series does not exist yet (counters with labels appear on first use). */
const v = (f: Map<string, Family>, name: string, labels: Record<string, string> = {}) => sampleValue(f, name, labels) ?? 0;
const P = "autoscaler_cloudscale_";

beforeAll(async () => {
  sim = await startSim(["--boot-seconds", "0"]);
});

afterEach(async () => {
  await sim.control("/_sim/reset-faults", {});
  await sim.control("/_sim/quota", { servers: null });
  for (const c of clients.splice(0)) c.close();
  for (const s of started.splice(0)) await s.stop("SIGKILL");
  for (const s of await ours()) await sim.control(`/_sim/servers/${s.uuid}`, undefined, "DELETE");
});

afterAll(async () => {
  await sim?.stop();
});

describe("the exposition parser these tests rely on", () => {
  test("reads families, labels with escapes, histograms, +Inf", () => {
    const f = parseExposition(
      [
        "# HELP a_total A counter.",
        "# TYPE a_total counter",
        'a_total{x="q\\"uote",y="back\\\\slash\\nline"} 3',
        "# TYPE h_seconds histogram",
        'h_seconds_bucket{le="0.1"} 1',
        'h_seconds_bucket{le="+Inf"} 2',
        "h_seconds_sum 0.7",
        "h_seconds_count 2",
        "# TYPE g gauge",
        "g +Inf",
      ].join("\n"),
    );
    expect(sampleValue(f, "a_total", { x: 'q"uote', y: "back\\slash\nline" })).toBe(3);
    expect(sampleValue(f, "h_seconds_count")).toBe(2);
    expect(sampleValue(f, "g")).toBe(Infinity);
    expect(f.get("a_total")!.help).toBe("A counter.");
  });

  test("rejects what Prometheus would reject", () => {
    const bad = [
      "x 1", // no TYPE
      "# TYPE x gauge\nx{a=b} 1", // unquoted label value
      "# TYPE x gauge\nx one", // not a number
      "# TYPE x gauge\nx 1\nx 2", // same series twice
      '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1', // not cumulative
      '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1', // no +Inf
      "# TYPE x gauge\n# TYPE y gauge\nx 1\ny 1\nx{a=\"1\"} 1", // family split
    ];
    for (const text of bad) expect(() => parseExposition(text)).toThrow();
  });
});

describe("/metrics of the compiled binary", () => {
  test("Prometheus text format with every family, build info and process metrics", async () => {
    const before = Date.now() / 1000;
    const { health } = await serveWith();
    const after = Date.now() / 1000;
    const { families, contentType, text } = await scrape(health);
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4; charset=utf-8$/);
    for (const f of families.values()) {
      expect({ family: f.name, help: typeof f.help === "string" && f.help.length > 0 }).toEqual({ family: f.name, help: true });
      expect(f.name).toMatch(/^(autoscaler_cloudscale_|process_|nodejs_)/);
    }
    const expected: Record<string, string> = {
      grpc_calls_total: "counter",
      grpc_call_duration_seconds: "histogram",
      api_requests_total: "counter",
      api_request_duration_seconds: "histogram",
      api_retries_total: "counter",
      list_duration_seconds: "histogram",
      create_failures_total: "counter",
      servers: "gauge",
      node_group_target_size: "gauge",
      node_group_min_size: "gauge",
      node_group_max_size: "gauge",
      creates_pending: "gauge",
      creates_held: "gauge",
      view_age_seconds: "gauge",
      view_max_age_seconds: "gauge",
      other_instances: "gauge",
      build_info: "gauge",
    };
    for (const [name, type] of Object.entries(expected)) expect({ name, type: families.get(P + name)?.type as string | undefined }).toEqual({ name, type });
    expect(families.get("process_start_time_seconds")?.type).toBe("gauge");

    // build_info names what `version` prints.
    const printed = Bun.spawnSync([BIN, "version"]).stdout.toString();
    const [, ver, commit] = /autoscaler-cloudscale (\S+) \(commit (\S+)\)/.exec(printed)!;
    const info = families.get(`${P}build_info`)!.samples;
    expect(info).toHaveLength(1);
    expect(info[0]!.labels.version).toBe(ver!);
    expect(info[0]!.labels.commit).toBe(commit!);
    expect(info[0]!.labels.bun_version).toMatch(/^\d+\.\d+\.\d+/);
    expect(info[0]!.value).toBe(1);

    const start = sampleValue(families, "process_start_time_seconds")!;
    expect(start).toBeGreaterThanOrEqual(Math.floor(before) - 2);
    expect(start).toBeLessThanOrEqual(Math.ceil(after) + 2);
    // Each process family kept has a value (some are filled by another family's collect()).
    for (const name of ["process_resident_memory_bytes", "process_virtual_memory_bytes", "process_open_fds", "process_max_fds", "nodejs_heap_size_used_bytes", "nodejs_heap_size_total_bytes", "nodejs_external_memory_bytes"]) {
      expect({ name, positive: sampleValue(families, name)! > 0 }).toEqual({ name, positive: true });
    }
    expect(sampleValue(families, "process_resident_memory_bytes")!).toBeGreaterThan(1 << 20);
    // V8-only figures that mean nothing under Bun are left out.
    expect(text).not.toContain("nodejs_heap_space_size");

    // Sizes per group from the configuration; the view was loaded at start.
    expect(v(families, `${P}node_group_min_size`, { group: "pool" })).toBe(1);
    expect(v(families, `${P}node_group_max_size`, { group: "pool" })).toBe(6);
    expect(v(families, `${P}node_group_max_size`, { group: "big" })).toBe(2);
    expect(sampleValue(families, `${P}view_max_age_seconds`)).toBe(120);
    expect(sampleValue(families, `${P}view_age_seconds`)!).toBeLessThan(120);
    expect(v(families, `${P}api_requests_total`, { method: "GET", endpoint: "/v1/servers", status_class: "2xx" })).toBeGreaterThanOrEqual(1);
    expect(v(families, `${P}create_failures_total`, { group: "big", code: "QUOTA_EXCEEDED" })).toBe(0);

    // The alerts shipped in deploy/monitoring/ and the PromQL in docs/operating.md name only series this binary exports.
    const exported = new Set([...families.values()].flatMap((f) => [f.name, ...f.samples.map((x) => x.name)]));
    for (const file of ["deploy/monitoring/alerts.yaml", "docs/operating.md"]) {
      const text = readFileSync(join(import.meta.dir, "..", file), "utf8");
      const named = new Set(text.match(/\b(autoscaler_cloudscale|process|nodejs)_[a-z0-9_]*[a-z0-9]\b/g) ?? []);
      expect(named.size).toBeGreaterThan(3);
      // The TLS expiry families exist only with TLS (this provider is plaintext): test/tls-expiry.test.ts checks them.
      for (const name of [...named].filter((n) => !n.includes("_tls_"))) expect({ file, name, exported: exported.has(name) }).toEqual({ file, name, exported: true });
    }
  });

  test("a scale-up moves the gRPC and API counters, the sizes and the server states", async () => {
    const { c, health } = await serveWith();
    await c.call("Refresh");
    const m0 = await get(health);
    await c.call("NodeGroupIncreaseSize", { id: "pool", delta: 3 });
    await expectCode(c.call("NodeGroupIncreaseSize", { id: "pool", delta: 4 }), grpc.status.OUT_OF_RANGE); // 3 + 4 > max 6
    await expectCode(c.call("NodeGroupTargetSize", { id: "nope" }), grpc.status.NOT_FOUND);

    await until("3 servers in the cloud", async () => (await ours()).length === 3);
    // The counter moves when the POST's answer is read, just after the server exists.
    const m1 = await until("3 creates counted", async () => {
      const m = await get(health);
      return v(m, `${P}api_requests_total`, { method: "POST", endpoint: "/v1/servers", status_class: "2xx" }) === 3 && m;
    });
    const delta = (name: string, labels: Record<string, string>) => v(m1, name, labels) - v(m0, name, labels);
    expect(delta(`${P}grpc_calls_total`, { method: "NodeGroupIncreaseSize", code: "OK" })).toBe(1);
    expect(delta(`${P}grpc_calls_total`, { method: "NodeGroupIncreaseSize", code: "OutOfRange" })).toBe(1);
    expect(delta(`${P}grpc_calls_total`, { method: "NodeGroupTargetSize", code: "NotFound" })).toBe(1);
    expect(delta(`${P}grpc_call_duration_seconds_count`, { method: "NodeGroupIncreaseSize" })).toBe(2);
    expect(v(m1, `${P}api_request_duration_seconds_count`, { method: "POST", endpoint: "/v1/servers" })).toBe(3);
    expect(v(m1, `${P}node_group_target_size`, { group: "pool" })).toBe(3);
    expect(v(m1, `${P}node_group_target_size`, { group: "big" })).toBe(0);
    // Created but not listed yet: CA sees them as creating.
    expect(v(m1, `${P}servers`, { group: "pool", state: "creating" })).toBe(3);
    expect(v(m1, `${P}creates_pending`, { group: "pool" })).toBe(0);

    await c.call("Refresh");
    const m2 = await get(health);
    expect(v(m2, `${P}servers`, { group: "pool", state: "running" })).toBe(3);
    expect(v(m2, `${P}servers`, { group: "pool", state: "creating" })).toBe(0);
    expect(v(m2, `${P}grpc_calls_total`, { method: "Refresh", code: "OK" })).toBe(v(m0, `${P}grpc_calls_total`, { method: "Refresh", code: "OK" }) + 1);

    // A scale-down: the deleted server is counted as deleting until a list no longer shows it.
    const [victim] = await ours();
    await c.call("NodeGroupDeleteNodes", { id: "pool", nodes: [{ providerID: `cloudscale://${victim!.uuid}`, name: victim!.name }] });
    const m3 = await until("the DELETE counted", async () => {
      const m = await get(health);
      return v(m, `${P}api_requests_total`, { method: "DELETE", endpoint: "/v1/servers/{uuid}", status_class: "2xx" }) === 1 && m;
    });
    expect(v(m3, `${P}servers`, { group: "pool", state: "deleting" })).toBe(1);
    expect(v(m3, `${P}servers`, { group: "pool", state: "running" })).toBe(2);
    expect(v(m3, `${P}node_group_target_size`, { group: "pool" })).toBe(2);
  });

  test("a list failure moves the 5xx, retry and list-duration counters; a stale view fails Refresh", async () => {
    const { c, health } = await serveWith("maxViewAge: 2s");
    await c.call("Refresh");
    const m0 = await get(health);
    const series = { method: "GET", endpoint: "/v1/servers" };
    // Every attempt of one list answers 500 (the client makes 4).
    await sim.control("/_sim/faults", { rules: [{ method: "GET", path: "/v1/servers", action: "error", status: 500, count: 4 }] });
    await c.call("Refresh").catch(() => undefined); // answered from the last good view, or Unavailable if it aged meanwhile
    // A slow machine may answer Refresh from the last good view before the list's last attempt ends.
    const m1 = await until("the failed list counted", async () => {
      const m = await get(health);
      return v(m, `${P}list_duration_seconds_count`, { result: "error" }) > v(m0, `${P}list_duration_seconds_count`, { result: "error" }) && m;
    });
    expect(v(m1, `${P}api_requests_total`, { ...series, status_class: "5xx" }) - v(m0, `${P}api_requests_total`, { ...series, status_class: "5xx" })).toBe(4);
    expect(v(m1, `${P}api_retries_total`, { ...series, reason: "server" }) - v(m0, `${P}api_retries_total`, { ...series, reason: "server" })).toBe(3);
    expect(v(m1, `${P}list_duration_seconds_count`, { result: "error" }) - v(m0, `${P}list_duration_seconds_count`, { result: "error" })).toBe(1);

    // Past maxViewAge with the API still failing (the provider's own lists fail too), Refresh fails
    // with UNAVAILABLE and the gauge shows why.
    await sim.control("/_sim/faults", { rules: [{ method: "GET", path: "/v1/servers", action: "error", status: 503, count: 1000 }] });
    await until("the view is older than maxViewAge", async () => {
      const m = await get(health);
      return sampleValue(m, `${P}view_age_seconds`)! > sampleValue(m, `${P}view_max_age_seconds`)!;
    });
    const stale = await fetch(`http://127.0.0.1:${health}/readyz`);
    expect(stale.status).toBe(200); // still ready: the staleness shows in the metrics and /status, not by withdrawing the endpoint
    expect(await stale.text()).toMatch(/the view of the cloud is \d+s old \(limit 2s\)/);
    await expectCode(c.call("Refresh"), grpc.status.UNAVAILABLE);
    const m2 = await get(health);
    expect(v(m2, `${P}grpc_calls_total`, { method: "Refresh", code: "Unavailable" })).toBe(v(m1, `${P}grpc_calls_total`, { method: "Refresh", code: "Unavailable" }) + 1);
    expect(v(m2, `${P}api_requests_total`, { ...series, status_class: "5xx" })).toBeGreaterThan(v(m1, `${P}api_requests_total`, { ...series, status_class: "5xx" }));
  });

  test("no gRPC call for longer than maxViewAge: still ready, with a fresh view (the provider lists by itself)", async () => {
    const { health, s } = await serveWith("maxViewAge: 4s");
    const lists = async () => v(await get(health), `${P}api_requests_total`, { method: "GET", endpoint: "/v1/servers", status_class: "2xx" });
    const first = await lists();
    const t0 = Date.now();
    let oldest = 0;
    while (Date.now() - t0 < 10_000) {
      const ready = await fetch(`http://127.0.0.1:${health}/readyz`);
      expect(ready.status).toBe(200); // before: 503 "view of the cloud is 5s old" once 4 s had passed
      const status = (await (await fetch(`http://127.0.0.1:${health}/status`)).json()) as { ready: boolean; viewAgeSeconds: number };
      expect(status.ready).toBe(true);
      oldest = Math.max(oldest, status.viewAgeSeconds, sampleValue(await get(health), `${P}view_age_seconds`)!);
      await Bun.sleep(250);
    }
    expect(oldest).toBeLessThanOrEqual(4);
    // One list per half of maxViewAge, give or take the first: a bounded schedule, not a loop.
    const own = (await lists()) - first;
    expect(own).toBeGreaterThanOrEqual(3);
    expect(own).toBeLessThanOrEqual(7);
    expect(v(await get(health), `${P}grpc_calls_total`, { method: "Refresh", code: "OK" })).toBe(0); // CA never called
    expect(s.output()).not.toContain("creations are held");
  });

  test("a failed create: the API's 4xx is counted, create_failures_total{code} goes up by one, CA's failed instance shows as state failed", async () => {
    const { c, health } = await serveWith();
    await c.call("Refresh");
    const m0 = await get(health);
    await sim.control("/_sim/quota", { servers: 0 });
    await c.call("NodeGroupIncreaseSize", { id: "big", delta: 1 });
    const m = await until("the failed create shows", async () => {
      const x = await get(health);
      return v(x, `${P}servers`, { group: "big", state: "failed" }) === 1 && x;
    });
    const failures = (x: Map<string, Family>, group: string, code: string) => v(x, `${P}create_failures_total`, { group, code });
    expect(failures(m0, "big", "QUOTA_EXCEEDED")).toBe(0);
    expect(failures(m, "big", "QUOTA_EXCEEDED")).toBe(1);
    for (const [group, code] of [["big", "OUT_OF_CAPACITY"], ["big", "CREATE_FAILED"], ["pool", "QUOTA_EXCEEDED"]] as const) expect({ group, code, n: failures(m, group, code) }).toEqual({ group, code, n: 0 });
    expect(v(m, `${P}api_requests_total`, { method: "POST", endpoint: "/v1/servers", status_class: "4xx" })).toBe(1);
    expect(v(m, `${P}creates_pending`, { group: "big" })).toBe(0);
    expect(v(m, `${P}servers`, { group: "big", state: "creating" })).toBe(0);
    expect(await ours()).toHaveLength(0);
  });

  test("two providers for one cluster: the one serving CA names the other's creations in its log, other_instances and status", async () => {
    const b = await serveWith(); // serves CA; started first, so what A creates is newer than B's start
    await b.c.call("Refresh");
    const a = await serveWith();
    await a.c.call("Refresh");
    await a.c.call("NodeGroupIncreaseSize", { id: "big", delta: 1 });
    const [created] = await until("A's server in the cloud", async () => {
      const s = await ours();
      return s.length === 1 && s;
    });
    const aInstance = created!.tags["autoscaler-cloudscale-instance"];
    expect(aInstance).toMatch(/\S/); // A tagged its server with its instance id

    await b.c.call("Refresh");
    expect(v(await get(b.health), `${P}other_instances`)).toBe(1);
    const warning = b.s.output().split("\n").filter((l) => l.includes("another provider instance is creating servers"));
    expect(warning).toHaveLength(1);
    expect(warning[0]).toContain(aInstance!);
    const status = await runBin(["status", "--health", `127.0.0.1:${b.health}`]);
    expect(status.stdout).toContain(`another provider instance ${aInstance} created 1 server(s) while this one served CA`);
    await b.c.call("Refresh"); // warned once per instance, not per list
    expect(b.s.output().split("\n").filter((l) => l.includes("another provider instance is creating servers"))).toHaveLength(1);

    // A's own server is no other instance's to A.
    await a.c.call("Refresh");
    expect(v(await get(a.health), `${P}other_instances`)).toBe(0);
    expect(a.s.output()).not.toContain("another provider instance");
  });

  test("creates held during the startup grace are shown as held and pending", async () => {
    const { c, health } = await serveWith("startupGrace: 10m");
    await c.call("Refresh");
    await c.call("NodeGroupIncreaseSize", { id: "pool", delta: 2 });
    const m = await get(health);
    expect(v(m, `${P}creates_held`, { group: "pool" })).toBe(2);
    expect(v(m, `${P}creates_pending`, { group: "pool" })).toBe(2);
    expect(v(m, `${P}servers`, { group: "pool", state: "creating" })).toBe(2);
    expect(v(m, `${P}node_group_target_size`, { group: "pool" })).toBe(2);
    expect(v(m, `${P}api_requests_total`, { method: "POST", endpoint: "/v1/servers", status_class: "2xx" })).toBe(0);
    expect(await ours()).toHaveLength(0);
  });

  test("creates_held goes back to 0 once the provider's own list after the grace lands, with no Refresh from CA", async () => {
    const { c, health } = await serveWith("startupGrace: 1s");
    // Every list fails from now on: the creates stay held, however slow this machine is.
    await sim.control("/_sim/faults", { rules: [{ method: "GET", path: "/v1/servers", action: "error", status: 503 }] });
    await c.call("NodeGroupIncreaseSize", { id: "pool", delta: 2 });
    const m0 = await until("the provider's own list failed", async () => {
      const x = await get(health);
      return v(x, `${P}list_duration_seconds_count`, { result: "error" }) >= 1 && x;
    });
    expect(v(m0, `${P}creates_held`, { group: "pool" })).toBe(2);
    expect(v(m0, `${P}creates_pending`, { group: "pool" })).toBe(2);
    await sim.control("/_sim/reset-faults", {});
    const m1 = await until("the held creates went out", async () => {
      const x = await get(health);
      return v(x, `${P}api_requests_total`, { method: "POST", endpoint: "/v1/servers", status_class: "2xx" }) === 2 && x;
    });
    expect(v(m1, `${P}creates_held`, { group: "pool" })).toBe(0);
    expect(v(m1, `${P}grpc_calls_total`, { method: "Refresh", code: "OK" })).toBe(0);
    expect(await ours()).toHaveLength(2);
  });

  test("list_duration_seconds times the lists that rebuild the view, not the create queue's look-ups by name", async () => {
    const { c, health } = await serveWith();
    await c.call("Refresh");
    const m0 = await get(health);
    const series = { method: "GET", endpoint: "/v1/servers", status_class: "2xx" };
    // The create takes effect but its answer is lost: the queue looks for it by its name (one list).
    await sim.control("/_sim/faults", { rules: [{ method: "POST", path: "/v1/servers", action: "lost-response", count: 1 }] });
    await c.call("NodeGroupIncreaseSize", { id: "pool", delta: 1 });
    const m1 = await until("the look-up by name happened", async () => {
      const x = await get(health);
      return v(x, `${P}api_requests_total`, series) > v(m0, `${P}api_requests_total`, series) && x;
    });
    expect(v(m1, `${P}api_requests_total`, series) - v(m0, `${P}api_requests_total`, series)).toBe(1);
    expect(v(m1, `${P}list_duration_seconds_count`, { result: "ok" })).toBe(v(m0, `${P}list_duration_seconds_count`, { result: "ok" }));
    await c.call("Refresh");
    const m2 = await get(health);
    expect(v(m2, `${P}list_duration_seconds_count`, { result: "ok" }) - v(m0, `${P}list_duration_seconds_count`, { result: "ok" })).toBe(1);
    expect(await ours()).toHaveLength(1);
  });
});
