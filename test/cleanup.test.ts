// Servers left in no node group by a configuration change, through the compiled binary against
// the simulator: `validate` lists them, `cleanup` explains without --yes and deletes with it,
// only servers with this cluster's tag and the tag of a group the file does not have. And, with
// a fake cloud, what cleanup does when a server's tags change between the list and the delete.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { runCleanupWith } from "../src/cleanup";
import { parseConfig } from "../src/config";
import { CloudscaleError } from "../src/cloudscale";
import { CLUSTER_TAG, GROUP_TAG, type Server } from "../src/types";
import { TEST_TOKEN, runBin, startSim, writeConfig, type SimProc } from "./helpers/procs";

let sim: SimProc;
beforeAll(async () => {
  sim = await startSim(["--boot-seconds", "0"]);
});
afterAll(async () => {
  await sim?.stop();
});

const env = () => ({ CLOUDSCALE_API_TOKEN: TEST_TOKEN, CLOUDSCALE_API_URL: sim.apiUrl });
const ours = (group: string) => ({ [CLUSTER_TAG]: "prod", [GROUP_TAG]: group });

/** The account after a rename of group "old" to "workers": who is who. */
async function seedAccount() {
  await sim.reset();
  const [w1, w2] = await sim.seed({ count: 2, name: "prod-workers-aaaa000{i}", flavor: "flex-4-1", zone: "lpg1", tags: ours("workers") });
  const [o1, o2] = await sim.seed({ count: 2, name: "prod-old-bbbb000{i}", flavor: "flex-4-1", zone: "lpg1", tags: ours("old") });
  const [check] = await sim.seed({ name: "prod-check-cccc0001", flavor: "flex-4-1", zone: "lpg1", tags: ours("check") });
  const [foreign] = await sim.seed({ name: "staging-old-dddd0001", flavor: "flex-4-1", zone: "lpg1", tags: { [CLUSTER_TAG]: "staging", [GROUP_TAG]: "old" } });
  const [clusterOnly] = await sim.seed({ name: "prod-manual-eeee0001", flavor: "flex-4-1", zone: "lpg1", tags: { [CLUSTER_TAG]: "prod" } });
  const [stranger] = await sim.seed({ name: "database-1", flavor: "flex-4-1", zone: "lpg1", tags: { team: "db" } });
  return { w1: w1!, w2: w2!, o1: o1!, o2: o2!, check: check!, foreign: foreign!, clusterOnly: clusterOnly!, stranger: stranger! };
}

const CONFIG = "clusterName: prod\nnodeGroups:\n  - {name: workers, flavor: flex-4-1, zone: lpg1, image: debian-13, min: 0, max: 5}\n";

