// `validate` against the simulator over real HTTP: what exists passes, what does
// not is named by its configuration key, and a list that fails is reported as a
// check that could not run. Expanded entries are checked group by group: each
// flavor and image in each zone, server groups by UUID, in the zone, with room.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { createClient } from "../src/cloudscale";
import { parseConfig } from "../src/config";
import { startSimulator, type Simulator } from "../src/sim/server";
import { CLUSTER_TAG, GROUP_TAG } from "../src/types";
import { validateAgainstApi } from "../src/validate";

let sim: Simulator;
beforeAll(async () => {
  sim = await startSimulator({
    listen: "127.0.0.1:0",
    // A custom image only in lpg1, and a flavor only in rma1, as the API may well have them.
    seed: {
      customImages: [{ uuid: "0b6c2f64-5d7e-4c55-9a55-1e0c2a7a0001", name: "Talos lpg", slug: "talos-lpg-only", zones: [{ slug: "lpg1" }] } as never],
      flavors: [{ slug: "plus-48-12", name: "Plus-48-12", vcpu_count: 12, memory_gb: 48, gpu: null, zones: [{ slug: "rma1" }] }],
    },
  });
});
afterAll(async () => {
  await sim?.stop();
});
beforeEach(() => {
  sim.faults.reset();
  sim.state.servers.clear();
  sim.state.serverGroups.clear();
});

const client = () => createClient({ url: sim.apiUrl, token: "t", attempts: 1 });
const config = parseConfig(`clusterName: c
nodeGroups:
  - {name: talos, flavor: flex-8-2, image: custom:talos-1.13.2, zone: lpg1, min: 0, max: 3}
  - {name: nope, flavor: flex-8-2, image: custom:nope, zone: lpg1, min: 0, max: 3}
  - {name: debian, flavor: flex-8-2, image: debian-13, zone: lpg1, min: 0, max: 3}
`);

function serverGroup(name: string, zone: string): string {
  const r = sim.state.createServerGroup({ name, zone });
  if (!r.ok) throw new Error(JSON.stringify(r.body));
  return r.value.uuid;
}

describe("validateAgainstApi", () => {
  test("an existing custom image passes, a missing one is named", async () => {
    expect(await validateAgainstApi(config, client())).toEqual(["nodeGroups[1].image: custom:nope does not exist among the custom images"]);
  });

  test("when the custom images cannot be listed, those checks say they could not run; public images are still checked", async () => {
    sim.faults.failNext("GET", "/v1/custom-images", 500);
    const problems = await validateAgainstApi(config, client());
    expect(problems).toHaveLength(2);
    expect(problems[0]).toStartWith("nodeGroups[0].image: could not check custom:talos-1.13.2: the custom images could not be listed (listing custom images: HTTP 500");
    expect(problems[1]).toStartWith("nodeGroups[1].image: could not check custom:nope");
    expect(problems.join("\n")).not.toContain("does not exist");
  });

  test("an expanded entry: every flavor in every zone, the image in every zone, each said once with its key", async () => {
    const expanded = parseConfig(`clusterName: c
nodeGroups:
  - name: ok
    flavors: [flex-8-2, flex-16-4]
    zones: [lpg1, rma1]
    image: custom:talos-1.13.2
    min: 0
    max: 3
  - name: mixed
    flavors: [flex-8-2, gpu2-128-16-1-200, flex-99-9, plus-48-12]
    zones: [lpg1, rma1]
    image: custom:talos-lpg-only
    min: 0
    max: 2
`);
    expect(expanded.nodeGroups).toHaveLength(12);
    const problems = await validateAgainstApi(expanded, client());
    expect(problems.sort()).toEqual(
      [
        "nodeGroups[1].flavors[1]: gpu2-128-16-1-200 is not offered in zone lpg1 (nodeGroups[1].zones[0]); it is offered in rma1",
        "nodeGroups[1].flavors[2]: flex-99-9 is not a flavor (the API lists no such flavor)",
        "nodeGroups[1].flavors[3]: plus-48-12 is not offered in zone lpg1 (nodeGroups[1].zones[0]); it is offered in rma1",
        "nodeGroups[1].image: custom:talos-lpg-only is not available in zone rma1 (nodeGroups[1].zones[1]); it is in lpg1",
      ].sort(),
    );
  });

  test("a zone that does not exist is named by the key that gives it, the top-level default included", async () => {
    const cfg = parseConfig("clusterName: c\nzone: xyz9\nnodeGroups:\n  - {name: a, flavor: flex-8-2, image: debian-13, min: 0, max: 1}\n  - {name: b, flavor: flex-8-2, image: debian-13, zones: [lpg1, abc1], min: 0, max: 1}\n");
    const problems = await validateAgainstApi(cfg, client());
    expect(problems).toEqual(["zone: zone xyz9 does not exist (zones: rma1, lpg1)", "nodeGroups[1].zones[1]: zone abc1 does not exist (zones: rma1, lpg1)"]);
  });

  test("server groups: must exist and be in each group's zone", async () => {
    const lpg = serverGroup("spread-lpg", "lpg1");
    const rma = serverGroup("spread-rma", "rma1");
    const cfg = parseConfig(`clusterName: c
nodeGroups:
  - name: good
    flavor: flex-8-2
    zones: [lpg1, rma1]
    image: debian-13
    min: 0
    max: 2
    serverGroups: {lpg1: [${lpg}], rma1: [${rma}]}
  - {name: wrong-zone, flavor: flex-8-2, zone: rma1, image: debian-13, min: 0, max: 1, serverGroups: [${lpg}]}
  - {name: missing, flavor: flex-8-2, zone: lpg1, image: debian-13, min: 0, max: 1, serverGroups: [0b6c2f64-5d7e-4c55-9a55-1e0c2a7a9999]}
`);
    expect(await validateAgainstApi(cfg, client())).toEqual([
      `nodeGroups[1].serverGroups[0]: server group ${lpg} (spread-lpg) is in zone lpg1, but node group wrong-zone is in rma1`,
      "nodeGroups[2].serverGroups[0]: server group 0b6c2f64-5d7e-4c55-9a55-1e0c2a7a9999 does not exist",
    ]);
  });

  test("server groups hold 4 servers: servers that are not the placed groups' own take room", async () => {
    const sg = serverGroup("spread", "lpg1");
    const cfg = parseConfig(`clusterName: c\nnodeGroups:\n  - {name: w, flavor: flex-8-2, zone: lpg1, image: debian-13, min: 0, max: 3, serverGroups: [${sg}]}\n`);
    // Our own server of group w counts within w's max; a foreign one and one of another of our groups take room.
    sim.state.seedServers([
      { name: "c-w-aaaaaaaa", zone: "lpg1", server_groups: [sg], tags: { [CLUSTER_TAG]: "c", [GROUP_TAG]: "w" } },
      { name: "someone-else", zone: "lpg1", server_groups: [sg] },
    ]);
    expect(await validateAgainstApi(cfg, client())).toEqual([]);
    sim.state.seedServers({ name: "c-old-bbbbbbbb", zone: "lpg1", server_groups: [sg], tags: { [CLUSTER_TAG]: "c", [GROUP_TAG]: "old" } });
    expect(await validateAgainstApi(cfg, client())).toEqual([
      `nodeGroups[0].serverGroups[0]: server group "${sg}" can take only 2 more servers (it holds 4, and 2 of its servers belong to no node group placed in it), but node group w can grow to 3 (its max); lower its max to 2`,
    ]);
  });
});
