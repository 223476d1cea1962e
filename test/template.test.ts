import { describe, expect, test } from "bun:test";
import protobuf from "protobufjs";
import { join } from "node:path";
import { GPU_LABEL, GPU_RESOURCE, NODE_GROUP_LABEL, type Flavor, type NodeGroupConfig } from "../src/types";
import { resolveGroup } from "../src/resolved-group";
import { GiB, MiB, parseBytes, parseCpuMillis } from "../src/quantity";
import {
  availableGpuTypes,
  defaultReservations,
  ephemeralStorageCapacityBytes,
  gpuType,
  kubeReservedCpuMillis,
  kubeReservedMemoryBytes,
  memoryCapacityBytes,
  nodeLabels,
  regionOfZone,
  templateNode,
  templateNodeBytes,
  templateResources,
} from "../src/template";

// An independent decoder: protobufjs reading k8s.io/api's generated.proto (what CA's Go code is generated from).
const k8s = new protobuf.Root();
k8s.resolvePath = (_origin, target) => join(import.meta.dir, "../proto", target);
k8s.loadSync("k8s.io/api/core/v1/generated.proto", { keepCase: true });
const K8sNode = k8s.lookupType("k8s.io.api.core.v1.Node");

const flex82: Flavor = {
  slug: "flex-8-2",
  name: "Flex-8-2",
  vcpu_count: 2,
  memory_gb: 8,
  gpu: null,
  zones: [{ slug: "rma1" }, { slug: "lpg1" }],
};

const gpuFlavor: Flavor = {
  slug: "gpu2-128-16-1-200",
  name: "GPU2-128-16-1-200",
  vcpu_count: 16,
  memory_gb: 128,
  gpu: { name: "NVIDIA RTX PRO 6000 Max-Q", count: 1, vram_per_gpu_gb: 96, total_vram_gb: 96 },
  zones: [{ slug: "rma1" }],
};

function group(flavor: Flavor, over: Partial<NodeGroupConfig> = {}): NodeGroupConfig {
  return {
    name: "workers",
    flavor: flavor.slug,
    image: "custom:talos-1.13.2",
    zone: "rma1",
    min: 0,
    max: 5,
    volumeSizeGb: 50,
    userData: "",
    userDataFormat: "none",
    labels: { "example.com/team": "a" },
    taints: [
      { key: "dedicated", value: "batch", effect: "NoSchedule" },
      { key: "example.com/spot", value: "", effect: "PreferNoSchedule" },
    ],
    serverGroups: [],
    sshKeys: [],
    tags: {},
    reservationOverrides: {},
    ...over,
  };
}

// --- minimal protobuf wire reader (to check field numbers independently of protobuf-es)

type Field = { no: number; wt: number; bytes?: Uint8Array; varint?: bigint };

function readVarint(buf: Uint8Array, pos: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    const b = buf[pos++]!;
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return [result, pos];
    shift += 7n;
  }
}

function fields(buf: Uint8Array): Field[] {
  const out: Field[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const [tag, p1] = readVarint(buf, pos);
    pos = p1;
    const no = Number(tag >> 3n);
    const wt = Number(tag & 7n);
    if (wt === 0) {
      const [v, p2] = readVarint(buf, pos);
      out.push({ no, wt, varint: v });
      pos = p2;
    } else if (wt === 2) {
      const [len, p2] = readVarint(buf, pos);
      out.push({ no, wt, bytes: buf.subarray(p2, p2 + Number(len)) });
      pos = p2 + Number(len);
    } else {
      throw new Error(`unexpected wire type ${wt}`);
    }
  }
  return out;
}

