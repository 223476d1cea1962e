// The template Node Cluster Autoscaler simulates a scale-up with, built from a
// node group's configuration and its cloudscale flavor.
//
// CA uses the template only for groups with no ready node to copy from
// (cluster-autoscaler/simulator/node_info_utils.go in
// https://github.com/kubernetes/autoscaler). It deep-copies it, renames it, overwrites
// kubernetes.io/hostname, adds DaemonSet pods and then runs the scheduler's
// predicates against `status.allocatable`, labels and taints. So the numbers
// below decide whether CA believes a pending pod fits a new node. They are
// deliberately on the low side: a template that promises more than the real
// node registers makes CA start a server that cannot take the pod, again and
// again; one that promises a little less only costs some packing efficiency.

import { create, toBinary } from "@bufbuild/protobuf";
import { GPU_LABEL, GPU_RESOURCE, NODE_GROUP_LABEL, type Flavor, type NodeGroupConfig, type Reservations, type ResolvedGroup } from "./types";
import {
  NodeConditionSchema,
  NodeSchema,
  NodeSpecSchema,
  NodeStatusSchema,
  NodeSystemInfoSchema,
  TaintSchema,
  type Node,
  type NodeCondition,
} from "./gen/k8s.io/api/core/v1/generated_pb";
import { QuantitySchema, type Quantity } from "./gen/k8s.io/apimachinery/pkg/api/resource/generated_pb";
import { ObjectMetaSchema, TimeSchema } from "./gen/k8s.io/apimachinery/pkg/apis/meta/v1/generated_pb";
import { GiB, MiB, formatBytes, formatCount, formatCpuMillis, isValidQuantity, parseBytes, parseCpuMillis } from "./quantity";

// ---------------------------------------------------------------------------
// Sizes
//
// cloudscale's `memory_gb` and `volume_size_gb` are GiB (2^30 bytes), verified by
// cloudscale's acceptance tests (https://github.com/cloudscale-ch/acceptance-tests), which find exactly
// 10·1024³ bytes in a 10 "GB" volume and 8 GiB in a flex-8-2. So a flavor's
// memory_gb × 2^30 is what the guest is given, before the kernel's share below.

/**
 * RAM the guest kernel never reports in MemTotal (which the kubelet takes as
 * memory capacity): the `struct page` array (64 bytes per 4 KiB page = 1.5625%),
 * plus the kernel image, firmware/BIOS reserved ranges and early allocations.
 * KVM guests typically lose about 1.6–1.8% plus up to ~100 MiB; we subtract
 * 2% + 128 MiB and round down to a whole MiB, so the template stays at or below
 * the real node.
 */
export const KERNEL_MEMORY_OVERHEAD_FRACTION = 0.02;
export const KERNEL_MEMORY_OVERHEAD_BYTES = 128 * MiB;

/**
 * Part of the root volume the kubelet's filesystem never sees. The kubelet
 * reports the size of the filesystem holding /var/lib/kubelet: on Talos that is
 * the EPHEMERAL partition, i.e. the disk minus EFI, BOOT, META and STATE
 * (about 1.2 GiB); on cloud-init images the root partition after EFI/boot
 * partitions. Filesystem metadata (XFS log, ext4 inode tables) takes about 1–2%
 * more. We subtract 2 GiB + 2%, rounded down to a whole MiB.
 */
export const DISK_OS_OVERHEAD_BYTES = 2 * GiB;
export const DISK_FS_OVERHEAD_FRACTION = 0.02;

function floorToMiB(bytes: number): number {
  return Math.max(0, Math.floor(bytes / MiB) * MiB);
}

function ceilToMiB(bytes: number): number {
  return Math.max(0, Math.ceil(bytes / MiB) * MiB);
}

/** Memory capacity the kubelet of a server of this flavor reports (bytes, whole MiB). */
export function memoryCapacityBytes(flavor: Flavor): number {
  const nominal = flavor.memory_gb * GiB;
  return floorToMiB(nominal - nominal * KERNEL_MEMORY_OVERHEAD_FRACTION - KERNEL_MEMORY_OVERHEAD_BYTES);
}

/** ephemeral-storage capacity the kubelet reports for a root volume of `volumeSizeGb` (bytes, whole MiB). */
export function ephemeralStorageCapacityBytes(volumeSizeGb: number): number {
  const nominal = volumeSizeGb * GiB;
  return floorToMiB(nominal - nominal * DISK_FS_OVERHEAD_FRACTION - DISK_OS_OVERHEAD_BYTES);
}

// ---------------------------------------------------------------------------
// Reservations

