// The Talos extension service definition (packaging/talos/autoscaler-cloudscale.yaml) against
// two facts of Talos' own code (siderolabs/talos, internal/app/machined/pkg/system/):
//   - runner/runner.go: GracefulShutdownTimeout defaults to 10 s, and services/extension.go
//     does not change it: Talos sends SIGTERM, then SIGKILL 10 s later. The provider's drain
//     must end before that.
//   - services/extension.go appends the ExtensionServiceConfig's `environment` to the
//     service's own and hands both to containerd in one oci.WithEnv; containerd's
//     replaceOrAppendEnvValues (pkg/oci/spec_opts.go) replaces only the defaults, so a variable
//     set in both comes twice, the document's last. Which one wins is up to the program.
// Both are run here with the compiled binary: the environment exactly as containerd builds it
// (test/helpers/exec-env.ts keeps the duplicate), and a drain that must use its whole grace.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { BIN, TEST_TOKEN, closedPort, record, requireBinary, spawnUntil, startSim, until, writeConfig, type SimProc } from "./helpers/procs";
import { connect } from "./helpers/grpc";

/** Talos' stop window for an extension service: SIGKILL this long after SIGTERM. */
const TALOS_STOP_SECONDS = 10;
const EXEC_ENV = join(import.meta.dir, "helpers/exec-env.ts");
const service = parse(readFileSync(join(import.meta.dir, "../packaging/talos/autoscaler-cloudscale.yaml"), "utf8"));
const args: string[] = service.container.args;
const serviceEnv: string[] = service.container.environment ?? [];
/** containerd's default environment for a process (oci.defaultUnixEnv). */
const CONTAINERD_DEFAULTS = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"];

/** The environment containerd gives the service: its defaults, then service + document in one list, duplicates kept. */
function talosEnvironment(document: string[]): string[] {
  const out = [...CONTAINERD_DEFAULTS];
  const defaults = new Map(CONTAINERD_DEFAULTS.map((e, i) => [e.split("=")[0]!, i]));
  for (const e of [...serviceEnv, ...document]) {
    const i = defaults.get(e.split("=")[0]!);
    if (i !== undefined) out[i] = e;
    else out.push(e);
  }
  return out;
}

let sim: SimProc;
beforeAll(async () => {
  requireBinary();
  sim = await startSim(["--boot-seconds", "0"]);
});
afterAll(async () => {
  await sim?.stop();
});

describe("Talos extension service", () => {
  test("a variable set by the service and by the ExtensionServiceConfig: the document's value wins", async () => {
    const listen = serviceEnv.find((e) => e.startsWith("AUTOSCALER_CLOUDSCALE_HEALTH_LISTEN="));
    expect(listen).toBe("AUTOSCALER_CLOUDSCALE_HEALTH_LISTEN=127.0.0.1:8087");
    const port = closedPort();
    const env = talosEnvironment([`AUTOSCALER_CLOUDSCALE_HEALTH_LISTEN=127.0.0.1:${port}`]);
    // Both entries reach the process.
    expect(env.filter((e) => e.startsWith("AUTOSCALER_CLOUDSCALE_HEALTH_LISTEN=")).length).toBe(2);
    const p = Bun.spawn([process.execPath, EXEC_ENV, BIN, JSON.stringify(env), "status"], { stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    record(out + err);
    // It asked the document's address (nothing listens there), not the service's.
    expect(code).toBe(1);
    expect(err).toContain(`http://127.0.0.1:${port}/status`);
    expect(err).not.toContain("127.0.0.1:8087");

    // serve reads its listen address the same way: the document's.
    const cfg = writeConfig("clusterName: talos\nnodeGroups:\n  - {name: w, flavor: flex-4-1, image: debian-13, min: 0, max: 1}\n");
    const serveEnv = talosEnvironment([`CLOUDSCALE_API_TOKEN=${TEST_TOKEN}`, `CLOUDSCALE_API_URL=${sim.apiUrl}`, "AUTOSCALER_CLOUDSCALE_LISTEN=127.0.0.1:0"]);
    const s = await spawnUntil(
      [EXEC_ENV, BIN, JSON.stringify(serveEnv), "serve", "--config", cfg, "--insecure-plaintext"],
      /serving gRPC.*listen=127\.0\.0\.1:(\d+)/,
      {},
      30_000,
      process.execPath,
    );
    try {
      expect(Number(s.match[1])).not.toBe(8086); // the service's own default was 127.0.0.1:8086
    } finally {
      await s.stop();
    }
  });

  test("SIGTERM with a creation on its way: the drain uses its grace and ends before Talos' SIGKILL", async () => {
    const grace = Number(args[args.indexOf("--shutdown-grace") + 1]);
    expect(grace).toBeGreaterThan(0);
    // One second to spare for the process to exit after the drain.
    expect(grace + 1).toBeLessThanOrEqual(TALOS_STOP_SECONDS);
    await sim.resetFaults();
    await sim.faults({ rules: [{ method: "POST", path: "/v1/servers", latencyMs: 60_000 }] });
    await sim.resetCounters();
    // No startup grace to wait for: the creation goes out at once.
    const cfg = writeConfig("clusterName: talos\nstartupGrace: 1s\nnodeGroups:\n  - {name: w, flavor: flex-4-1, image: debian-13, min: 0, max: 3}\n");
    const s = await spawnUntil(
      ["serve", "--config", cfg, "--insecure-plaintext", "--listen", "127.0.0.1:0", "--shutdown-grace", String(grace), "--log-level", "debug"],
      /serving gRPC.*listen=127\.0\.0\.1:(\d+)/,
      { CLOUDSCALE_API_TOKEN: TEST_TOKEN, CLOUDSCALE_API_URL: sim.apiUrl },
    );
    const client = connect(Number(s.match[1]));
    try {
      await client.call("NodeGroupIncreaseSize", { id: "w", delta: 1 });
      // The POST is on its way (the simulator holds it for a minute).
      await until("the create to reach the API", async () => ((await sim.counters())["POST /v1/servers"] ?? 0) >= 1);
      const t0 = performance.now();
      s.proc.kill("SIGTERM");
      const code = await s.proc.exited;
      const seconds = (performance.now() - t0) / 1000;
      expect(code).toBe(0);
      expect(s.output()).toContain("stopped");
      // It waited for the creation as long as its grace allows, and no longer than Talos does.
      expect(seconds).toBeGreaterThan(grace - 1);
      expect(seconds).toBeLessThan(TALOS_STOP_SECONDS);
    } finally {
      client.close();
      if (s.proc.exitCode === null) await s.stop("SIGKILL");
      await sim.resetFaults();
    }
  }, 30_000);
});