const text = (b: Uint8Array | undefined) => new TextDecoder().decode(b);
const only = (fs: Field[], no: number) => {
  const f = fs.filter((x) => x.no === no);
  expect(f.length).toBe(1);
  return f[0]!;
};
/** Decodes a map<string, Quantity> field (entries key=1, value=2 → Quantity.string=1) into a record. */
function quantityMap(fs: Field[], no: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of fs.filter((x) => x.no === no)) {
    const entry = fields(e.bytes!);
    const key = text(only(entry, 1).bytes);
    const q = fields(only(entry, 2).bytes!);
    out[key] = text(only(q, 1).bytes);
  }
  return out;
}
function stringMap(fs: Field[], no: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of fs.filter((x) => x.no === no)) {
    const entry = fields(e.bytes!);
    out[text(only(entry, 1).bytes)] = text(only(entry, 2).bytes);
  }
  return out;
}

// A strict re-statement of Go's resource.ParseQuantity grammar.
const GO_QUANTITY = /^[+-]?(\d+|\d+\.\d*|\.\d+)([KMGTPE]i|[eE][+-]?\d+|[numkMGTPE]?)$/;

describe("reservations", () => {
  test("GKE CPU tiers", () => {
    expect(kubeReservedCpuMillis(1)).toBe(60);
    expect(kubeReservedCpuMillis(2)).toBe(70);
    expect(kubeReservedCpuMillis(4)).toBe(80);
    expect(kubeReservedCpuMillis(8)).toBe(90);
    expect(kubeReservedCpuMillis(16)).toBe(110);
    expect(kubeReservedCpuMillis(96)).toBe(310);
  });

  test("GKE memory tiers", () => {
    expect(kubeReservedMemoryBytes(512 * MiB)).toBe(255 * MiB);
    expect(kubeReservedMemoryBytes(4 * GiB)).toBe(1024 * MiB);
    expect(kubeReservedMemoryBytes(8 * GiB)).toBe(1024 * MiB + 820 * MiB); // 0.8 GiB = 819.2 MiB, rounded up
    expect(kubeReservedMemoryBytes(16 * GiB)).toBe(Math.ceil((1 + 0.8 + 0.8) * 1024) * MiB);
    expect(kubeReservedMemoryBytes(128 * GiB)).toBe(Math.ceil((2.6 + 112 * 0.06) * 1024) * MiB);
    expect(kubeReservedMemoryBytes(192 * GiB)).toBe(Math.ceil((2.6 + 6.72 + 64 * 0.02) * 1024) * MiB);
  });

  test("defaults for flex-8-2", () => {
    const r = defaultReservations(flex82);
    expect(r).toEqual({
      cpuMillis: 70 + 50,
      memoryBytes: 1844 * MiB + 384 * MiB,
      evictionMemoryBytes: 100 * MiB,
      ephemeralStorageBytes: 256 * MiB,
      evictionNodefsFraction: 0.1,
      maxPods: 110,
    });
  });
});

describe("capacity", () => {
  test("memory: nominal GiB minus 2% + 128 MiB, whole MiB", () => {
    expect(memoryCapacityBytes(flex82)).toBe(Math.floor(8192 - 8192 * 0.02 - 128) * MiB); // 7900 MiB
    expect(memoryCapacityBytes(flex82)).toBe(7900 * MiB);
    expect(memoryCapacityBytes(flex82)).toBeLessThan(8 * GiB);
  });
  test("ephemeral storage: volume GiB minus 2 GiB + 2%, whole MiB", () => {
    expect(ephemeralStorageCapacityBytes(50)).toBe(Math.floor(51200 - 1024 - 2048) * MiB);
    expect(ephemeralStorageCapacityBytes(10)).toBe(Math.floor(10240 - 204.8 - 2048) * MiB);
  });
  test("allocatable never negative", () => {
    const g = group(flex82, { reservationOverrides: { cpuMillis: 10_000, memoryBytes: 64 * GiB, ephemeralStorageBytes: 1024 * GiB } });
    const { allocatable } = templateResources(resolveGroup(g, flex82));
    expect(allocatable.cpuMillis).toBe(0);
    expect(allocatable.memoryBytes).toBe(0);
    expect(allocatable.ephemeralStorageBytes).toBe(0);
    expect(allocatable.pods).toBe(110);
  });
});

