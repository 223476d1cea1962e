// Interleavings, outages, lost responses, shutdown and certificate rotation,
// driven through the compiled binary with the simulator's latency and fault knobs.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { connect, expectCode, grpc, type Client } from "./helpers/grpc";
import { makePki, rotateServerCert, type Pki } from "./helpers/certs";
import { eventually, sleep, startServe, startSim, writeConfig, type ServeProc, type SimProc } from "./helpers/procs";
import tls from "node:tls";
import { readFileSync } from "node:fs";

const config = (extra = "") => `clusterName: rs
startupGrace: 0s
createConcurrency: 8
createVerifyDelay: 300ms
${extra}
nodeGroups:
  - {name: pool, flavor: flex-4-2, image: debian-13, zone: lpg1, min: 0, max: 20}
`;

let pki: Pki;
let sim: SimProc;
const started: ServeProc[] = [];
const clients: Client[] = [];

async function serveWith(extraConfig = "", useTls = true) {
  const s = await startServe({
    configPath: writeConfig(config(extraConfig)),
    apiUrl: sim.apiUrl,
    tls: useTls ? { cert: pki.serverCert, key: pki.serverKey, clientCa: pki.caCert } : undefined,
  });
  started.push(s);
  const c = connect(s.port, useTls ? pki : undefined);
  clients.push(c);
  return { s, c };
}

const ours = async () => (await sim.state()).servers.filter((x) => x.tags["autoscaler-cloudscale-cluster"] === "rs");
const faults = (body: object) => sim.control("/_sim/faults", body);

beforeAll(async () => {
  pki = makePki();
  sim = await startSim(["--boot-seconds", "0"]);
});

afterEach(async () => {
  await sim.control("/_sim/reset-faults", {});
  for (const c of clients.splice(0)) c.close();
  for (const s of started.splice(0)) await s.stop("SIGKILL");
  // Leave the cloud empty for the next test (behind the provider's back is fine here).
  for (const s of await ours()) await sim.control(`/_sim/servers/${s.uuid}`, undefined, "DELETE");
});

afterAll(async () => {
  await sim?.stop();
});

describe("interleavings", () => {
  test("a Refresh whose list started before a create was accepted neither drops nor doubles it", async () => {
    const { c } = await serveWith();
    await c.call("Refresh");
    await faults({ rules: [{ method: "GET", path: "/v1/servers", latencyMs: 1500, count: 1 }] });
    const slowRefresh = c.call("Refresh");
    await sleep(200); // the list is now on its way, before the creates exist
    await c.call("NodeGroupIncreaseSize", { id: "pool", delta: 3 });
    await eventually("3 servers created", async () => (await ours()).length === 3);
    await slowRefresh; // its list predates the creates
    expect((await c.call("NodeGroupTargetSize", { id: "pool" })).targetSize).toBe(3);
    await c.call("Refresh");
    expect((await c.call("NodeGroupTargetSize", { id: "pool" })).targetSize).toBe(3);
    expect(await ours()).toHaveLength(3);
  });

  test("a Refresh whose list started before a delete does not bring the server back", async () => {
    const { c } = await serveWith();
    await c.call("Refresh");
    await c.call("NodeGroupIncreaseSize", { id: "pool", delta: 2 });
    const [victim] = await eventually("2 servers", async () => {
      const s = await ours();
      return s.length === 2 && s;
    });
    await c.call("Refresh");
    await faults({ rules: [{ method: "GET", path: "/v1/servers", latencyMs: 1500, count: 1 }] });
    const slowRefresh = c.call("Refresh");
    await sleep(300); // the list is answered after the delay, but it was requested now
    await c.call("NodeGroupDeleteNodes", { id: "pool", nodes: [{ providerID: `cloudscale://${victim!.uuid}`, name: victim!.name }] });
    await slowRefresh;
    expect((await c.call("NodeGroupTargetSize", { id: "pool" })).targetSize).toBe(1);
    const inst = (await c.call("NodeGroupNodes", { id: "pool" })).instances;
    expect(inst.find((i: any) => i.id === `cloudscale://${victim!.uuid}`)?.status.instanceState ?? "gone").not.toBe("instanceRunning");
    await c.call("Refresh");
    expect((await c.call("NodeGroupTargetSize", { id: "pool" })).targetSize).toBe(1);
    expect((await ours()).map((s) => s.uuid)).not.toContain(victim!.uuid);
  });

  test("concurrent IncreaseSize calls never exceed max and never double", async () => {
    const { c } = await serveWith();
    await c.call("Refresh");
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => c.call("NodeGroupIncreaseSize", { id: "pool", delta: 3 })));
    const ok = results.filter((r) => r.status === "fulfilled").length;
    expect(ok).toBe(6); // 6 × 3 = 18 ≤ 20; a 7th would be 21
    for (const r of results) if (r.status === "rejected") expect((r.reason as grpc.ServiceError).code).toBe(grpc.status.OUT_OF_RANGE);
    await eventually("18 servers", async () => (await ours()).length === 18, 30_000);
    await c.call("Refresh");
    expect((await c.call("NodeGroupTargetSize", { id: "pool" })).targetSize).toBe(18);
    const names = (await ours()).map((s) => s.name);
    expect(new Set(names).size).toBe(18);
  });
});

