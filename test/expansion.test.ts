// Expanding a configuration entry into one node group per flavor × zone: names,
// sizes with overrides, per-zone server groups, labels, and the problems only the
// whole set shows (host-name length, server-group capacity).
import { describe, expect, test } from "bun:test";
import { ConfigError, parseConfig } from "../src/config";
import { combinations, longestGroupName, overrideProblems, serverGroupCapacityProblems, sizeOf } from "../src/expansion";
import type { NodeGroupConfig } from "../src/types";

function problems(text: string): string[] {
  try {
    parseConfig(text);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  return [];
}

const groups = (text: string) => parseConfig(text).nodeGroups;

describe("names", () => {
  test("an entry with a single flavor and zone keeps its name; one with lists is named <name>-<flavor>-<zone>", () => {
    expect(combinations({ name: "w", flavor: "flex-8-2" }, "nodeGroups[0]", "lpg1")).toEqual([
      { name: "w", flavor: "flex-8-2", zone: "lpg1", flavorPath: "nodeGroups[0].flavor", zonePath: "zone" },
    ]);
    expect(combinations({ name: "w", flavor: "flex-8-2", zones: ["lpg1", "rma1"] }, "nodeGroups[3]", "lpg1").map((c) => [c.name, c.flavorPath, c.zonePath])).toEqual([
      ["w-flex-8-2-lpg1", "nodeGroups[3].flavor", "nodeGroups[3].zones[0]"],
      ["w-flex-8-2-rma1", "nodeGroups[3].flavor", "nodeGroups[3].zones[1]"],
    ]);
    // A list of one still expands: the rule depends on the keys written, not on how many values they hold.
    expect(combinations({ name: "w", flavors: ["plus-16-4"], zone: "rma1" }, "p", "lpg1").map((c) => c.name)).toEqual(["w-plus-16-4-rma1"]);
  });

  test("every expanded name is a DNS label; the longest allowed name leaves room for <cluster>- and -<8 random>", () => {
    const gs = groups("clusterName: prod\nnodeGroups:\n  - {name: w, flavors: [flex-8-2, gpu2-128-16-1-200], zones: [lpg1, rma1], image: debian-13, min: 0, max: 2}\n");
    for (const g of gs) expect(g.name).toMatch(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/);
    expect(longestGroupName("prod")).toBe(63 - 5 - 9);
    const cluster = "c".repeat(20);
    const fits = "w".repeat(longestGroupName(cluster) - "-gpu2-128-16-1-200-lpg1".length);
    expect(problems(`clusterName: ${cluster}\nnodeGroups:\n  - {name: ${fits}, flavor: gpu2-128-16-1-200, zones: [lpg1], image: debian-13, min: 0, max: 1}\n`)).toEqual([]);
    expect(problems(`clusterName: ${cluster}\nnodeGroups:\n  - {name: ${fits}x, flavor: gpu2-128-16-1-200, zones: [lpg1], image: debian-13, min: 0, max: 1}\n`)).toEqual([
      `nodeGroups[0].name: server names "<clusterName>-<name>-<flavor>-<zone>-<8 random>" of node group ${fits}x-gpu2-128-16-1-200-lpg1 (the longest this entry expands to) would be 64 characters; host names allow 63: shorten name to at most ${fits.length} characters, or clusterName`,
    ]);
  });
});

describe("sizes", () => {
  const overrides = [{ zone: "rma1", max: 2 }, { flavor: "b", min: 1 }, { flavor: "b", zone: "rma1", max: 5 }];
  test("the most specific override wins, bound by bound", () => {
    const size = (flavor: string, zone: string) => {
      const s = sizeOf({ flavor, zone }, { min: 0, max: 4 }, overrides, "p");
      return [s.min, s.max, s.minFrom, s.maxFrom];
    };
    expect(size("a", "lpg1")).toEqual([0, 4, "p.min", "p.max"]);
    expect(size("a", "rma1")).toEqual([0, 2, "p.min", "p.overrides[0].max"]);
    expect(size("b", "lpg1")).toEqual([1, 4, "p.overrides[1].min", "p.max"]);
    expect(size("b", "rma1")).toEqual([1, 5, "p.overrides[1].min", "p.overrides[2].max"]);
    expect(overrideProblems(overrides, ["a", "b"], ["lpg1", "rma1"], "p")).toEqual([]);
  });

  test("a flavor-only and a zone-only override setting the same bound need one naming both", () => {
    const clash = [{ zone: "rma1", max: 2 }, { flavor: "b", max: 3 }];
    expect(overrideProblems(clash, ["a", "b"], ["lpg1", "rma1"], "p")).toEqual([
      "p.overrides[1]: sets max for b in rma1, as overrides[0] does; add an override naming both flavor b and zone rma1 to decide",
    ]);
    expect(overrideProblems([...clash, { flavor: "b", zone: "rma1", max: 1 }], ["a", "b"], ["lpg1", "rma1"], "p")).toEqual([]);
  });

  test("an override's min above its max is named with the keys that set them", () => {
    expect(problems("clusterName: c\nnodeGroups:\n  - {name: w, flavor: flex-8-2, zones: [lpg1, rma1], image: debian-13, min: 2, max: 4, overrides: [{zone: rma1, max: 1}]}\n")).toEqual([
      "nodeGroups[0]: flex-8-2 in rma1: min (2, nodeGroups[0].min) must not be greater than max (1, nodeGroups[0].overrides[0].max)",
    ]);
    expect(problems("clusterName: c\nnodeGroups:\n  - {name: w, flavor: flex-8-2, zone: lpg1, image: debian-13, min: 0, max: 4, overrides: [{zone: lpg1, max: 1}]}\n")).toEqual([
      "nodeGroups[0].overrides: only an entry with flavors or zones has combinations to override",
    ]);
  });
});

describe("what every expanded group shares, and what is its own", () => {
  const text = `clusterName: c
prices: {flex-8-2: 0.1}
nodeGroups:
  - name: w
    flavors: [flex-8-2, plus-16-4]
    zones: [lpg1, rma1]
    image: custom:talos-1.13.2
    min: 0
    max: 2
    labels: {team: a}
    taints: [{key: k, effect: NoSchedule}]
    pricePerHour: 0.3
    options: {scaleDownUnneededTime: 5m}
    userData: "#cloud-config\\n"
    serverGroups: {lpg1: [6f1b9ad0-0000-4000-8000-00000000000a], rma1: []}
`;
  test("labels, taints, user-data, options and price are the entry's; flavor, zone and server groups each group's", () => {
    const gs = groups(text);
    expect(gs.map((g) => [g.name, g.entry, g.flavor, g.zone, g.serverGroups, g.source?.serverGroupPaths])).toEqual([
      ["w-flex-8-2-lpg1", "w", "flex-8-2", "lpg1", ["6f1b9ad0-0000-4000-8000-00000000000a"], ["nodeGroups[0].serverGroups.lpg1[0]"]],
      ["w-flex-8-2-rma1", "w", "flex-8-2", "rma1", [], []],
      ["w-plus-16-4-lpg1", "w", "plus-16-4", "lpg1", ["6f1b9ad0-0000-4000-8000-00000000000a"], ["nodeGroups[0].serverGroups.lpg1[0]"]],
      ["w-plus-16-4-rma1", "w", "plus-16-4", "rma1", [], []],
    ]);
    for (const g of gs) {
      expect([g.labels, g.taints, g.userData, g.userDataFormat, g.options?.scaleDownUnneededSeconds, g.pricePerHour]).toEqual([
        { team: "a" },
        [{ key: "k", value: "", effect: "NoSchedule" }],
        "#cloud-config\n",
        "cloud-init",
        300,
        0.3,
      ]);
    }
  });

  test("a per-zone server-group mapping must name each zone of the entry, and no other", () => {
    expect(problems(text.replace("{lpg1: [6f1b9ad0-0000-4000-8000-00000000000a], rma1: []}", "{lpg1: [6f1b9ad0-0000-4000-8000-00000000000a], rma2: []}"))).toEqual([
      "nodeGroups[0].serverGroups.rma2: rma2 is not a zone of this entry (lpg1, rma1)",
      "nodeGroups[0].serverGroups: no list for zone rma1 (write rma1: [] for none)",
    ]);
  });

  test("zone, region and instance-type labels are each group's own: a label may not contradict them", () => {
    expect(problems(text.replace("{team: a}", "{team: a, topology.kubernetes.io/zone: lpg1, node.kubernetes.io/instance-type: flex-8-2}"))).toEqual([
      "nodeGroups[0].labels.topology.kubernetes.io/zone: is set from each group's zone (lpg1, rma1); remove it",
      "nodeGroups[0].labels.node.kubernetes.io/instance-type: is set from each group's flavor (flex-8-2, plus-16-4); remove it",
    ]);
    // The same value a single group has anyway is harmless.
    expect(problems("clusterName: c\nnodeGroups:\n  - {name: w, flavor: flex-8-2, zone: rma1, image: i, min: 0, max: 1, labels: {topology.kubernetes.io/region: rma}}\n")).toEqual([]);
  });
});

describe("server groups hold at most 4 servers", () => {
  const g = (name: string, max: number, serverGroups: string[]) => ({ name, max, serverGroups }) as NodeGroupConfig;
  test("the max of every group placed in a server group must fit in it", () => {
    expect(serverGroupCapacityProblems([g("a", 4, ["x"]), g("b", 4, ["y"])])).toEqual([]);
    expect(serverGroupCapacityProblems([g("a", 5, ["x"])])).toEqual([
      'a.serverGroups[0]: server group "x" holds at most 4 servers (the API refuses a 5th), but node group a can grow to 5 (its max); lower its max to 4',
    ]);
    expect(serverGroupCapacityProblems([g("a", 2, ["x"]), g("b", 3, ["y", "x"])])).toEqual([
      'a.serverGroups[0]: server group "x" holds at most 4 servers (the API refuses a 5th), but the node groups placed in it can grow to 5 together (a max 2, b max 3); lower their max, or give each group its own server group',
    ]);
  });

  test("an entry whose max cannot fit in its server group is a configuration error", () => {
    expect(problems("clusterName: c\nnodeGroups:\n  - {name: w, flavor: flex-8-2, zone: lpg1, image: i, min: 0, max: 6, serverGroups: [6f1b9ad0-0000-4000-8000-00000000000b]}\n")).toEqual([
      'nodeGroups[0].serverGroups[0]: server group "6f1b9ad0-0000-4000-8000-00000000000b" holds at most 4 servers (the API refuses a 5th), but node group w can grow to 6 (its max); lower its max to 4',
    ]);
  });
});

describe("the keys", () => {
  test("flavor or flavors, zone or zones, reported with every schema problem at once", () => {
    expect(problems("clusterName: c\nnodeGroups:\n  - {name: a, image: i, min: 0, max: 1, colour: red}\n  - {name: b, flavor: f, flavors: [g], zone: lpg1, zones: [rma1], image: i, min: 0, max: 1}\n  - {name: c, flavors: [], image: i, min: 0, max: 1}\n")).toEqual([
      "nodeGroups[0].colour: unknown setting (check the spelling)",
      "nodeGroups[2].flavors: must list at least one flavor",
      "nodeGroups[0].flavor: is required (a flavor slug such as flex-8-2, or flavors: [...] for several)",
      "nodeGroups[1]: set either flavor or flavors, not both",
      "nodeGroups[1]: set either zone or zones, not both",
    ]);
  });

  test("server groups are given by UUID: a name would be refused by every server create", () => {
    expect(problems("clusterName: c\nnodeGroups:\n  - {name: a, flavor: flex-8-2, image: i, min: 0, max: 1, serverGroups: [spread]}\n")).toEqual([
      "nodeGroups[0].serverGroups[0]: must be a server group's UUID (servers join server groups by UUID, not by name)",
    ]);
  });

  test("a flavor that cannot be a slug is not a flavor, offline; a well-formed one is left to the API", () => {
    expect(problems("clusterName: c\nnodeGroups:\n  - {name: a, flavors: [flex-8-2, 'flex 8', Plus-8-2, flex-99-9], image: i, min: 0, max: 1}\n")).toEqual([
      "nodeGroups[0].flavors[1]: flex 8 is not a flavor (flavor slugs are lower-case letters, digits and '-', such as flex-8-2)",
      "nodeGroups[0].flavors[2]: Plus-8-2 is not a flavor (flavor slugs are lower-case letters, digits and '-', such as flex-8-2)",
    ]);
  });
});
