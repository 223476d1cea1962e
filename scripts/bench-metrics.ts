// What /metrics costs: run with
//   bun scripts/bench-metrics.ts [--servers N] [--scrapes N] [--base BINARY]
// It starts the simulator with N of our servers in 10 groups, then `serve --health-listen`, loads
// the view with one Refresh, and times N scrapes of /metrics against N GETs of /healthz on the same
// listener (the in-run baseline). It prints the wall time per request (p50, p99) and the provider's
// CPU per request (/proc/<pid>/stat), the exposition's size, and the idle resident memory before and
// after the scrapes. With --base BINARY (a build without metrics, e.g. of an older commit) it also
// starts that binary the same way and prints the idle RSS and file size of both, and the provider's
// CPU per gRPC call (NodeGroupTargetSize, sequential) of both: the cost of the gRPC interceptor.
// Figures are printed, never asserted.
import { parseArgs } from "node:util";
import { readFileSync, statSync } from "node:fs";
import { connect } from "../test/helpers/grpc";
import { BIN, startSim, writeConfig, TEST_TOKEN } from "../test/helpers/procs";

const { values } = parseArgs({ options: { servers: { type: "string", default: "1000" }, scrapes: { type: "string", default: "200" }, base: { type: "string" } } });
const SERVERS = Number(values.servers);
const SCRAPES = Number(values.scrapes);
const GROUPS = 10;

const cpuSeconds = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
};
const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]!;

const sim = await startSim(["--boot-seconds", "0"]);
for (let g = 1; g <= GROUPS; g++) {
  await sim.control("/_sim/servers", { count: SERVERS / GROUPS, name: `mc-pool-${g}-{i}`, flavor: "flex-4-2", image: "debian-13", zone: "lpg1", tags: { "autoscaler-cloudscale-cluster": "mc", "autoscaler-cloudscale-group": `pool-${g}` } });
}
const configPath = writeConfig(`clusterName: mc
startupGrace: 0s
nodeGroups:
${Array.from({ length: GROUPS }, (_, i) => `  - {name: pool-${i + 1}, flavor: flex-4-2, image: debian-13, zone: lpg1, min: 0, max: ${SERVERS}}`).join("\n")}
`);

/** `serve` of `binary` with a health listener, its view loaded, after a few idle seconds. */
async function start(binary: string) {
  const proc = Bun.spawn([binary, "serve", "--config", configPath, "--listen", "127.0.0.1:0", "--insecure-plaintext", "--health-listen", "127.0.0.1:0"], {
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", CLOUDSCALE_API_TOKEN: TEST_TOKEN, CLOUDSCALE_API_URL: sim.apiUrl },
  });
  let out = "";
  let m: RegExpExecArray | null = null;
  const reader = proc.stderr.getReader();
  const deadline = Date.now() + 60_000;
  while (!(m = /serving gRPC.*listen=127\.0\.0\.1:(\d+).*health=127\.0\.0\.1:(\d+)/.exec(out)) && Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`serve exited:\n${out}`);
    out += new TextDecoder().decode(value);
  }
  if (!m) throw new Error(`serve did not start:\n${out}`);
  (async () => { while (!(await reader.read()).done); })().catch(() => {}); // keep draining (a closed pipe ends it)
  const c = connect(Number(m[1]));
  await c.call("Refresh", {}, { deadlineMs: 60_000 });
  await Bun.sleep(3000); // let the start settle before the idle figure
  const stop = async () => {
    c.close();
    proc.kill("SIGTERM");
    await proc.exited;
  };
  return { pid: proc.pid, health: Number(m[2]), idleRss: rssMiB(proc.pid), stop, c };
}

