// What the provider notices that only the operator can fix, from what it sees anyway:
//   - servers of this cluster in no configured node group (orphans.ts), from every list of the
//     cluster's servers: a group renamed or removed left them running and billed;
//   - nodes CA asks about that carry one of our servers' names but no spec.providerID: the cloud
//     controller manager is missing, and CA, which links nodes to servers only by providerID,
//     will delete them as never registered.
// Each is logged once (per server, per node), counted in a metric and shown by `status`.
import { log } from "./log";
import { orphansOf, type Orphan } from "./orphans";
import type { Server } from "./types";

export const CCM_DOCS = "docs/reference.md#the-cloud-controller-manager";
export const ORPHAN_DOCS = "docs/reference.md#when-the-configuration-changes-servers-in-no-node-group";

export interface NodeWithoutProviderId {
  name: string;
  group: string;
}

/** What /status and the metrics read of the findings. */
export interface FindingsSnapshot {
  orphans: Orphan[];
  nodesWithoutProviderId: NodeWithoutProviderId[];
}

export class Findings {
  private orphans: Orphan[] = [];
  private readonly warnedOrphans = new Set<string>();
  /** Node name → its group, for the nodes seen without a providerID whose server still exists. */
  private readonly unlinked = new Map<string, string>();
  private readonly warnedNodes = new Set<string>();
  private readonly groups: Set<string>;

  constructor(private readonly clusterName: string, groups: Iterable<string>) {
    this.groups = new Set(groups);
  }

  /** A list of the cluster's servers (Refresh's, or the provider's own). */
  observeList(list: readonly Server[]): void {
    this.orphans = orphansOf(list, this.clusterName, this.groups);
    for (const o of this.orphans) {
      if (this.warnedOrphans.has(o.uuid)) continue;
      this.warnedOrphans.add(o.uuid);
      log.warn("server of this cluster is in no configured node group: it runs and is billed, but Cluster Autoscaler no longer sees it (a node group renamed or removed?)", {
        server: o.name,
        uuid: o.uuid,
        group: o.group,
        fix: "keep the group's old name, or: autoscaler-cloudscale cleanup --config FILE",
        docs: ORPHAN_DOCS,
      });
    }
    // Forget what is gone, so the sets stay as small as the account.
    const names = new Set(list.map((s) => s.name));
    const uuids = new Set(list.map((s) => s.uuid));
    for (const u of this.warnedOrphans) if (!uuids.has(u)) this.warnedOrphans.delete(u);
    for (const n of this.unlinked.keys()) if (!names.has(n)) this.unlinked.delete(n);
    for (const n of this.warnedNodes) if (!names.has(n)) this.warnedNodes.delete(n);
  }

  /**
   * NodeGroupForNode found `group` for a node. Without a providerID that was by the server's
   * name: CA itself cannot make that link.
   */
  noteNode(node: { providerID: string; name: string }, group: string): void {
    if (node.providerID || !node.name) return;
    this.unlinked.set(node.name, group);
    if (this.warnedNodes.has(node.name)) return;
    this.warnedNodes.add(node.name);
    log.warn(
      "node has no spec.providerID: Cluster Autoscaler links nodes to servers only by providerID; install the cloudscale cloud controller manager and run kubelets with --cloud-provider=external",
      { node: node.name, group, fix: CCM_DOCS },
    );
  }

  /** A node that has its providerID now (the CCM caught up) no longer counts. */
  noteLinked(name: string): void {
    this.unlinked.delete(name);
  }

  snapshot(): FindingsSnapshot {
    return {
      orphans: [...this.orphans],
      nodesWithoutProviderId: [...this.unlinked].map(([name, group]) => ({ name, group })).sort((a, b) => a.name.localeCompare(b.name)),
    };
  }
}
