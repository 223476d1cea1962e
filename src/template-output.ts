// `template`: renders a node group's template Node the way kubectl shows a Node.
import { stringify } from "yaml";
import type { Cloudscale } from "./cloudscale";
import type { Node } from "./gen/k8s.io/api/core/v1/generated_pb";
import { createProvider } from "./provider";
import type { ProviderConfig } from "./types";

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

export async function renderTemplate(config: ProviderConfig, groupId: string, output: "yaml" | "json", cloud?: Cloudscale): Promise<string> {
  if (!config.nodeGroups.some((g) => g.name === groupId)) {
    throw new Error(`node group "${groupId}" is not in the configuration (groups: ${config.nodeGroups.map((g) => g.name).join(", ")})`);
  }
  const offline: Cloudscale = new Proxy({} as Cloudscale, {
    get: () => () => Promise.reject(new Error("no API token: flavor details come from the slug")),
  });
  const provider = createProvider({ config, cloud: cloud ?? offline });
  const { node } = await provider.templateNode(groupId, AbortSignal.timeout(30_000));
  const k8s = nodeToKubernetes(node);
  return output === "json" ? `${JSON.stringify(k8s, null, 2)}\n` : stringify(k8s);
}