describe("templateNode", () => {
  const g = group(flex82);
  const node = templateNode(resolveGroup(g, flex82), "prod");
  const LABELS = {
    "kubernetes.io/os": "linux",
    "kubernetes.io/arch": "amd64",
    "node.kubernetes.io/instance-type": "flex-8-2",
    "topology.kubernetes.io/region": "rma",
    "topology.kubernetes.io/zone": "rma1",
    "kubernetes.io/hostname": "template-prod-workers",
    [NODE_GROUP_LABEL]: "workers",
    "example.com/team": "a",
  };

  test("name and labels", () => {
    expect(node.metadata?.name).toBe("template-prod-workers");
    expect(node.metadata?.labels).toEqual(LABELS);
  });

  test("configured labels override the built-in ones", () => {
    const n = templateNode(resolveGroup(group(flex82, { labels: { "node.kubernetes.io/instance-type": "custom", x: "y" } }), flex82), "c");
    expect(n.metadata?.labels["node.kubernetes.io/instance-type"]).toBe("custom");
    expect(n.metadata?.labels.x).toBe("y");
  });

  test("capacity and allocatable", () => {
    const st = node.status!;
    const cap = Object.fromEntries(Object.entries(st.capacity).map(([k, v]) => [k, v.string]));
    const alloc = Object.fromEntries(Object.entries(st.allocatable).map(([k, v]) => [k, v.string]));
    expect(cap).toEqual({ cpu: "2", memory: "7900Mi", "ephemeral-storage": "47Gi", pods: "110" });
    // cpu 2000 − 120; memory 7900 − (1844 + 384) − 100 MiB;
    // disk 48128 MiB − 256 MiB − ceil(10% of 48128 MiB) → whole MiB.
    const disk = Math.floor((48128 * MiB - 256 * MiB - Math.ceil(48128 * MiB * 0.1)) / MiB);
    expect(alloc).toEqual({ cpu: "1880m", memory: "5572Mi", "ephemeral-storage": `${disk}Mi`, pods: "110" });
    for (const v of [...Object.values(cap), ...Object.values(alloc)]) expect(v).toMatch(GO_QUANTITY);
    expect(parseCpuMillis(alloc.cpu!)).toBeLessThan(parseCpuMillis(cap.cpu!));
    expect(parseBytes(alloc.memory!)).toBeLessThan(parseBytes(cap.memory!));
  });

  test("taints, conditions, phase, nodeInfo", () => {
    expect(node.spec?.taints.map((t) => [t.key, t.value, t.effect])).toEqual([
      ["dedicated", "batch", "NoSchedule"],
      ["example.com/spot", "", "PreferNoSchedule"],
    ]);
    const conds = node.status!.conditions.map((c) => [c.type, c.status, c.reason]);
    expect(conds).toEqual([
      ["Ready", "True", "KubeletReady"],
      ["MemoryPressure", "False", "KubeletHasSufficientMemory"],
      ["DiskPressure", "False", "KubeletHasNoDiskPressure"],
      ["PIDPressure", "False", "KubeletHasSufficientPID"],
    ]);
    expect(node.status!.conditions[0]!.lastTransitionTime).toBeUndefined();
    expect(node.status!.phase).toBe("Running");
    expect(node.status!.nodeInfo?.operatingSystem).toBe("linux");
    expect(node.status!.nodeInfo?.architecture).toBe("amd64");
    expect(node.spec?.providerID).toBe("");
  });

  test("condition times only when asked", () => {
    const n = templateNode(resolveGroup(g, flex82), "prod", { now: new Date("2026-01-02T03:04:05Z") });
    const c = n.status!.conditions[0]!;
    expect(c.lastTransitionTime?.seconds).toBe(BigInt(Date.parse("2026-01-02T03:04:05Z") / 1000));
    expect(c.lastHeartbeatTime?.seconds).toBe(c.lastTransitionTime?.seconds);
  });

  test("is deterministic", () => {
    expect(Array.from(templateNodeBytes(templateNode(resolveGroup(g, flex82), "prod")))).toEqual(Array.from(templateNodeBytes(node)));
  });

  test("the bytes are the Node, as k8s.io/api's own .proto (read by protobufjs, not protobuf-es) decodes them", () => {
    const decoded = K8sNode.toObject(K8sNode.decode(templateNodeBytes(node)), { defaults: false });
    const disk = Math.floor((48128 * MiB - 256 * MiB - Math.ceil(48128 * MiB * 0.1)) / MiB);
    const q = (m: Record<string, string>) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, { string: v }]));
    const cond = (type: string, status: string, reason: string, message: string) => ({ type, status, reason, message });
    expect(decoded).toEqual({
      metadata: { name: "template-prod-workers", labels: LABELS },
      spec: {
        taints: [
          { key: "dedicated", value: "batch", effect: "NoSchedule" },
          { key: "example.com/spot", effect: "PreferNoSchedule" },
        ],
      },
      status: {
        capacity: q({ cpu: "2", memory: "7900Mi", "ephemeral-storage": "47Gi", pods: "110" }),
        allocatable: q({ cpu: "1880m", memory: "5572Mi", "ephemeral-storage": `${disk}Mi`, pods: "110" }),
        phase: "Running",
        conditions: [
          cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
          cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
          cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
          cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ],
        nodeInfo: { operatingSystem: "linux", architecture: "amd64" },
      },
    });
  });

  test("field numbers on the wire match k8s.io/api (decoded by hand)", () => {
    const top = fields(templateNodeBytes(node));
    // Node: metadata=1, spec=2, status=3, all length-delimited.
    expect(top.map((f) => [f.no, f.wt])).toEqual([
      [1, 2],
      [2, 2],
      [3, 2],
    ]);
    // ObjectMeta: name=1, labels=11 (map entries key=1, value=2).
    const meta = fields(only(top, 1).bytes!);
    expect(text(only(meta, 1).bytes)).toBe("template-prod-workers");
    expect(stringMap(meta, 11)[NODE_GROUP_LABEL]).toBe("workers");
    expect(stringMap(meta, 11)["topology.kubernetes.io/zone"]).toBe("rma1");
    // NodeSpec: taints=5 → Taint{key=1, value=2, effect=3}.
    const spec = fields(only(top, 2).bytes!);
    const taints = spec.filter((f) => f.no === 5).map((f) => fields(f.bytes!));
    expect(taints.length).toBe(2);
    expect(text(only(taints[0]!, 1).bytes)).toBe("dedicated");
    expect(text(only(taints[0]!, 2).bytes)).toBe("batch");
    expect(text(only(taints[0]!, 3).bytes)).toBe("NoSchedule");
    expect(taints[1]!.some((f) => f.no === 2)).toBe(false); // empty value left out
    // NodeStatus: capacity=1, allocatable=2 (map<string, Quantity{string=1}>), phase=3, conditions=4, nodeInfo=7.
    const status = fields(only(top, 3).bytes!);
    expect(quantityMap(status, 1)).toEqual({ cpu: "2", memory: "7900Mi", "ephemeral-storage": "47Gi", pods: "110" });
    expect(quantityMap(status, 2).cpu).toBe("1880m");
    expect(text(only(status, 3).bytes)).toBe("Running");
    const conds = status.filter((f) => f.no === 4).map((f) => fields(f.bytes!));
    expect(conds.map((c) => [text(only(c, 1).bytes), text(only(c, 2).bytes), text(only(c, 5).bytes)])[0]).toEqual([
      "Ready",
      "True",
      "KubeletReady",
    ]);
    const info = fields(only(status, 7).bytes!);
    expect(text(only(info, 9).bytes)).toBe("linux");
    expect(text(only(info, 10).bytes)).toBe("amd64");
  });
});

