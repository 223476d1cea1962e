// Composes the provider: configuration, the cloudscale client, the flavor
// catalog, template nodes, user-data patching, pricing and the reconciler,
// behind the ProviderApi the gRPC service calls.
import { fromBinary } from "@bufbuild/protobuf";
import { forCaller } from "./caller";
import { sleep, type Clock } from "./clock";
import type { Cloudscale } from "./cloudscale";
import { ProviderError } from "./errors";
import { Findings, type FindingsSnapshot } from "./findings";
import { PodSchema, type Node, type Pod } from "./gen/k8s.io/api/core/v1/generated_pb";
import { log } from "./log";
import { newInstanceId } from "./names";
import { Reconciler, type ReconcilerRecorder } from "./reconciler";
import type { ProviderApi } from "./service";
import { CLUSTER_TAG, GPU_LABEL, GROUP_TAG, INSTANCE_TAG, NODE_GROUP_LABEL, type CreateServerRequest, type Flavor, type NodeGroupConfig, type ProviderConfig } from "./types";
import { availableGpuTypes, nodeLabels, templateNode, templateNodeBytes } from "./template";
import { flavorFromSlug, resolveGroup } from "./resolved-group";
import { patchUserData } from "./talos";
import { nodePrice, podPrice, podRequests, pricePerHourFor } from "./pricing";

export interface ProviderDeps {
  config: ProviderConfig;
  cloud: Pick<Cloudscale, "listServers" | "createServer" | "getServer" | "deleteServer" | "listFlavors">;
  /** Reconciler tuning for tests. */
  verifyDelayMs?: number;
  clock?: Clock;
  /** This process's instance id (default: the host's name and a random part). */
  instanceId?: string;
  /** Recording hooks (the composition root passes the metrics'). */
  record?: ReconcilerRecorder;
}

export type Provider = ProviderApi & {
  reconciler: Reconciler;
  start(): Promise<void>;
  stop(): void;
  /** Stops queued work and waits up to `waitMs` for creations already sent. */
  shutdown(waitMs: number): Promise<void>;
  /** Ready from the first good list until shutdown: whether CA can be served, not whether it called recently. */
  readiness(): { ok: boolean; detail: string };
  flavor(slug: string): Flavor | undefined;
  /** Servers in no configured node group, nodes without a providerID: what only the operator can fix. */
  findings(): FindingsSnapshot;
};

/**
 * The flavor catalog (sizes, GPUs, zones) comes from the API's flavor list, read at the
 * start and again by a Refresh once it is older than this. A failed read keeps the last
 * list (and is tried again at the next Refresh); before any list, flavors are read from
 * their slug (flavorFromSlug).
 */
export const FLAVOR_CATALOG_MAX_AGE_MS = 10 * 60_000;

