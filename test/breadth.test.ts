// One configuration entry spanning flavors and zones, through the compiled binary:
// `validate` shows the expansion and checks it against the simulator's flavors and
// zones; `template` prints the expanded groups' templates (zone siblings differ only
// in zone, region and host name); `serve` answers CA (grpc-js) with the expanded
// groups, creates their servers in the right flavor and zone, and a GPU flavor's
// node gets exactly the GPU label its template shows.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import protobuf from "protobufjs";
import { join } from "node:path";
import { parse, parseAllDocuments } from "yaml";
import { connect, type Client } from "./helpers/grpc";
import { BIN, TEST_TOKEN, record, requireBinary, startServe, startSim, until, writeConfig, type ServeProc, type SimProc } from "./helpers/procs";
import { TALOS_WORKER } from "./helpers/provider";

const root = new protobuf.Root();
root.resolvePath = (_origin, target) => join(import.meta.dir, "../proto", target);
root.loadSync("k8s.io/api/core/v1/generated.proto", { keepCase: true });
const NodeType = root.lookupType("k8s.io.api.core.v1.Node");

function run(args: string[], env: Record<string, string> = {}) {
  requireBinary();
  const r = Bun.spawnSync([BIN, ...args], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env }, stdout: "pipe", stderr: "pipe" });
  const out = { code: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
  record(out.stdout + out.stderr);
  return out;
}

const indent = (text: string, n: number) => text.split("\n").map((l) => `${" ".repeat(n)}${l}`).join("\n");

const CONFIG = `clusterName: br
startupGrace: 0s
prices: {flex-16-4: 0.5}
nodeGroups:
  - name: web
    flavors: [flex-8-2, flex-16-4]
    zones: [lpg1, rma1]
    image: custom:talos-1.13.2
    min: 0
    max: 4
    labels: {tier: web}
    taints: [{key: dedicated, value: web, effect: NoSchedule}]
    overrides:
      - {zone: rma1, max: 2}
      - {flavor: flex-16-4, zone: lpg1, min: 1, max: 3}
    userData: |
${indent(TALOS_WORKER, 6)}
  - name: gpu
    flavor: gpu2-256-32-2-400
    zones: [lpg1, rma1]
    image: custom:talos-1.13.2
    min: 0
    max: 2
    pricePerHour: 4.5
    userData: |
${indent(TALOS_WORKER, 6)}
`;

const EXPANDED: [string, number, number][] = [
  ["web-flex-8-2-lpg1", 0, 4],
  ["web-flex-8-2-rma1", 0, 2],
  ["web-flex-16-4-lpg1", 1, 3],
  ["web-flex-16-4-rma1", 0, 2],
  ["gpu-gpu2-256-32-2-400-lpg1", 0, 2],
  ["gpu-gpu2-256-32-2-400-rma1", 0, 2],
];

/** A template's labels without the ones CA's balancing ignores (zone, region, host name). */
function comparable(labels: Record<string, string>) {
  const { "topology.kubernetes.io/zone": _z, "topology.kubernetes.io/region": _r, "kubernetes.io/hostname": _h, ...rest } = labels;
  return rest;
}

let sim: SimProc;
let configPath: string;
const api = () => ({ CLOUDSCALE_API_TOKEN: TEST_TOKEN, CLOUDSCALE_API_URL: sim.apiUrl });

beforeAll(async () => {
  sim = await startSim(["--boot-seconds", "0"]);
  configPath = writeConfig(CONFIG);
});
afterAll(async () => {
  await sim?.stop();
});

