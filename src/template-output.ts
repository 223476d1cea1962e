// `template`: renders a node group's template Node the way kubectl shows a Node.
import { stringify } from "yaml";
import type { Cloudscale } from "./cloudscale";
import type { Node } from "./gen/k8s.io/api/core/v1/generated_pb";
import { flavorFromSlug, resolveGroup } from "./resolved-group";
import { templateNode } from "./template";
import type { Flavor, ProviderConfig } from "./types";

/** The template as a plain Kubernetes-shaped object (quantities as strings). */
export function nodeToKubernetes(node: Node) {
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

/** The flavor's details from the API when it can be asked, else from the slug. */
async function flavorOf(slug: string, cloud: Pick<Cloudscale, "listFlavors"> | undefined): Promise<Flavor | undefined> {
  const listed = cloud ? await cloud.listFlavors(AbortSignal.timeout(30_000)).then((all) => all.find((f) => f.slug === slug), () => undefined) : undefined;
  return listed ?? flavorFromSlug(slug);
}

export async function renderTemplate(config: ProviderConfig, groupId: string, output: "yaml" | "json", cloud?: Pick<Cloudscale, "listFlavors">): Promise<string> {
  const group = config.nodeGroups.find((g) => g.name === groupId);
  if (!group) {
    throw new Error(`node group "${groupId}" is not in the configuration (groups: ${config.nodeGroups.map((g) => g.name).join(", ")})`);
  }
  const flavor = await flavorOf(group.flavor, cloud);
  if (!flavor) throw new Error(`flavor "${group.flavor}" of node group "${groupId}" is unknown and the API's flavor list cannot be read`);
  const k8s = nodeToKubernetes(templateNode(resolveGroup(group, flavor), config.clusterName));
  return output === "json" ? `${JSON.stringify(k8s, null, 2)}\n` : stringify(k8s);
}
