// Shared domain types and constants. Config parsing (config.ts) produces these;
// every other module consumes them. Keep this file free of logic.

export type TaintEffect = "NoSchedule" | "PreferNoSchedule" | "NoExecute";

export interface Taint {
  key: string;
  value: string;
  effect: TaintEffect;
}

/** Resource reservations subtracted from capacity to get allocatable (kubelet semantics). */
export interface Reservations {
  /** kube-reserved + system-reserved CPU, in millicores. */
  cpuMillis: number;
  /** kube-reserved + system-reserved memory, in bytes. */
  memoryBytes: number;
  /** Hard eviction threshold for memory.available, in bytes. */
  evictionMemoryBytes: number;
  /** kube/system-reserved ephemeral storage, in bytes. */
  ephemeralStorageBytes: number;
  /** Hard eviction threshold nodefs.available, as a fraction of the root volume (0.1 = 10%). */
  evictionNodefsFraction: number;
  /** Max pods the kubelet admits (kubelet maxPods). */
  maxPods: number;
}

/** Per-group autoscaling options answered by NodeGroupGetOptions. Durations in seconds. */
export interface GroupOptions {
  scaleDownUtilizationThreshold?: number;
  scaleDownGpuUtilizationThreshold?: number;
  scaleDownUnneededSeconds?: number;
  scaleDownUnreadySeconds?: number;
  maxNodeProvisionSeconds?: number;
  zeroOrMaxNodeScaling?: boolean;
  ignoreDaemonSetsUtilization?: boolean;
}

export type UserDataFormat = "talos" | "cloud-init" | "none";

export interface NetworkInterface {
  /** "public" or a private network UUID. */
  network: string;
  addresses?: { subnet?: string; address?: string }[];
}

/**
 * Where an expanded group's settings are in the configuration file, so a problem
 * found later (against the API) names the key to change, e.g. `nodeGroups[2].flavors[1]`.
 */
export interface GroupSource {
  /** The entry: `nodeGroups[2]`. */
  path: string;
  /** `nodeGroups[2].flavor` or `nodeGroups[2].flavors[1]`. */
  flavorPath: string;
  /** `nodeGroups[2].zone`, `nodeGroups[2].zones[0]`, or `zone` (the top-level default). */
  zonePath: string;
  /** One path per entry of `serverGroups`: `nodeGroups[2].serverGroups[0]` or `nodeGroups[2].serverGroups.lpg1[0]`. */
  serverGroupPaths: string[];
}

/**
 * One node group as CA sees it, fully resolved (defaults applied, user-data file read).
 * A configuration entry with `flavors`/`zones` lists expands into one of these per
 * flavor × zone (see expansion.ts).
 */
export interface NodeGroupConfig {
  name: string;
  /**
   * Name of the configuration entry the group comes from, and the value of the node-group
   * label. Groups expanded from one entry share it, so zone siblings' templates differ only
   * in zone and region. Absent: the group's own name.
   */
  entry?: string;
  /** Where its settings are in the file (absent for groups not read from a file). */
  source?: GroupSource;
  flavor: string;
  image: string;
  zone: string;
  min: number;
  max: number;
  volumeSizeGb: number;
  userData: string;
  userDataFormat: UserDataFormat;
  labels: Record<string, string>;
  taints: Taint[];
  serverGroups: string[];
  interfaces?: NetworkInterface[];
  sshKeys: string[];
  tags: Record<string, string>;
  /** CHF per hour; overrides the price table. */
  pricePerHour?: number;
  /** Present only when the group overrides CA's options. */
  options?: GroupOptions;
  /** Configured overrides of the flavor-derived defaults. */
  reservationOverrides: Partial<Reservations>;
}

/** A node group with what its servers will be: the flavor's details and what their kubelet reserves. */
export interface ResolvedGroup {
  group: NodeGroupConfig;
  flavor: Flavor;
  /** Defaults for the flavor (or the Talos kubelet's own), merged with the configured overrides. */
  reservations: Reservations;
}

