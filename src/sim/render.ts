// The API's JSON shapes of the simulated objects: pure functions of a record and the API's base URL.
// A server is rendered with the status it has now; settling a due transition is the store's job.

import type { CustomImage, Network, Subnet } from "./catalog.ts";
import type { ServerGroupRecord, ServerRecord } from "./records.ts";

export function href(apiUrl: string, kind: string, uuid: string): string {
  return `${apiUrl}/${kind}/${uuid}`;
}

/** A server as GET /v1/servers/<uuid> shows it. `groupName` names a server group by uuid. */
export function renderServer(apiUrl: string, s: ServerRecord, groupName: (uuid: string) => string): Record<string, unknown> {
  return {
    href: href(apiUrl, "servers", s.uuid),
    uuid: s.uuid,
    name: s.name,
    status: s.status,
    flavor: { slug: s.flavor.slug, name: s.flavor.name, vcpu_count: s.flavor.vcpu_count, memory_gb: s.flavor.memory_gb },
    image: { ...s.image },
    zone: { slug: s.zone },
    volumes: s.volumes.map((v) => ({ href: href(apiUrl, "volumes", v.uuid), uuid: v.uuid, name: v.name, type: v.type, size_gb: v.size_gb })),
    interfaces: s.interfaces,
    ssh_fingerprints: s.sshFingerprints,
    ssh_host_keys: s.sshHostKeys,
    anti_affinity_with: [],
    server_groups: s.serverGroups.map((g) => ({ href: href(apiUrl, "server-groups", g), uuid: g, name: groupName(g) })),
    tags: s.tags,
    created_at: s.createdAt,
  };
}

/** The control API's view of a server: the API object plus what the API does not show. */
export function renderServerFull(apiUrl: string, s: ServerRecord, groupName: (uuid: string) => string): Record<string, unknown> {
  return {
    ...renderServer(apiUrl, s, groupName),
    user_data: s.userData,
    ssh_keys: s.sshKeys,
    pending: s.pending ? { at: new Date(s.pending.at).toISOString(), to: s.pending.to } : null,
  };
}

export function renderCustomImage(apiUrl: string, c: CustomImage): Record<string, unknown> {
  return { href: href(apiUrl, "custom-images", c.uuid), ...c };
}

export function renderServerGroup(apiUrl: string, g: ServerGroupRecord): Record<string, unknown> {
  return {
    href: href(apiUrl, "server-groups", g.uuid),
    uuid: g.uuid,
    name: g.name,
    type: g.type,
    zone: { slug: g.zone },
    servers: [...g.servers].map((u) => ({ href: href(apiUrl, "servers", u), uuid: u })),
    tags: g.tags,
  };
}

export function renderNetwork(apiUrl: string, n: Network): Record<string, unknown> {
  return {
    href: href(apiUrl, "networks", n.uuid),
    uuid: n.uuid,
    name: n.name,
    mtu: n.mtu,
    zone: { slug: n.zone },
    subnets: n.subnets.map((s) => ({ href: href(apiUrl, "subnets", s.uuid), uuid: s.uuid, cidr: s.cidr })),
    tags: n.tags,
    created_at: n.created_at,
  };
}

export function renderSubnet(apiUrl: string, n: Network, s: Subnet): Record<string, unknown> {
  return {
    href: href(apiUrl, "subnets", s.uuid),
    uuid: s.uuid,
    cidr: s.cidr,
    network: { href: href(apiUrl, "networks", n.uuid), uuid: n.uuid, name: n.name },
    gateway_address: s.gateway_address,
    dns_servers: s.dns_servers,
    tags: {},
  };
}
