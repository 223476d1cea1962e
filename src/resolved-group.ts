// A node group resolved against its flavor: what a server of it will have
// (the flavor's details) and what its kubelet will reserve. The template node
// (template.ts) is built from this; so is the `template` command's output.
import { talosKubeletConfig } from "./talos";
import { defaultReservations, talosReservations } from "./template";
import type { Flavor, NodeGroupConfig, ResolvedGroup } from "./types";

/** Flavor details derived from the slug, for when the API's flavor list cannot be had. */
export function flavorFromSlug(slug: string): Flavor | undefined {
  const m = /^(flex|plus)-(\d+)-(\d+)$/.exec(slug);
  if (!m) return undefined;
  const name = `${m[1]![0]!.toUpperCase()}${m[1]!.slice(1)}-${m[2]}-${m[3]}`;
  return { slug, name, memory_gb: Number(m[2]), vcpu_count: Number(m[3]), gpu: null, zones: [] };
}

/**
 * The group with its flavor and reservations. A Talos worker reserves what its machine
 * config says; for other images we cannot know the kubelet's settings and reserve
 * conservatively. The group's configured overrides win over both.
 */
export function resolveGroup(group: NodeGroupConfig, flavor: Flavor): ResolvedGroup {
  const base = group.userDataFormat === "talos" ? talosReservations(talosKubeletConfig(group.userData)) : defaultReservations(flavor);
  return { group, flavor, reservations: { ...base, ...group.reservationOverrides } };
}
