// The way over from kubeterm-sh/autoscaler-cloudscale, through the compiled binary against the
// simulator: servers tagged as that provider tags them (k8s-cluster, k8s-autoscaler-group, its
// `<group>-<8 hex>` names), the configuration converted from test/fixtures/seed, `adopt` without
// --yes (explains, changes nothing) and with it (re-tags through PATCH), and then `serve` sees
// them in their groups.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdirSync, mkdtempSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { CLUSTER_TAG, GROUP_TAG } from "../src/types";
import { connect, instances, targetSize } from "./helpers/grpc";
import { TEST_TOKEN, runBin, startServe, startSim, type SimProc } from "./helpers/procs";

let sim: SimProc;
beforeAll(async () => {
  sim = await startSim(["--boot-seconds", "0"]);
});
afterAll(async () => {
  await sim?.stop();
});

const env = () => ({ CLOUDSCALE_API_TOKEN: TEST_TOKEN, CLOUDSCALE_API_URL: sim.apiUrl });
const seedTags = (cluster: string, group: string, extra: Record<string, string> = {}) => ({ "k8s-cluster": cluster, "k8s-autoscaler-group": group, ...extra });

/** The old provider's config converted, beside its user-data, as an operator would do it. */
async function converted(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "adopt-"));
  mkdirSync(join(dir, "old"));
  for (const f of ["config.yaml", "machineconfig.yaml"]) copyFileSync(join(import.meta.dir, "fixtures/seed", f), join(dir, "old", f));
  const r = await runBin(["convert", join(dir, "old/config.yaml"), "--out", join(dir, "config.yaml")], { SEED_CLUSTER: "seed-prod" });
  expect(r.code).toBe(0);
  return join(dir, "config.yaml");
}