describe("lost responses", () => {
  test("a create whose response is lost is found by its name, not sent twice", async () => {
    const { c } = await serveWith();
    await c.call("Refresh");
    await sim.control("/_sim/counters/reset", {});
    await faults({ rules: [{ method: "POST", path: "/v1/servers", action: "lost-response", count: 2 }] });
    await c.call("NodeGroupIncreaseSize", { id: "pool", delta: 2 });
    await eventually("both creates resolved", async () => {
      await c.call("Refresh");
      const inst = (await c.call("NodeGroupNodes", { id: "pool" })).instances;
      return inst.length === 2 && inst.every((i: any) => !i.id.includes("pending/"));
    });
    const s = await ours();
    expect(s).toHaveLength(2);
    expect(new Set(s.map((x) => x.name)).size).toBe(2);
    const counters = (await sim.control("/_sim/counters")) as Record<string, number>;
    expect(counters["POST /v1/servers"]).toBe(2);
    expect((await c.call("NodeGroupTargetSize", { id: "pool" })).targetSize).toBe(2);
  });

  test("a create that failed with a 5xx before taking effect is tried again after checking", async () => {
    const { c } = await serveWith();
    await c.call("Refresh");
    await faults({ rules: [{ method: "POST", path: "/v1/servers", action: "error", status: 503, count: 1 }] });
    await c.call("NodeGroupIncreaseSize", { id: "pool", delta: 1 });
    await eventually("1 server", async () => (await ours()).length === 1);
    await sleep(500);
    expect(await ours()).toHaveLength(1);
  });

  test("a delete whose response is lost is not an error on the next try", async () => {
    const { c } = await serveWith();
    await c.call("Refresh");
    await c.call("NodeGroupIncreaseSize", { id: "pool", delta: 1 });
    const [s] = await eventually("1 server", async () => {
      const x = await ours();
      return x.length === 1 && x;
    });
    await c.call("Refresh");
    await faults({ rules: [{ method: "DELETE", path: "/v1/servers/:uuid", action: "error", status: 502, commit: true }] });
    const node = { providerID: `cloudscale://${s!.uuid}`, name: s!.name };
    await c.call("NodeGroupDeleteNodes", { id: "pool", nodes: [node] }).catch(() => {});
    await sim.control("/_sim/reset-faults", {});
    expect(await ours()).toHaveLength(0);
    await c.call("NodeGroupDeleteNodes", { id: "pool", nodes: [node] });
    await c.call("Refresh");
    expect((await c.call("NodeGroupTargetSize", { id: "pool" })).targetSize).toBe(0);
  });
});