describe("servers in no node group", () => {
  test("validate lists them, with the ways out; the file is still valid", async () => {
    const a = await seedAccount();
    const cfg = writeConfig(CONFIG);
    const v = await runBin(["validate", "--config", cfg], env());
    expect(v.code).toBe(0);
    const lines = v.stdout.trim().split("\n");
    const at = lines.indexOf("servers tagged for cluster prod in no node group of this configuration (they keep running and are billed; CA will not see them):");
    expect(at).toBeGreaterThan(0);
    expect(lines.slice(at + 1)).toEqual([
      expect.stringMatching(new RegExp(`^  - prod-old-bbbb0001 \\(uuid ${a.o1}, group old, running, created \\d{4}-.*\\)$`)),
      expect.stringMatching(new RegExp(`^  - prod-old-bbbb0002 \\(uuid ${a.o2}, group old, running, created \\d{4}-.*\\)$`)),
      `keep the group's name, or delete them after draining: autoscaler-cloudscale cleanup --config ${cfg}`,
    ]);
  });

  test("cleanup explains and deletes nothing without --yes; with --yes it deletes exactly the two", async () => {
    const a = await seedAccount();
    const cfg = writeConfig(CONFIG);
    await sim.resetCounters();
    const dry = await runBin(["cleanup", "--config", cfg], env());
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain(`2 servers of cluster prod are in no node group of ${cfg} (billed, and Cluster Autoscaler does not see them):`);
    expect(dry.stdout).toContain("drain them first (kubectl drain NAME --ignore-daemonsets --delete-emptydir-data)");
    expect(dry.stdout).toContain("nothing was deleted; run again with --yes to delete these 2");
    expect((await sim.counters())["DELETE /v1/servers/:uuid"] ?? 0).toBe(0);

    const r = await runBin(["cleanup", "--config", cfg, "--yes"], env());
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`  deleted   prod-old-bbbb0001 (uuid ${a.o1}, group old)`);
    expect(r.stdout).toContain(`  deleted   prod-old-bbbb0002 (uuid ${a.o2}, group old)`);
    expect(r.stdout).toContain("deleted 2, already gone 0, left alone 0, failed 0 of 2");
    expect((await sim.counters())["DELETE /v1/servers/:uuid"]).toBe(2);
    const left = (await sim.servers()).map((s) => s.uuid).sort();
    expect(left).toEqual([a.w1, a.w2, a.check, a.foreign, a.clusterOnly, a.stranger].sort());

    const again = await runBin(["cleanup", "--config", cfg, "--yes"], env());
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`no server of cluster prod is in a node group missing from ${cfg} (4 listed); nothing to delete`);
  });

  test("a server the API will not delete yet (changing) is tried again until it can be", async () => {
    await sim.reset();
    const [busy] = await sim.seed({ name: "prod-old-ffff0001", flavor: "flex-4-1", zone: "lpg1", tags: ours("old") });
    await sim.control(`/_sim/servers/${busy}/status`, { status: "changing", then: "running", afterSeconds: 2 });
    const r = await runBin(["cleanup", "--config", writeConfig(CONFIG), "--yes", "--wait-delete", "30s"], env());
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("  waiting   prod-old-ffff0001: the API does not delete it yet (changing)");
    expect(r.stdout).toContain(`  deleted   prod-old-ffff0001 (uuid ${busy}, group old)`);
    expect(await sim.servers()).toEqual([]);
    // With no time to wait, it says what is left and exits 1.
    const [stuck] = await sim.seed({ name: "prod-old-ffff0002", flavor: "flex-4-1", zone: "lpg1", tags: ours("old") });
    await sim.control(`/_sim/servers/${stuck}/status`, { status: "changing" });
    const f = await runBin(["cleanup", "--config", writeConfig(CONFIG), "--yes", "--wait-delete", "0s"], env());
    expect(f.code).toBe(1);
    expect(f.stdout).toContain("still there: prod-old-ffff0002; run cleanup again, or delete them in the control panel");
  });

  test("--help, a missing token, a bad duration", async () => {
    const h = await runBin(["cleanup", "--help"]);
    expect(h.code).toBe(0);
    expect(h.stdout).toContain("Usage: autoscaler-cloudscale cleanup --config FILE [--yes]");
    const noToken = await runBin(["cleanup", "--config", writeConfig(CONFIG)], { CLOUDSCALE_API_URL: sim.apiUrl });
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toContain("no API token");
    const bad = await runBin(["cleanup", "--config", writeConfig(CONFIG), "--wait-delete", "soon"], env());
    expect(bad.code).toBe(2);
  });
});

describe("cleanup's checks just before each delete (fake cloud)", () => {
  const config = parseConfig(CONFIG);
  const server = (uuid: string, group: string, cluster = "prod"): Server =>
    ({ uuid, name: `prod-${group}-${uuid}`, status: "running", tags: { [CLUSTER_TAG]: cluster, [GROUP_TAG]: group }, created_at: "2026-12-01T00:00:00Z" }) as unknown as Server;

  test("a server whose tags changed since the list, or that is gone, is not deleted", async () => {
    const deleted: string[] = [];
    const now: Record<string, Server | null> = {
      a: server("a", "old"),
      b: server("b", "workers"), // moved into a configured group since the list
      c: server("c", "old", "staging"), // another cluster's now
      d: null, // gone
    };
    const lines: string[] = [];
    const code = await runCleanupWith({
      config,
      configPath: "config.yaml",
      yes: true,
      waitDeleteMs: 0,
      print: (l) => lines.push(l),
      cloud: {
        listServers: async () => [server("a", "old"), server("b", "old"), server("c", "old"), server("d", "old")],
        getServer: async (uuid) => now[uuid] ?? null,
        deleteServer: async (uuid) => {
          deleted.push(uuid);
          return "deleted";
        },
      },
    });
    expect(deleted).toEqual(["a"]);
    expect(lines).toContain("  skipped   prod-old-b: its tags changed since the list (cluster prod, group workers); left alone");
    expect(lines).toContain("  skipped   prod-old-c: its tags changed since the list (cluster staging, group old); left alone");
    expect(lines).toContain("  gone      prod-old-d: already deleted");
    expect(lines).toContain("deleted 1, already gone 1, left alone 2, failed 0 of 4");
    expect(code).toBe(0);
  });

  test("a refusal that is not 'busy' is not tried again", async () => {
    let tries = 0;
    const lines: string[] = [];
    const code = await runCleanupWith({
      config,
      configPath: "config.yaml",
      yes: true,
      waitDeleteMs: 60_000,
      print: (l) => lines.push(l),
      cloud: {
        listServers: async () => [server("a", "old")],
        getServer: async () => server("a", "old"),
        deleteServer: async () => {
          tries++;
          throw new CloudscaleError("auth", "deleting server a: HTTP 403: read-only token", 403);
        },
      },
    });
    expect({ code, tries }).toEqual({ code: 1, tries: 1 });
    expect(lines).toContain("  FAILED    prod-old-a: deleting server a: HTTP 403: read-only token");
  });
});