describe("adopt", () => {
  test("explains without --yes, re-tags with it, and the provider then serves them in their groups", async () => {
    await sim.reset();
    const cfg = await converted();
    const workers = await sim.seed({ count: 2, name: "worker-0a1b2c3{i}", flavor: "flex-8-2", zone: "lpg1", image: "custom:talos-1.13.2", tags: seedTags("seed-prod", "worker", { team: "platform" }) });
    const [gpu] = await sim.seed({ name: "gpu-9f8e7d6c", flavor: "gpu2-128-16-1-200", zone: "rma1", image: "debian-13", tags: seedTags("seed-prod", "gpu") });
    const [legacy] = await sim.seed({ name: "legacy-11223344", flavor: "flex-4-1", zone: "lpg1", tags: seedTags("seed-prod", "legacy") });
    const [otherSeed] = await sim.seed({ name: "worker-55667788", flavor: "flex-8-2", zone: "lpg1", tags: seedTags("seed-staging", "worker") });
    const [taken] = await sim.seed({ name: "worker-99aabbcc", flavor: "flex-8-2", zone: "lpg1", tags: { ...seedTags("seed-prod", "worker"), [CLUSTER_TAG]: "another" } });
    const [stranger] = await sim.seed({ name: "database-1", flavor: "flex-4-1", zone: "lpg1", tags: { team: "db" } });
    const before = new Map((await sim.servers()).map((s) => [s.uuid, s.tags]));
    await sim.resetCounters();

    const dry = await runBin(["adopt", "--config", cfg, "--cluster-tag", "seed-prod"], env());
    expect(dry.code).toBe(0);
    const lines = dry.stdout.trim().split("\n");
    expect(lines[0]).toBe("3 servers of kubeterm-sh/autoscaler-cloudscale (tagged k8s-cluster=seed-prod and k8s-autoscaler-group) to take over for cluster seed-prod:");
    expect(lines).toContain(`  - worker-0a1b2c31 (uuid ${workers[0]}, running) -> node group worker`);
    expect(lines).toContain(`  - gpu-9f8e7d6c (uuid ${gpu}, running) -> node group gpu`);
    expect(lines).toContain("For each: set autoscaler-cloudscale-cluster=seed-prod and autoscaler-cloudscale-group=<its group>, remove k8s-autoscaler-group; every other tag stays. Nothing is created or deleted.");
    expect(lines).toContain(`  - legacy-11223344 (uuid ${legacy}, group legacy): ${cfg} has no node group legacy (add one, or rename it there)`);
    expect(lines).toContain(`  - worker-99aabbcc (uuid ${taken}, group worker): it is tagged for cluster another`);
    expect(lines.at(-1)).toBe("nothing was changed; run again with --yes to re-tag these 3");
    expect((await sim.counters())["PATCH /v1/servers/:uuid"] ?? 0).toBe(0);
    expect(new Map((await sim.servers()).map((s) => [s.uuid, s.tags]))).toEqual(before);

    const r = await runBin(["adopt", "--config", cfg, "--cluster-tag", "seed-prod", "--yes"], env());
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("adopted 3 of 3");
    expect((await sim.counters())["PATCH /v1/servers/:uuid"]).toBe(3);
    const after = new Map((await sim.servers()).map((s) => [s.uuid, s.tags]));
    for (const uuid of workers) expect(after.get(uuid)).toEqual({ "k8s-cluster": "seed-prod", team: "platform", [CLUSTER_TAG]: "seed-prod", [GROUP_TAG]: "worker" });
    expect(after.get(gpu!)).toEqual({ "k8s-cluster": "seed-prod", [CLUSTER_TAG]: "seed-prod", [GROUP_TAG]: "gpu" });
    // Everything else as it was.
    for (const uuid of [legacy!, otherSeed!, taken!, stranger!]) expect(after.get(uuid)).toEqual(before.get(uuid)!);

    // Again: nothing left to take over.
    const again = await runBin(["adopt", "--config", cfg, "--cluster-tag", "seed-prod", "--yes"], env());
    expect(again.code).toBe(0);
    expect(again.stdout).not.toContain("to take over for cluster");
    expect((await sim.counters())["PATCH /v1/servers/:uuid"]).toBe(3);

    // The provider now counts them in their groups, by the servers' own (old) names.
    const serve = await startServe({ configPath: cfg, apiUrl: sim.apiUrl });
    const client = connect(serve.port);
    try {
      await client.call("Refresh");
      expect(await targetSize(client, "worker")).toBe(2);
      expect(await targetSize(client, "gpu")).toBe(1);
      expect((await instances(client, "worker")).map((i) => i.id).sort()).toEqual(workers.map((u) => `cloudscale://${u}`).sort());
      const byName = await client.call("NodeGroupForNode", { node: { name: "worker-0a1b2c31", providerID: "" } });
      expect(byName.nodeGroup.id).toBe("worker");
    } finally {
      client.close();
      await serve.stop();
    }
  }, 60_000);

  test("without --cluster-tag every server with the old group tag counts; --help; no token", async () => {
    await sim.reset();
    const cfg = await converted();
    await sim.seed({ name: "worker-aaaa0001", flavor: "flex-8-2", zone: "lpg1", tags: seedTags("seed-prod", "worker") });
    await sim.seed({ name: "worker-aaaa0002", flavor: "flex-8-2", zone: "lpg1", tags: { "k8s-autoscaler-group": "worker" } });
    const dry = await runBin(["adopt", "--config", cfg], env());
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain("2 servers of kubeterm-sh/autoscaler-cloudscale (tagged k8s-autoscaler-group (any k8s-cluster; --cluster-tag narrows it)) to take over");
    // A group that would end above its max is named (worker: max 4 after convert).
    await sim.seed({ count: 3, name: "worker-bbbb000{i}", flavor: "flex-8-2", zone: "lpg1", tags: seedTags("seed-prod", "worker") });
    const over = await runBin(["adopt", "--config", cfg], env());
    expect(over.stdout).toContain("note: node group worker will have 5 servers, above its max 4");
    const h = await runBin(["adopt", "--help"]);
    expect(h.code).toBe(0);
    expect(h.stdout).toContain("Usage: autoscaler-cloudscale adopt --config FILE [--cluster-tag TAG] [--yes]");
    const noToken = await runBin(["adopt", "--config", cfg], { CLOUDSCALE_API_URL: sim.apiUrl });
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toContain("no API token");
  }, 30_000);
});