/**
 * System-reserved values Talos gives a worker's kubelet by default
 * (siderolabs/talos pkg/machinery/constants/constants.go:
 * KubeletSystemReservedCPU "50m", KubeletSystemReservedMemoryWorker "384Mi",
 * KubeletSystemReservedEphemeralStorage "256Mi"; applied in
 * internal/app/machined/pkg/controllers/k8s/kubelet_spec.go).
 */
export const SYSTEM_RESERVED_CPU_MILLIS = 50;
export const SYSTEM_RESERVED_MEMORY_BYTES = 384 * MiB;
export const SYSTEM_RESERVED_EPHEMERAL_BYTES = 256 * MiB;

/** kubelet's default hard eviction thresholds: memory.available<100Mi, nodefs.available<10%. */
export const EVICTION_MEMORY_BYTES = 100 * MiB;
export const EVICTION_NODEFS_FRACTION = 0.1;

/** kubelet's default maxPods. */
export const DEFAULT_MAX_PODS = 110;

/**
 * kube-reserved CPU by machine size, GKE's published tiers: 6% of the first
 * core, 1% of the second, 0.5% of cores 3–4, 0.25% of every core above 4.
 * Returns millicores, rounded up.
 */
export function kubeReservedCpuMillis(vcpus: number): number {
  const tiers: Array<[number, number]> = [
    [1, 0.06],
    [1, 0.01],
    [2, 0.005],
    [Number.POSITIVE_INFINITY, 0.0025],
  ];
  let left = Math.max(0, vcpus);
  let cores = 0;
  for (const [size, rate] of tiers) {
    const take = Math.min(left, size);
    cores += take * rate;
    left -= take;
    if (left <= 0) break;
  }
  return Math.ceil(cores * 1000 - 1e-9);
}

/**
 * kube-reserved memory by machine size, GKE's published tiers: 255 MiB below
 * 1 GiB; otherwise 25% of the first 4 GiB, 20% of the next 4 GiB, 10% of the
 * next 8 GiB, 6% of the next 112 GiB and 2% of everything above 128 GiB.
 * Returns bytes, rounded up to a whole MiB.
 */
export function kubeReservedMemoryBytes(memoryBytes: number): number {
  if (memoryBytes < GiB) return 255 * MiB;
  const tiers: Array<[number, number]> = [
    [4 * GiB, 0.25],
    [4 * GiB, 0.2],
    [8 * GiB, 0.1],
    [112 * GiB, 0.06],
    [Number.POSITIVE_INFINITY, 0.02],
  ];
  let left = memoryBytes;
  let reserved = 0;
  for (const [size, rate] of tiers) {
    const take = Math.min(left, size);
    reserved += take * rate;
    left -= take;
    if (left <= 0) break;
  }
  return ceilToMiB(reserved);
}

/**
 * Default reservations for a flavor, used when a node group does not configure
 * its own:
 *
 * - CPU    = GKE kube-reserved tiers (`kubeReservedCpuMillis`) + Talos worker
 *            system-reserved 50m.
 * - memory = GKE kube-reserved tiers on the nominal flavor memory
 *            (`kubeReservedMemoryBytes`) + Talos worker system-reserved 384 MiB.
 * - eviction memory.available 100 MiB, nodefs.available 10% (kubelet defaults).
 * - ephemeral storage reserved 256 MiB (Talos system-reserved).
 * - maxPods 110 (kubelet default).
 *
 * This is conservative for a default Talos worker, whose kubelet reserves only
 * the system-reserved part: the template then promises less than the node
 * has by the kube-reserved amount (e.g. flex-8-2: 70m CPU, 1.8 GiB memory). To
 * make template and node agree exactly, either configure the same
 * kubeReserved/systemReserved in the kubelet (machine.kubelet.extraConfig) or
 * set the group's `reservations` to what the kubelet really reserves.
 */
export function defaultReservations(flavor: Flavor): Reservations {
  return {
    cpuMillis: kubeReservedCpuMillis(flavor.vcpu_count) + SYSTEM_RESERVED_CPU_MILLIS,
    memoryBytes: kubeReservedMemoryBytes(flavor.memory_gb * GiB) + SYSTEM_RESERVED_MEMORY_BYTES,
    evictionMemoryBytes: EVICTION_MEMORY_BYTES,
    ephemeralStorageBytes: SYSTEM_RESERVED_EPHEMERAL_BYTES,
    evictionNodefsFraction: EVICTION_NODEFS_FRACTION,
    maxPods: DEFAULT_MAX_PODS,
  };
}

/**
 * Reservations of a Talos worker's kubelet: Talos reserves only system-reserved
 * (50m CPU, 384 MiB memory, 256 MiB ephemeral storage) and sets no kube-reserved;
 * whatever the machine config's `machine.kubelet.extraConfig` says
 * (kubeReserved, systemReserved, evictionHard, maxPods) replaces those defaults.
 * So the template promises exactly what the registering node will offer.
 */