describe("GPU flavors", () => {
  const g = group(gpuFlavor, { volumeSizeGb: 200, labels: {}, taints: [{ key: "nvidia.com/gpu", value: "", effect: "NoSchedule" }] });
  const node = templateNode(resolveGroup(g, gpuFlavor), "prod");

  test("GPU label and resource", () => {
    expect(gpuType(gpuFlavor)).toBe("nvidia-rtx-pro-6000-max-q");
    expect(node.metadata?.labels[GPU_LABEL]).toBe("nvidia-rtx-pro-6000-max-q");
    expect(node.status?.capacity[GPU_RESOURCE]?.string).toBe("1");
    expect(node.status?.allocatable[GPU_RESOURCE]?.string).toBe("1");
    const status = fields(only(fields(templateNodeBytes(node)), 3).bytes!);
    expect(quantityMap(status, 2)[GPU_RESOURCE]).toBe("1");
  });

  test("no GPU label or resource on other flavors", () => {
    const n = templateNode(resolveGroup(group(flex82), flex82), "prod");
    expect(n.metadata?.labels[GPU_LABEL]).toBeUndefined();
    expect(n.status?.capacity[GPU_RESOURCE]).toBeUndefined();
    expect(gpuType(flex82)).toBeUndefined();
  });

  test("available GPU types", () => {
    const other: Flavor = { ...gpuFlavor, slug: "gpu-x", gpu: { ...gpuFlavor.gpu!, name: "NVIDIA L40S" } };
    expect(availableGpuTypes([flex82, gpuFlavor, other, gpuFlavor])).toEqual(["nvidia-l40s", "nvidia-rtx-pro-6000-max-q"]);
    expect(availableGpuTypes([flex82])).toEqual([]);
  });

  test("GPU label values are valid label values", () => {
    const weird: Flavor = { ...gpuFlavor, gpu: { ...gpuFlavor.gpu!, name: "  NVIDIA® H100 (80GB) SXM5 — " + "x".repeat(80) } };
    const t = gpuType(weird)!;
    expect(t.length).toBeLessThanOrEqual(63);
    expect(t).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
  });
});

