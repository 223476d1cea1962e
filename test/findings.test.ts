// What a running provider tells the operator about what only the operator can fix, through the
// compiled binary: this cluster's servers in no configured node group (after a group rename), and
// nodes CA asks about without a providerID (no cloud controller manager). Each is logged once,
// counted in a metric and shown by `status`, and the tests make them move.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { CLUSTER_TAG, GROUP_TAG } from "../src/types";
import type { StatusReport } from "../src/status";
import { sampleValue, scrape } from "./helpers/metrics";
import { nodeGroup, providerConfig, providers } from "./helpers/provider";
import { runBin, startSim, until, type SimProc } from "./helpers/procs";

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

const statusJson = async (port: number): Promise<StatusReport> => (await fetch(`http://127.0.0.1:${port}/status`)).json() as Promise<StatusReport>;
const countLines = (text: string, needle: string) => text.split("\n").filter((l) => l.includes(needle)).length;
const ORPHAN_LOG = "server of this cluster is in no configured node group";
const CCM_LOG = "node has no spec.providerID";

describe("servers in no configured node group, at run time", () => {
  test("logged once each, counted by group tag, shown by status; the numbers follow the cloud", async () => {
    const tags = (group: string) => ({ [CLUSTER_TAG]: "fo", [GROUP_TAG]: group });
    await sim.seed({ count: 2, name: "fo-pool-aaaa000{i}", flavor: "flex-4-2", zone: "lpg1", tags: tags("pool") });
    const [old1, old2] = await sim.seed({ count: 2, name: "fo-old-bbbb000{i}", flavor: "flex-4-2", zone: "lpg1", tags: tags("old") });
    await sim.seed({ name: "fo-gone-cccc0001", flavor: "flex-4-2", zone: "lpg1", tags: tags("gone") });
    await sim.seed({ name: "other-old-dddd0001", flavor: "flex-4-2", zone: "lpg1", tags: { [CLUSTER_TAG]: "other", [GROUP_TAG]: "old" } });
    const { s, c, healthPort } = await served.start({ apiUrl: sim.apiUrl, config: providerConfig("fo", {}, [nodeGroup()]), health: true });

    // The start's list already shows them: no call from CA needed.
    const m = await scrape(healthPort!);
    expect(sampleValue(m.families, "autoscaler_cloudscale_orphaned_servers", { group: "old" })).toBe(2);
    expect(sampleValue(m.families, "autoscaler_cloudscale_orphaned_servers", { group: "gone" })).toBe(1);
    const st = await runBin(["status", "--health", `127.0.0.1:${healthPort}`]);
    expect(st.stdout).toContain(
      "in no node group: 3 servers (gone: fo-gone-cccc0001; old: fo-old-bbbb0001, fo-old-bbbb0002): billed, and CA does not see them; keep the group's name, or run autoscaler-cloudscale cleanup (docs/reference.md#when-the-configuration-changes-servers-in-no-node-group)",
    );
    expect((await statusJson(healthPort!)).orphans.map((o) => [o.name, o.group])).toEqual([
      ["fo-gone-cccc0001", "gone"],
      ["fo-old-bbbb0001", "old"],
      ["fo-old-bbbb0002", "old"],
    ]);

    // More lists: still one warning per server.
    for (let i = 0; i < 3; i++) await c.call("Refresh");
    expect(countLines(s.output(), ORPHAN_LOG)).toBe(3);
    expect(s.output()).toMatch(new RegExp(`${ORPHAN_LOG}.*server=fo-old-bbbb0001 uuid=${old1} group=old fix="keep the group's old name, or: autoscaler-cloudscale cleanup --config FILE"`));

    // One deleted behind the provider's back: the next list says so.
    await sim.vanish(old2!);
    await c.call("Refresh");
    await until("the gauge to follow the cloud", async () => sampleValue((await scrape(healthPort!)).families, "autoscaler_cloudscale_orphaned_servers", { group: "old" }) === 1);
    expect((await runBin(["status", "--health", `127.0.0.1:${healthPort}`])).stdout).toContain("in no node group: 2 servers (gone: fo-gone-cccc0001; old: fo-old-bbbb0001)");
    // The provider never touched them.
    expect((await sim.counters())["DELETE /v1/servers/:uuid"] ?? 0).toBe(0);
  });
});

describe("nodes without a providerID (no cloud controller manager)", () => {
  test("NodeGroupForNode by name still answers, warns once per node, and the gauge and status follow", async () => {
    await sim.seed({ count: 2, name: "ccm-pool-eeee000{i}", flavor: "flex-4-2", zone: "lpg1", tags: { [CLUSTER_TAG]: "ccm", [GROUP_TAG]: "pool" } });
    const [server] = await sim.ours("ccm", "pool");
    const { s, c, healthPort } = await served.start({ apiUrl: sim.apiUrl, config: providerConfig("ccm", {}, [nodeGroup()]), health: true });
    const gauge = async () => sampleValue((await scrape(healthPort!)).families, "autoscaler_cloudscale_nodes_without_provider_id");
    expect(await gauge()).toBe(0);

    for (let i = 0; i < 3; i++) {
      const r = await c.call("NodeGroupForNode", { node: { name: "ccm-pool-eeee0001", providerID: "" } });
      expect(r.nodeGroup.id).toBe("pool");
    }
    // A node that is not one of our servers (the control plane) is no finding.
    expect((await c.call("NodeGroupForNode", { node: { name: "cp-1", providerID: "" } })).nodeGroup.id).toBe("");
    expect(await gauge()).toBe(1);
    expect(countLines(s.output(), CCM_LOG)).toBe(1);
    expect(s.output()).toMatch(new RegExp(`${CCM_LOG}: Cluster Autoscaler links nodes to servers only by providerID; install the cloudscale cloud controller manager and run kubelets with --cloud-provider=external node=ccm-pool-eeee0001 group=pool fix=docs/reference.md#the-cloud-controller-manager`));
    const st = await runBin(["status", "--health", `127.0.0.1:${healthPort}`]);
    expect(st.stdout).toContain(
      "nodes without providerID: 1 (ccm-pool-eeee0001): CA cannot link them to their servers and deletes them after --max-node-provision-time; install the cloudscale cloud controller manager (docs/reference.md#the-cloud-controller-manager)",
    );

    // The CCM caught up: the node has its providerID now, and no longer counts.
    const linked = await c.call("NodeGroupForNode", { node: { name: "ccm-pool-eeee0001", providerID: `cloudscale://${server!.uuid}` } });
    expect(linked.nodeGroup.id).toBe("pool");
    expect(await gauge()).toBe(0);
    expect((await runBin(["status", "--health", `127.0.0.1:${healthPort}`])).stdout).not.toContain("nodes without providerID");
  });
});