export function talosReservations(kubeletConfig: Record<string, unknown> | undefined): Reservations {
  const cfg = (kubeletConfig ?? {}) as {
    kubeReserved?: Record<string, string>;
    systemReserved?: Record<string, string>;
    evictionHard?: Record<string, string>;
    maxPods?: number;
  };
  const system = cfg.systemReserved ?? { cpu: "50m", memory: "384Mi", "ephemeral-storage": "256Mi" };
  const kube = cfg.kubeReserved ?? {};
  const sum = (key: string, parse: (q: string) => number) => {
    let total = 0;
    for (const m of [system, kube]) if (m[key] !== undefined && isValidQuantity(String(m[key]))) total += parse(String(m[key]));
    return total;
  };
  const eviction = cfg.evictionHard ?? {};
  const memAvail = eviction["memory.available"];
  const nodefs = eviction["nodefs.available"];
  return {
    cpuMillis: sum("cpu", parseCpuMillis),
    memoryBytes: sum("memory", parseBytes),
    ephemeralStorageBytes: sum("ephemeral-storage", parseBytes),
    evictionMemoryBytes: memAvail && !memAvail.endsWith("%") && isValidQuantity(memAvail) ? parseBytes(memAvail) : EVICTION_MEMORY_BYTES,
    evictionNodefsFraction: nodefs?.endsWith("%") ? Number(nodefs.slice(0, -1)) / 100 : EVICTION_NODEFS_FRACTION,
    maxPods: typeof cfg.maxPods === "number" && cfg.maxPods > 0 ? cfg.maxPods : DEFAULT_MAX_PODS,
  };
}

// ---------------------------------------------------------------------------
// Labels

/** Slugified GPU name for the GPU label: "NVIDIA RTX PRO 6000 Max-Q" → "nvidia-rtx-pro-6000-max-q" (a valid label value). */
export function gpuType(flavor: Flavor | undefined): string | undefined {
  if (!flavor?.gpu || flavor.gpu.count <= 0) return undefined;
  const slug = flavor.gpu.name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .slice(0, 63)
    .replace(/^-+|-+$/g, "");
  return slug.length > 0 ? slug : "gpu";
}

/** The distinct GPU types offered by these flavors, sorted (GetAvailableGPUTypes). */
export function availableGpuTypes(flavors: readonly Flavor[]): string[] {
  const types = new Set<string>();
  for (const f of flavors) {
    const t = gpuType(f);
    if (t) types.add(t);
  }
  return [...types].sort();
}

/** Region of a zone: the zone without its trailing digits ("rma1" → "rma"), as the cloudscale CCM labels it. */
export function regionOfZone(zone: string): string {
  return zone.replace(/\d+$/, "");
}

/**
 * Labels our provider puts on a group's real nodes (through the user-data patch):
 * the node-group label, the GPU label on GPU flavors, then the group's configured
 * labels (which win). Well-known labels the kubelet or CCM set themselves
 * (os, arch, hostname, instance-type, topology) are not repeated here.
 *
 * The node-group label names the configuration entry, not the expanded group: the
 * groups one entry expands to in different zones then differ only in the zone and
 * region labels (and the host name), which CA's --balance-similar-node-groups ignores.
 * The group itself is known from the server (tags, providerID).
 */
export function nodeLabels(group: NodeGroupConfig, flavor: Flavor | undefined): Record<string, string> {
  const labels: Record<string, string> = { [NODE_GROUP_LABEL]: group.entry ?? group.name };
  const gpu = gpuType(flavor);
  if (gpu) labels[GPU_LABEL] = gpu;
  return { ...labels, ...group.labels };
}

/** The template node's name: `template-<cluster>-<group>` (CA renames its copies anyway). */
function templateNodeName(clusterName: string, groupName: string): string {
  return `template-${clusterName}-${groupName}`;
}

// ---------------------------------------------------------------------------
// The Node

function quantity(s: string): Quantity {
  return create(QuantitySchema, { string: s });
}

export interface TemplateOptions {
  /**
   * When set, the conditions get lastHeartbeatTime/lastTransitionTime = now.
   * Left out by default so the template is a pure function of the config.
   */
  now?: Date;
}

/** The resources of a template node, as numbers (capacity and allocatable). */
export interface TemplateResources {
  cpuMillis: number;
  memoryBytes: number;
  ephemeralStorageBytes: number;
  pods: number;
  gpus: number;
}