describe("helpers", () => {
  test("region of zone", () => {
    expect(regionOfZone("rma1")).toBe("rma");
    expect(regionOfZone("lpg1")).toBe("lpg");
    expect(regionOfZone("xyz12")).toBe("xyz");
  });
  test("labels for the real nodes", () => {
    expect(nodeLabels(group(gpuFlavor), gpuFlavor)).toEqual({
      [NODE_GROUP_LABEL]: "workers",
      [GPU_LABEL]: "nvidia-rtx-pro-6000-max-q",
      "example.com/team": "a",
    });
  });
});

describe("Talos kubelet reservations", () => {
  const { talosReservations } = require("../src/template");
  const { talosKubeletConfig } = require("../src/talos");
  test("a default Talos worker reserves only system-reserved", () => {
    expect(talosReservations(talosKubeletConfig("version: v1alpha1\nmachine:\n  type: worker\n"))).toEqual({
      cpuMillis: 50,
      memoryBytes: 384 * 1024 ** 2,
      ephemeralStorageBytes: 256 * 1024 ** 2,
      evictionMemoryBytes: 100 * 1024 ** 2,
      evictionNodefsFraction: 0.1,
      maxPods: 110,
    });
  });
  test("the machine config's kubelet extraConfig decides", () => {
    const cfg = `version: v1alpha1
machine:
  type: worker
  kubelet:
    extraConfig:
      kubeReserved: {cpu: 100m, memory: 1Gi}
      systemReserved: {cpu: 50m, memory: 256Mi, ephemeral-storage: 1Gi}
      evictionHard: {memory.available: 200Mi, nodefs.available: 5%}
      maxPods: 64
---
apiVersion: v1alpha1
kind: HostnameConfig
auto: stable
`;
    expect(talosReservations(talosKubeletConfig(cfg))).toEqual({
      cpuMillis: 150,
      memoryBytes: 1280 * 1024 ** 2,
      ephemeralStorageBytes: 1024 ** 3,
      evictionMemoryBytes: 200 * 1024 ** 2,
      evictionNodefsFraction: 0.05,
      maxPods: 64,
    });
  });
});