export function createProvider(deps: ProviderDeps): Provider {
  const { config, cloud } = deps;
  const now = () => deps.clock?.now() ?? Date.now();
  const instanceId = deps.instanceId ?? newInstanceId();
  const flavors = new Map<string, Flavor>();
  let flavorsLoadedAt = 0;
  let flavorLoad: Promise<void> | null = null;
  const templates = new Map<string, { node: Node; bytes: Uint8Array; flavorKey: string }>();

  function createRequest(group: NodeGroupConfig, name: string): CreateServerRequest {
    const body: CreateServerRequest = {
      name,
      flavor: group.flavor,
      image: group.image,
      zone: group.zone,
      volume_size_gb: group.volumeSizeGb,
      ssh_keys: group.sshKeys,
      tags: { ...group.tags, [CLUSTER_TAG]: config.clusterName, [GROUP_TAG]: group.name, [INSTANCE_TAG]: instanceId },
    };
    if (group.userDataFormat !== "none" && group.userData) {
      // The node that registers must be the node the template promised: same labels, same taints.
      const labels = nodeLabels(group, flavor(group.flavor));
      body.user_data = patchUserData(group.userDataFormat, group.userData, { hostname: name, labels, taints: group.taints });
    }
    if (group.serverGroups.length) body.server_groups = group.serverGroups;
    if (group.interfaces?.length) body.interfaces = group.interfaces;
    return body;
  }

  // Every list of the cluster's servers (Refresh's, the provider's own) also shows the servers
  // that are in no configured node group; the findings read them from there, at no extra call.
  const findings = new Findings(config.clusterName, config.nodeGroups.map((g) => g.name));
  const watchedCloud: ProviderDeps["cloud"] = {
    async listServers(tags, signal) {
      const list = await cloud.listServers(tags, signal);
      if (Object.keys(tags).length === 1 && tags[CLUSTER_TAG] === config.clusterName) findings.observeList(list);
      return list;
    },
    createServer: (body, signal) => cloud.createServer(body, signal),
    getServer: (uuid, signal) => cloud.getServer(uuid, signal),
    deleteServer: (uuid, signal) => cloud.deleteServer(uuid, signal),
    listFlavors: (signal) => cloud.listFlavors(signal),
  };

  const reconciler = new Reconciler({
    config,
    cloud: watchedCloud,
    createRequest,
    verifyDelayMs: deps.verifyDelayMs ?? config.createVerifyDelaySeconds * 1000,
    startupGraceMs: config.startupGraceSeconds * 1000,
    clock: deps.clock,
    instanceId,
    record: deps.record,
  });
  let shutDown = false;
  const groupsByName = new Map(config.nodeGroups.map((g) => [g.name, g]));

  async function loadFlavors(): Promise<void> {
    if (!flavorLoad) {
      flavorLoad = cloud
        .listFlavors()
        .then((list) => {
          const first = flavorsLoadedAt === 0;
          // The answer is read in full before the cache is replaced: a failed load keeps the last one.
          const loaded = new Map(list.map((f) => [f.slug, f]));
          flavors.clear();
          for (const [slug, f] of loaded) flavors.set(slug, f);
          flavorsLoadedAt = now();
          if (!first) return;
          for (const g of config.nodeGroups) {
            const f = flavors.get(g.flavor);
            if (!f) log.warn("node group's flavor is not offered by the API", { group: g.name, flavor: g.flavor });
            else if (f.zones?.length && !f.zones.some((z) => z.slug === g.zone)) {
              log.warn("node group's flavor is not offered in its zone; its servers cannot be created", { group: g.name, flavor: g.flavor, zone: g.zone, zones: f.zones.map((z) => z.slug).join(",") });
            }
          }
        })
        .finally(() => {
          flavorLoad = null;
        });
    }
    return flavorLoad;
  }

  function flavor(slug: string): Flavor | undefined {
    return flavors.get(slug) ?? flavorFromSlug(slug);
  }

  function pricePerHour(group: NodeGroupConfig | undefined, flavorSlug: string): number {
    if (group?.pricePerHour !== undefined) return group.pricePerHour;
    if (config.prices[flavorSlug] !== undefined) return config.prices[flavorSlug]!;
    const f = flavor(flavorSlug);
    if (!f) throw new ProviderError("not-found", `no price known for flavor "${flavorSlug.slice(0, 100)}"; set prices.${flavorSlug.slice(0, 100)} in the configuration`);
    return pricePerHourFor({}, f, config.prices);
  }

  const provider: Provider = {
    reconciler,
    flavor,
    async start() {
      // Both at once: the start waits for one API round trip, not two.
      await Promise.all([
        loadFlavors().catch((e) => {
          log.warn("cannot load flavors from the API yet; templates use the flavor slug until it works", { error: (e as Error).message });
        }),
        reconciler.refresh().then(
          () => log.info("initial view of the cloud loaded", { servers: reconciler.snapshot().groups.map((g) => `${g.name}=${g.targetSize}`).join(",") }),
          (e) => log.warn("cannot list servers yet; the provider keeps trying by itself", { error: (e as Error).message }),
        ),
      ]);
      // From now on the provider lists by itself whenever CA is quiet (and until the first list succeeds).
      reconciler.keepFresh();
    },
    stop() {
      shutDown = true;
      reconciler.stop();
    },
    async shutdown(waitMs) {
      shutDown = true;
      reconciler.stop();
      await waitIdle(waitMs);
    },
    readiness() {
      if (shutDown) return { ok: false, detail: "shutting down" };
      if (!reconciler.loaded) return { ok: false, detail: "no successful listing of servers yet" };
      const age = Math.round(reconciler.viewAgeSeconds);
      if (!reconciler.fresh) return { ok: true, detail: `ok, but the view of the cloud is ${age}s old (limit ${config.maxViewAgeSeconds}s): the API fails; see /status` };
      return { ok: true, detail: `ok (view ${age}s old)` };
    },
    noteCall: () => reconciler.noteCall(),
    groups: () => config.nodeGroups,
    groupForNode(node) {
      const id = reconciler.groupForNode(node.providerID, node.name);
      if (node.providerID) findings.noteLinked(node.name);
      else if (id) findings.noteNode(node, id);
      return id ? groupsByName.get(id) : undefined;
    },
    findings: () => findings.snapshot(),
    async refresh(signal, deadlineMs) {
      // Flavors change rarely; re-read them when the list is older than its bound, never failing Refresh over it.
      if (now() - flavorsLoadedAt > FLAVOR_CATALOG_MAX_AGE_MS) void loadFlavors().catch((e) => log.debug("flavor reload failed", { error: (e as Error).message }));
      await reconciler.refresh(signal, deadlineMs);
    },
    generation: () => reconciler.generation,
    targetSize: (g) => reconciler.targetSize(g),
    increaseSize: (g, delta) => void reconciler.increaseSize(g, delta),
    deleteNodes: (g, nodes, signal) => reconciler.deleteNodes(g, nodes, signal),
    decreaseTargetSize: (g, delta) => reconciler.decreaseTargetSize(g, delta),
    nodes: (g) => reconciler.nodes(g),
    async templateNode(groupId, signal) {
      const group = reconciler.group(groupId);
      let f = flavors.get(group.flavor);
      if (!f && flavorsLoadedAt === 0) {
        // The first load of the flavor list (retries included) can take far longer than
        // CA's deadline: wait for it only until the caller gives up. It goes on, and its
        // result serves the next call.
        await forCaller(
          loadFlavors().catch(() => {}),
          { signal, cancelled: () => new ProviderError("deadline-exceeded", "the caller gave up while the flavor list was loading") },
        );
        f = flavors.get(group.flavor);
      }
      f ??= flavorFromSlug(group.flavor);
      if (!f) throw new ProviderError("unavailable", `flavor "${group.flavor}" of node group "${groupId}" is unknown and the API's flavor list cannot be read`);
      const key = JSON.stringify([f.slug, f.vcpu_count, f.memory_gb, f.gpu?.count ?? 0, f.gpu?.name ?? ""]);
      const cached = templates.get(groupId);
      if (cached && cached.flavorKey === key) return cached;
      const node = templateNode(resolveGroup(group, f), config.clusterName);
      const entry = { node, bytes: templateNodeBytes(node), flavorKey: key };
      templates.set(groupId, entry);
      return entry;
    },
    nodePrice(node, startSec, endSec) {
      const instanceType = node.labels["node.kubernetes.io/instance-type"] ?? node.labels["beta.kubernetes.io/instance-type"];
      // A real node by providerID or name; a template node CA simulates by our node-group label
      // (the configuration entry) and its flavor: the entry's groups in other zones cost the same.
      const realGroup = reconciler.groupForNode(node.providerID, node.name);
      const entry = node.labels[NODE_GROUP_LABEL];
      const group = realGroup
        ? groupsByName.get(realGroup)
        : entry !== undefined
          ? config.nodeGroups.find((g) => (g.entry ?? g.name) === entry && g.flavor === instanceType) ?? groupsByName.get(entry)
          : undefined;
      // A node outside our groups: price it by its instance-type label.
      const slug = group?.flavor ?? instanceType;
      if (!slug) throw new ProviderError("not-found", `cannot price node "${node.name.slice(0, 100)}": it is not in a node group and has no instance-type label`);
      return nodePrice(pricePerHour(group, slug), startSec, endSec);
    },
    podPrice(pod, startSec, endSec) {
      let message: Pod;
      try {
        message = pod.message ?? fromBinary(PodSchema, pod.bytes!);
      } catch (e) {
        throw new ProviderError("invalid-argument", `pod_bytes is not a Kubernetes Pod: ${(e as Error).message}`);
      }
      // Priced against the smallest configured group's flavor: what the pod would cost on our cheapest node.
      const candidates = config.nodeGroups.map((g) => ({ g, f: flavor(g.flavor) })).filter((x) => x.f);
      if (!candidates.length) throw new ProviderError("unavailable", "no flavor details to price a pod against");
      let requests: ReturnType<typeof podRequests>;
      try {
        requests = podRequests(message);
      } catch (e) {
        throw new ProviderError("invalid-argument", `the pod's resource requests cannot be read: ${(e as Error).message}`);
      }
      const prices = candidates.map(({ g, f }) => podPrice(requests, f!, pricePerHour(g, g.flavor), startSec, endSec));
      return Math.min(...prices);
    },
    gpuLabel: () => GPU_LABEL,
    gpuTypes() {
      const used = config.nodeGroups.map((g) => flavor(g.flavor)).filter((f): f is Flavor => !!f);
      return availableGpuTypes(used);
    },
    async cleanup() {
      // CA calls Cleanup on shutdown: give creations on their way a moment to be answered
      // (so their servers are tagged and found again after a restart), but never hold CA up.
      await waitIdle(3000);
    },
  };

  /** Waits until no creation is queued or running, at most `ms`; leaves no timer behind. */
  async function waitIdle(ms: number): Promise<void> {
    const done = new AbortController();
    await Promise.race([reconciler.whenIdle(), sleep(ms, done.signal)]);
    done.abort();
  }
  return provider;
}