/** Capacity and allocatable of a node of this group, as numbers (see module comment for the rules). */
export function templateResources({ group, flavor, reservations: r }: ResolvedGroup): { capacity: TemplateResources; allocatable: TemplateResources } {
  const gpus = flavor.gpu && flavor.gpu.count > 0 ? flavor.gpu.count : 0;
  const capacity: TemplateResources = {
    cpuMillis: Math.max(0, flavor.vcpu_count * 1000),
    memoryBytes: memoryCapacityBytes(flavor),
    ephemeralStorageBytes: ephemeralStorageCapacityBytes(group.volumeSizeGb),
    pods: r.maxPods,
    gpus,
  };
  const allocatable: TemplateResources = {
    cpuMillis: Math.max(0, capacity.cpuMillis - r.cpuMillis),
    memoryBytes: Math.max(0, capacity.memoryBytes - r.memoryBytes - r.evictionMemoryBytes),
    // kubelet: allocatable = capacity − reserved − eviction threshold, the
    // percentage taken of capacity; rounded down to a whole MiB.
    ephemeralStorageBytes: floorToMiB(
      capacity.ephemeralStorageBytes -
        r.ephemeralStorageBytes -
        Math.ceil(capacity.ephemeralStorageBytes * r.evictionNodefsFraction),
    ),
    pods: r.maxPods,
    gpus,
  };
  return { capacity, allocatable };
}

function resourceList(res: TemplateResources): { [key: string]: Quantity } {
  const list: { [key: string]: Quantity } = {
    cpu: quantity(formatCpuMillis(res.cpuMillis)),
    memory: quantity(formatBytes(res.memoryBytes)),
    "ephemeral-storage": quantity(formatBytes(res.ephemeralStorageBytes)),
    pods: quantity(formatCount(res.pods)),
  };
  if (res.gpus > 0) list[GPU_RESOURCE] = quantity(formatCount(res.gpus));
  return list;
}

function condition(type: string, status: string, reason: string, message: string, now?: Date): NodeCondition {
  const c = create(NodeConditionSchema, { type, status, reason, message });
  if (now) {
    const t = create(TimeSchema, { seconds: BigInt(Math.floor(now.getTime() / 1000)) });
    c.lastHeartbeatTime = t;
    c.lastTransitionTime = create(TimeSchema, { seconds: t.seconds });
  }
  return c;
}

/**
 * The template Node for a node group (what NodeGroupTemplateNodeInfo returns).
 *
 * - capacity: cpu = vcpu_count, memory = memory_gb GiB minus kernel overhead,
 *   ephemeral-storage = root volume GiB minus OS partitions/filesystem overhead,
 *   pods = maxPods, nvidia.com/gpu = GPU count on GPU flavors.
 * - allocatable: capacity − reservations − eviction thresholds, never negative;
 *   pods and GPUs unchanged.
 * - labels: os/arch, instance-type = flavor slug, region/zone, hostname = the
 *   template name, the node-group label (the configuration entry's name), the GPU
 *   label on GPU flavors, then the group's configured labels (which override all
 *   of these).
 * - taints from the config; conditions Ready=True and no pressure; phase Running.
 */
export function templateNode(resolved: ResolvedGroup, clusterName: string, options: TemplateOptions = {}): Node {
  const { group, flavor } = resolved;
  const name = templateNodeName(clusterName, group.name);
  const labels: Record<string, string> = {
    "kubernetes.io/os": "linux",
    "kubernetes.io/arch": "amd64",
    "node.kubernetes.io/instance-type": flavor.slug,
    "topology.kubernetes.io/region": regionOfZone(group.zone),
    "topology.kubernetes.io/zone": group.zone,
    "kubernetes.io/hostname": name,
    ...nodeLabels(group, flavor),
  };

  const { capacity, allocatable } = templateResources(resolved);
  const now = options.now;

  return create(NodeSchema, {
    metadata: create(ObjectMetaSchema, { name, labels }),
    spec: create(NodeSpecSchema, {
      taints: group.taints.map((t) =>
        create(TaintSchema, t.value ? { key: t.key, value: t.value, effect: t.effect } : { key: t.key, effect: t.effect }),
      ),
    }),
    status: create(NodeStatusSchema, {
      capacity: resourceList(capacity),
      allocatable: resourceList(allocatable),
      phase: "Running",
      conditions: [
        condition("Ready", "True", "KubeletReady", "kubelet is posting ready status", now),
        condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available", now),
        condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure", now),
        condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available", now),
      ],
      nodeInfo: create(NodeSystemInfoSchema, { operatingSystem: "linux", architecture: "amd64" }),
    }),
  });
}

/** The Node as raw k8s protobuf (Node#Marshal shape, no k8s envelope) for NodeGroupTemplateNodeInfoResponse.nodeBytes. */
export function templateNodeBytes(node: Node): Uint8Array {
  return toBinary(NodeSchema, node);
}