describe("validate", () => {
  test("shows the node groups an entry expands to, with each group's min and max after overrides", () => {
    const r = run(["validate", "--config", configPath, "--offline"]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split("\n").slice(1);
    expect(lines.map((l) => l.trim().split(/\s+/)[0])).toEqual(EXPANDED.map(([n]) => n));
    expect(lines[2]).toMatch(/^ {2}web-flex-16-4-lpg1 +flex-16-4 in lpg1, min 1, max 3 {2}\(from nodeGroups\[0\]\)$/);
  });

  test("every configuration mistake of an expanded entry at once, each with its path", () => {
    const bad = writeConfig(`clusterName: a-long-cluster-name
nodeGroups:
  - name: workers
    flavors: [flex-8-2, Flex-16-4, flex-8-2]
    zones: [lpg1, rma1]
    image: debian-13
    min: 0
    max: 3
  - {name: other, flavor: flex-8-2, zone: lpg1, zones: [rma1], image: debian-13, min: 0, max: 1}
`);
    const schema = run(["validate", "--config", bad, "--offline"]);
    expect(schema.code).toBe(1);
    expect(schema.stderr).toContain("nodeGroups[0].flavors[1]: Flex-16-4 is not a flavor");
    expect(schema.stderr).toContain("nodeGroups[1]: set either zone or zones, not both");

    const semantic = writeConfig(`clusterName: a-longer-cluster-name
nodeGroups:
  - name: the-workers
    flavors: [flex-8-2, gpu2-128-16-1-200, flex-8-2]
    zones: [lpg1, rma1]
    image: debian-13
    min: 0
    max: 3
    serverGroups: [0b6c2f64-5d7e-4c55-9a55-1e0c2a7a0001]
    overrides:
      - {flavor: flex-8-2, max: 2}
      - {zone: rma1, max: 1}
      - {flavor: plus-8-2, min: 1}
  - {name: the-workers-flex-8-2-lpg1, flavor: flex-8-2, zone: lpg1, image: debian-13, min: 0, max: 1}
`);
    const r = run(["validate", "--config", semantic, "--offline"]);
    expect(r.code).toBe(1);
    const problems = r.stderr.split("\n").filter((l) => l.startsWith("  - ")).map((l) => l.slice(4));
    expect(problems).toEqual([
      "nodeGroups[0].flavors[2]: flex-8-2 is listed twice (also nodeGroups[0].flavors[0]); each flavor once",
      "nodeGroups[0].overrides[2].flavor: plus-8-2 is not one of this entry's flavors (flex-8-2, gpu2-128-16-1-200)",
      "nodeGroups[0].overrides[1]: sets max for flex-8-2 in rma1, as overrides[0] does; add an override naming both flavor flex-8-2 and zone rma1 to decide",
      // 21 + 1 + 34 + 9: the longest name, with a gpu2 flavor, is too long by 2; the entry's name may have 9 characters.
      'nodeGroups[0].name: server names "<clusterName>-<name>-<flavor>-<zone>-<8 random>" of node group the-workers-gpu2-128-16-1-200-lpg1 (the longest this entry expands to) would be 65 characters; host names allow 63: shorten name to at most 9 characters, or clusterName',
      'nodeGroups[1].name: "the-workers-flex-8-2-lpg1" is used by another node group (nodeGroups[0]: flex-8-2 in lpg1); names must be unique',
      // Every group of the entry joins the one server group: 2 + 1 + 3 + 1 servers cannot fit in 4.
      'nodeGroups[0].serverGroups[0]: server group "0b6c2f64-5d7e-4c55-9a55-1e0c2a7a0001" holds at most 4 servers (the API refuses a 5th), but the node groups placed in it can grow to 7 together (the-workers-flex-8-2-lpg1 max 2, the-workers-flex-8-2-rma1 max 1, the-workers-gpu2-128-16-1-200-lpg1 max 3, the-workers-gpu2-128-16-1-200-rma1 max 1); lower their max, or give each group its own server group',
    ]);
  });

  test("against the API: each flavor in each zone, the image in each zone", () => {
    expect(run(["validate", "--config", configPath], api()).code).toBe(0);
    const cfg = writeConfig(`clusterName: br
nodeGroups:
  - {name: gpu, flavors: [flex-8-2, gpu2-128-16-1-200, flex-99-9], zones: [lpg1, rma1], image: custom:talos-1.13.2, min: 0, max: 1}
`);
    const r = run(["validate", "--config", cfg], api());
    expect(r.code).toBe(1);
    const problems = r.stdout.split("\n").filter((l) => l.startsWith("  - ")).map((l) => l.slice(4));
    // Said once per key, not once per expanded group.
    expect(problems).toEqual([
      "nodeGroups[0].flavors[1]: gpu2-128-16-1-200 is not offered in zone lpg1 (nodeGroups[0].zones[0]); it is offered in rma1",
      "nodeGroups[0].flavors[2]: flex-99-9 is not a flavor (the API lists no such flavor)",
    ]);
  });
});

describe("template", () => {
  test("an entry's groups: zone siblings differ only in zone, region and host name; flavors differ in size", () => {
    const r = run(["template", "--config", configPath, "web", "-o", "json"], api());
    expect(r.code).toBe(0);
    const list = JSON.parse(r.stdout);
    expect(list.kind).toBe("List");
    const byName = Object.fromEntries(list.items.map((n: any) => [n.metadata.name, n]));
    expect(Object.keys(byName)).toEqual(EXPANDED.slice(0, 4).map(([n]) => `template-br-${n}`));
    for (const flavor of ["flex-8-2", "flex-16-4"]) {
      const lpg = byName[`template-br-web-${flavor}-lpg1`];
      const rma = byName[`template-br-web-${flavor}-rma1`];
      expect(lpg.metadata.labels["topology.kubernetes.io/zone"]).toBe("lpg1");
      expect(rma.metadata.labels["topology.kubernetes.io/zone"]).toBe("rma1");
      expect(rma.metadata.labels["topology.kubernetes.io/region"]).toBe("rma");
      expect(comparable(rma.metadata.labels)).toEqual(comparable(lpg.metadata.labels));
      expect(comparable(lpg.metadata.labels)).toEqual({
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": flavor,
        "autoscaler-cloudscale/node-group": "web",
        tier: "web",
      });
      expect(rma.status).toEqual(lpg.status);
      expect(rma.spec).toEqual(lpg.spec);
    }
    expect(byName["template-br-web-flex-16-4-lpg1"].status.capacity.cpu).toBe("4");
    expect(byName["template-br-web-flex-8-2-lpg1"].status.capacity.cpu).toBe("2");
    // One group by its own name prints a Node; no name prints every group as a YAML stream.
    expect(parse(run(["template", "--config", configPath, "web-flex-8-2-rma1"], api()).stdout).kind).toBe("Node");
    const all = parseAllDocuments(run(["template", "--config", configPath], api()).stdout).map((d) => d.toJS());
    expect(all.map((n) => n.metadata.name)).toEqual(EXPANDED.map(([n]) => `template-br-${n}`));
  });

  test("a GPU flavor's template: its GPUs and the GPU label, from the API's flavor list", () => {
    const r = run(["template", "--config", configPath, "gpu-gpu2-256-32-2-400-rma1", "-o", "json"], api());
    expect(r.code).toBe(0);
    const node = JSON.parse(r.stdout);
    expect(node.status.capacity["nvidia.com/gpu"]).toBe("2");
    expect(node.status.allocatable["nvidia.com/gpu"]).toBe("2");
    expect(node.status.capacity.cpu).toBe("32");
    expect(node.metadata.labels["autoscaler-cloudscale/gpu-type"]).toBe("nvidia-rtx-pro-6000-max-q");
    // Without the API the slug cannot say which GPU it is: no template rather than a wrong one.
    const offline = run(["template", "--config", configPath, "gpu"]);
    expect(offline.code).not.toBe(0);
    expect(offline.stderr).toContain("GPU flavors need it");
  });
});

describe("serve", () => {
  let serve: ServeProc;
  let ca: Client;
  beforeAll(async () => {
    serve = await startServe({ configPath, apiUrl: sim.apiUrl });
    ca = connect(serve.port);
  });
  afterAll(async () => {
    ca?.close();
    await serve?.stop();
  });
  const templateOf = async (id: string) => NodeType.toObject(NodeType.decode((await ca.call("NodeGroupTemplateNodeInfo", { id })).nodeBytes)) as any;

  test("NodeGroups lists every expanded group with its min and max; its template is what `template` prints", async () => {
    const { nodeGroups } = await ca.call("NodeGroups");
    expect(nodeGroups.map((g: any) => [g.id, g.minSize, g.maxSize])).toEqual(EXPANDED);
    const printed = JSON.parse(run(["template", "--config", configPath, "web-flex-16-4-rma1", "-o", "json"], api()).stdout);
    const served = await templateOf("web-flex-16-4-rma1");
    expect(served.metadata.labels).toEqual(printed.metadata.labels);
    const strings = (m: Record<string, { string: string }>) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, v.string]));
    expect(strings(served.status.capacity)).toEqual(printed.status.capacity);
    expect(strings(served.status.allocatable)).toEqual(printed.status.allocatable);
  });

  test("template nodes are priced by their entry and flavor: the entry's pricePerHour, else the flavor's price", async () => {
    const hour = { startTimestamp: { seconds: 1_800_000_000 }, endTimestamp: { seconds: 1_800_003_600 } };
    const price = async (id: string) => (await ca.call("PricingNodePrice", { node: { name: "x", labels: (await templateOf(id)).metadata.labels }, ...hour })).price;
    expect(await price("gpu-gpu2-256-32-2-400-lpg1")).toBeCloseTo(4.5, 9);
    expect(await price("web-flex-16-4-rma1")).toBeCloseTo(0.5, 9);
    expect(await price("web-flex-8-2-lpg1")).toBeLessThan(0.5);
  });

  test("GPU end to end: the server of a GPU group is created in its flavor and zone, and its node gets the label its template shows", async () => {
    const template = await templateOf("gpu-gpu2-256-32-2-400-lpg1");
    const { label } = await ca.call("GPULabel");
    const gpuType = template.metadata.labels[label];
    expect(gpuType).toBe("nvidia-rtx-pro-6000-max-q");
    expect(template.status.capacity["nvidia.com/gpu"].string).toBe("2");
    expect(Object.keys((await ca.call("GetAvailableGPUTypes")).gpuTypes)).toEqual([gpuType]);

    await ca.call("Refresh");
    await ca.call("NodeGroupIncreaseSize", { id: "gpu-gpu2-256-32-2-400-lpg1", delta: 1 });
    const [server] = await until("the GPU server in the simulator", async () => {
      const s = await sim.ours("br", "gpu-gpu2-256-32-2-400-lpg1");
      return s.length === 1 && s;
    });
    expect(server!.name).toMatch(/^br-gpu-gpu2-256-32-2-400-lpg1-[a-z0-9]{8}$/);
    expect(server!.flavor.slug).toBe("gpu2-256-32-2-400");
    expect(server!.zone.slug).toBe("lpg1");
    // The node registers with the labels the user-data patch gives it: exactly the template's own.
    const machine = parse(server!.user_data!).machine;
    const templateLabels = comparable(template.metadata.labels);
    for (const k of ["kubernetes.io/os", "kubernetes.io/arch", "node.kubernetes.io/instance-type"]) delete templateLabels[k]; // the kubelet's own
    expect(machine.nodeLabels).toEqual(templateLabels);
    expect(machine.nodeLabels[label]).toBe(gpuType);
    expect(machine.network.hostname).toBe(server!.name);
  });
});