export interface ProviderConfig {
  clusterName: string;
  nodeGroups: NodeGroupConfig[];
  /** Flavor slug -> CHF per hour, merged over the built-in table. */
  prices: Record<string, number>;
  /** How many server creations run at once. */
  createConcurrency: number;
  /** How long a Refresh may serve the last good view when the API fails, in seconds. */
  maxViewAgeSeconds: number;
  /** How long a failed creation stays visible to CA before it is forgotten, in seconds. */
  failedCreateTtlSeconds: number;
  /** Wait before checking whether an unanswered create took effect, in seconds. */
  createVerifyDelaySeconds: number;
  /** Timeout of one API request, in seconds. */
  apiTimeoutSeconds: number;
  /** After a start, how long no server is created or deleted (requests of a killed predecessor may still land), in seconds. */
  startupGraceSeconds: number;
}

/** A flavor as the cloudscale API describes it. */
export interface Flavor {
  slug: string;
  name: string;
  vcpu_count: number;
  memory_gb: number;
  gpu: null | { name: string; count: number; vram_per_gpu_gb: number; total_vram_gb: number };
  zones: { slug: string }[];
}

export type ServerStatus =
  | "changing"
  | "running"
  | "stopped"
  | "paused"
  | "rescue_running"
  | "rescue_stopped"
  | "error"
  | "unknown";

/** A server as the cloudscale API returns it: the fields we read, as api-schema.ts checks them. */
export interface Server {
  href?: string;
  uuid: string;
  name: string;
  /** A ServerStatus; one the API adds later matches none of those the provider acts on. */
  status: ServerStatus | (string & {});
  flavor: { slug: string; name?: string; vcpu_count: number; memory_gb: number };
  image?: { slug?: string };
  zone: { slug: string };
  volumes?: { uuid?: string; type?: string; size_gb: number }[];
  interfaces?: unknown[];
  server_groups?: { uuid: string }[];
  tags: Record<string, string>;
  created_at: string;
}

/** Body of POST /v1/servers as we send it. */
export interface CreateServerRequest {
  name: string;
  flavor: string;
  image: string;
  zone?: string;
  volume_size_gb: number;
  user_data?: string;
  ssh_keys: string[];
  server_groups?: string[];
  interfaces?: NetworkInterface[];
  tags: Record<string, string>;
}

/** Tag keys that mark a server as ours. Values: cluster name, group name. */
export const CLUSTER_TAG = "autoscaler-cloudscale-cluster";
export const GROUP_TAG = "autoscaler-cloudscale-group";
/** Tag key naming the provider process that created a server (its instance id); ownership does not depend on it. */
export const INSTANCE_TAG = "autoscaler-cloudscale-instance";
/** The group tag of `check`'s servers; no configured node group may have this name. */
export const CHECK_GROUP = "check";

/**
 * Label on every node (template and real) naming the configuration entry of its node
 * group (NodeGroupConfig.entry): the group's name, unless the entry expands into several.
 */
export const NODE_GROUP_LABEL = "autoscaler-cloudscale/node-group";

/**
 * Label carrying the GPU type on GPU nodes, answered by the GPULabel RPC. CA
 * treats a node as a GPU node when this label is present (NodeHasGpu), so it must
 * also be on the real nodes (see `nodeLabels` in template.ts).
 */
export const GPU_LABEL = "autoscaler-cloudscale/gpu-type";

/** Servers an anti-affinity server group holds; the API refuses a 5th (docs/troubleshooting.md of
 *  https://github.com/cloudscale-ch/cluster-api-provider-cloudscale). */
export const SERVER_GROUP_CAPACITY = 4;

/** Extended resource name of NVIDIA GPUs (the device plugin's, and CA's default). */
export const GPU_RESOURCE = "nvidia.com/gpu";
