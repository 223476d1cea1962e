// `template`: renders a node group's template Node the way kubectl shows a Node.
import { stringify } from "yaml";
import type { Cloudscale } from "./cloudscale";
import type { Node } from "./gen/k8s.io/api/core/v1/generated_pb";
import { flavorFromSlug, resolveGroup } from "./resolved-group";
import { templateNode } from "./template";
import type { NodeGroupConfig, ProviderConfig } from "./types";

/** The template as a plain Kubernetes-shaped object (quantities as strings). */
function nodeToKubernetes(node: Node) {
  const quantities = (m: Record<string, { string: string }> | undefined) =>
    Object.fromEntries(Object.entries(m ?? {}).sort(([a], [b]) => a.localeCompare(b)).map(([k, q]) => [k, q.string]));
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: { name: node.metadata?.name, labels: node.metadata?.labels, annotations: Object.keys(node.metadata?.annotations ?? {}).length ? node.metadata?.annotations : undefined },
    spec: { taints: node.spec?.taints.length ? node.spec.taints.map((t) => ({ key: t.key, value: t.value || undefined, effect: t.effect })) : undefined },
    status: {
      capacity: quantities(node.status?.capacity),
      allocatable: quantities(node.status?.allocatable),
      conditions: node.status?.conditions.map((c) => ({ type: c.type, status: c.status, reason: c.reason || undefined })),
      nodeInfo: node.status?.nodeInfo ? { operatingSystem: node.status.nodeInfo.operatingSystem, architecture: node.status.nodeInfo.architecture } : undefined,
    },
  };
}

/** The groups `names` pick: a group by its name, or every group of a configuration entry; all groups when none is named. */
function selectGroups(config: ProviderConfig, names: readonly string[]): NodeGroupConfig[] {
  if (names.length === 0) return config.nodeGroups;
  const picked: NodeGroupConfig[] = [];
  for (const name of names) {
    const exact = config.nodeGroups.filter((g) => g.name === name);
    const matches = exact.length ? exact : config.nodeGroups.filter((g) => g.entry === name);
    if (!matches.length) {
      throw new Error(`node group "${name}" is not in the configuration (groups: ${config.nodeGroups.map((g) => g.name).join(", ")})`);
    }
    for (const g of matches) if (!picked.includes(g)) picked.push(g);
  }
  return picked;
}

/**
 * The template nodes of the named groups (see selectGroups). One group prints as a Node;
 * several as a YAML stream of Nodes, or in JSON as a v1 List (as kubectl prints them).
 * Flavor details come from the API's flavor list when it can be read, else from the slug.
 */
export async function renderTemplate(config: ProviderConfig, names: readonly string[], output: "yaml" | "json", cloud?: Pick<Cloudscale, "listFlavors">): Promise<string> {
  const groups = selectGroups(config, names);
  const listed = cloud ? await cloud.listFlavors(AbortSignal.timeout(30_000)).catch(() => undefined) : undefined;
  const nodes = groups.map((group) => {
    const flavor = listed?.find((f) => f.slug === group.flavor) ?? flavorFromSlug(group.flavor);
    if (!flavor) {
      const why = listed ? "is not in the API's flavor list" : "is unknown and the API's flavor list cannot be read (GPU flavors need it: their slug does not name the GPU)";
      throw new Error(`flavor "${group.flavor}" of node group "${group.name}" ${why}`);
    }
    return nodeToKubernetes(templateNode(resolveGroup(group, flavor), config.clusterName));
  });
  if (nodes.length === 1 && names.length === 1 && config.nodeGroups.some((g) => g.name === names[0])) {
    return output === "json" ? `${JSON.stringify(nodes[0], null, 2)}\n` : stringify(nodes[0]);
  }
  if (output === "json") return `${JSON.stringify({ apiVersion: "v1", kind: "List", items: nodes }, null, 2)}\n`;
  return nodes.map((n) => stringify(n)).join("---\n");
}