/** The provider's CPU per gRPC call over `n` sequential NodeGroupTargetSize calls, in microseconds. */
async function grpcCpuPerCall(s: { pid: number; c: ReturnType<typeof connect> }, n = 2000) {
  for (let i = 0; i < 200; i++) await s.c.call("NodeGroupTargetSize", { id: "pool-1" }); // warm-up
  const cpu0 = cpuSeconds(s.pid);
  for (let i = 0; i < n; i++) await s.c.call("NodeGroupTargetSize", { id: "pool-1" });
  return ((cpuSeconds(s.pid) - cpu0) * 1e6) / n;
}

async function timeRequests(pid: number, url: string) {
  const ms: number[] = [];
  let bytes = 0;
  const cpu0 = cpuSeconds(pid);
  for (let i = 0; i < SCRAPES; i++) {
    const t = performance.now();
    const body = await (await fetch(url)).text();
    ms.push(performance.now() - t);
    bytes = body.length;
  }
  return { p50: pct(ms, 50), p99: pct(ms, 99), cpuMs: ((cpuSeconds(pid) - cpu0) * 1000) / SCRAPES, bytes };
}

// Binary under test: BIN (AUTOSCALER_CLOUDSCALE_BIN or dist/).
const binary = BIN;
const cur = await start(binary);
const url = (path: string) => `http://127.0.0.1:${cur.health}${path}`;
await fetch(url("/metrics")); // first scrape (lazy paths)
const healthz = await timeRequests(cur.pid, url("/healthz"));
const metrics = await timeRequests(cur.pid, url("/metrics"));
await Bun.sleep(1000);
const afterRss = rssMiB(cur.pid);
await cur.stop();

console.log(`bench-metrics: ${SERVERS} servers in ${GROUPS} groups, ${SCRAPES} sequential requests each, ${binary}`);
console.log(`  GET /healthz : p50 ${healthz.p50.toFixed(2)} ms, p99 ${healthz.p99.toFixed(2)} ms, CPU ${healthz.cpuMs.toFixed(2)} ms/request`);
console.log(`  GET /metrics : p50 ${metrics.p50.toFixed(2)} ms, p99 ${metrics.p99.toFixed(2)} ms, CPU ${metrics.cpuMs.toFixed(2)} ms/scrape, ${metrics.bytes} bytes`);
console.log(`  ratio /metrics ÷ /healthz: p50 ${(metrics.p50 / healthz.p50).toFixed(1)}x, CPU ${(metrics.cpuMs / Math.max(healthz.cpuMs, 0.001)).toFixed(1)}x`);
console.log(`  idle RSS after Refresh ${cur.idleRss.toFixed(1)} MiB, after the scrapes ${afterRss.toFixed(1)} MiB; binary ${(statSync(binary).size / 1048576).toFixed(1)} MiB`);

if (values.base) {
  // Alternate the two binaries, so that drift in the machine's load hits both.
  const perCall = { cur: [] as number[], base: [] as number[] };
  for (let round = 0; round < 3; round++) {
    for (const which of round % 2 ? (["base", "cur"] as const) : (["cur", "base"] as const)) {
      const s = await start(which === "cur" ? binary : values.base);
      perCall[which].push(await grpcCpuPerCall(s));
      await s.stop();
    }
  }
  const med = (xs: number[]) => pct(xs, 50);
  console.log(`  gRPC NodeGroupTargetSize CPU/call (median of 3 rounds of 2000): this build ${med(perCall.cur).toFixed(0)} µs, base ${med(perCall.base).toFixed(0)} µs, ratio ${(med(perCall.cur) / med(perCall.base)).toFixed(2)}`);
  const base = await start(values.base);
  await base.stop();
  console.log(`  base ${values.base}: idle RSS after Refresh ${base.idleRss.toFixed(1)} MiB (this build ${(cur.idleRss - base.idleRss >= 0 ? "+" : "")}${(cur.idleRss - base.idleRss).toFixed(1)} MiB), binary ${(statSync(values.base).size / 1048576).toFixed(2)} MiB (this build ${((statSync(binary).size - statSync(values.base).size) / 1024).toFixed(0)} KiB more)`);
}
await sim.stop();
process.exit(0);