describe("outages", () => {
  test("Refresh serves the last good view within the staleness bound, fails clearly past it, and recovers", async () => {
    const { c } = await serveWith("maxViewAge: 2s");
    await c.call("Refresh");
    await c.call("NodeGroupIncreaseSize", { id: "pool", delta: 1 });
    await eventually("1 server", async () => (await ours()).length === 1);
    await c.call("Refresh");
    await faults({ rules: [{ path: "/v1/*", action: "error", status: 503 }] });
    await c.call("Refresh"); // transient failure, view still fresh
    expect((await c.call("NodeGroupTargetSize", { id: "pool" })).targetSize).toBe(1);
    await sleep(2200);
    const e = await expectCode(c.call("Refresh"), grpc.status.UNAVAILABLE);
    expect(e.details).toMatch(/cannot list servers and the last good view is \d+s old \(limit 2s\)/);
    const before = ((await sim.control("/_sim/counters")) as Record<string, number>)["POST /v1/servers"] ?? 0;
    await expectCode(c.call("NodeGroupIncreaseSize", { id: "pool", delta: 1 }), grpc.status.UNAVAILABLE);
    expect(((await sim.control("/_sim/counters")) as Record<string, number>)["POST /v1/servers"] ?? 0).toBe(before);
    await sim.control("/_sim/reset-faults", {});
    await c.call("Refresh");
    expect((await c.call("NodeGroupTargetSize", { id: "pool" })).targetSize).toBe(1);
  });

  test("a slow API: Refresh answers from the fresh view before the caller's deadline", async () => {
    const { c } = await serveWith();
    await c.call("Refresh");
    await faults({ rules: [{ method: "GET", path: "/v1/servers", latencyMs: 3000, count: 1 }] });
    const t0 = performance.now();
    await c.call("Refresh", {}, { deadlineMs: 1000 });
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  test("a handler honours the caller's deadline", async () => {
    const { c } = await serveWith();
    await c.call("Refresh");
    await c.call("NodeGroupIncreaseSize", { id: "pool", delta: 1 });
    const [s] = await eventually("1 server", async () => {
      const x = await ours();
      return x.length === 1 && x;
    });
    await c.call("Refresh");
    await faults({ rules: [{ method: "GET", path: "/v1/servers/:uuid", latencyMs: 3000 }] });
    const t0 = performance.now();
    await expectCode(c.call("NodeGroupDeleteNodes", { id: "pool", nodes: [{ providerID: `cloudscale://${s!.uuid}`, name: s!.name }] }, { deadlineMs: 500 }), grpc.status.DEADLINE_EXCEEDED);
    expect(performance.now() - t0).toBeLessThan(2500);
    await sim.control("/_sim/reset-faults", {});
    expect(await ours()).toHaveLength(1); // nothing deleted by the abandoned call
  });
});

describe("process", () => {
  test("SIGTERM drains in-flight calls, then exits", async () => {
    const { s, c } = await serveWith();
    await c.call("Refresh");
    await faults({ rules: [{ method: "GET", path: "/v1/servers", latencyMs: 1500, count: 1 }] });
    const inflight = c.call("Refresh", {}, { deadlineMs: 5000 });
    await sleep(200);
    const t0 = performance.now();
    s.proc.kill("SIGTERM");
    await inflight; // answered, not cut off
    const code = await s.proc.exited;
    expect(code).toBe(0);
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(s.output()).toContain("draining in-flight calls");
  });

  test("certificates rotated on disk are picked up without a restart, with no failed call", async () => {
    const rotPki = makePki();
    const s = await startServe({ configPath: writeConfig(config()), apiUrl: sim.apiUrl, tls: { cert: rotPki.serverCert, key: rotPki.serverKey, clientCa: rotPki.caCert } });
    started.push(s);
    const peerCn = () =>
      new Promise<string>((resolve, reject) => {
        const sock = tls.connect({ host: "127.0.0.1", port: s.port, servername: "localhost", ca: readFileSync(rotPki.caCert), cert: readFileSync(rotPki.clientCert), key: readFileSync(rotPki.clientKey), ALPNProtocols: ["h2"] }, () => {
          const cn = String(sock.getPeerCertificate().subject.CN);
          expect(sock.alpnProtocol).toBe("h2");
          sock.end();
          resolve(cn);
        });
        sock.on("error", reject);
      });
    expect(await peerCn()).toBe("autoscaler-cloudscale");
    const c = connect(s.port, rotPki);
    clients.push(c);
    let failures = 0;
    let calls = 0;
    let stop = false;
    const load = (async () => {
      while (!stop && calls < 2000) {
        calls++;
        await c.call("NodeGroups").catch(() => failures++);
      }
    })();
    rotateServerCert(rotPki);
    await eventually("the rotated certificate is served", async () => (await peerCn()) === "autoscaler-cloudscale-rotated", 15_000, 250);
    stop = true;
    await load;
    expect(calls).toBeGreaterThan(10);
    expect(failures).toBe(0);
    expect(s.output()).toContain("TLS certificates reloaded");
  });

  test("plaintext needs its explicit flag", async () => {
    const { spawnUntil } = await import("./helpers/procs");
    const r = await spawnUntil(["serve", "--config", writeConfig(config()), "--listen", "127.0.0.1:0"], /TLS needs|serving gRPC/, { CLOUDSCALE_API_TOKEN: "x", CLOUDSCALE_API_URL: sim.apiUrl }).catch((e) => e as Error);
    expect(String(r instanceof Error ? r.message : r.output())).toContain("--insecure-plaintext");
    const p = await spawnUntil(["serve", "--config", writeConfig(config()), "--listen", "127.0.0.1:0", "--insecure-plaintext"], /serving gRPC/, { CLOUDSCALE_API_TOKEN: "x", CLOUDSCALE_API_URL: sim.apiUrl });
    started.push({ ...p, port: 0, configPath: "" });
    expect(p.output()).toContain("plaintext h2c");
  });
});
