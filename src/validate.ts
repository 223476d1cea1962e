// `validate`: checks a configuration against the API, every node group an entry
// expands to: its zone exists; its flavor exists and is offered in its zone (the
// flavor's `zones`); its image exists and is available in its zone (the image's
// `zones`); a Talos machine configuration goes to a custom image that passes
// user-data through as it is (`user_data_handling: pass-through`); its server groups
// exist, are in its zone, and have room for its max. Returns plain sentences, one per
// problem, each starting with the configuration key to change; a check that could not
// run is one too (it is not a pass). It also lists this cluster's servers that are in
// no node group of the configuration (orphans.ts): not a problem of the file, but
// servers that keep running and are billed while CA does not see them.
import type { Cloudscale } from "./cloudscale";
import { serverGroupCapacityProblems } from "./expansion";
import { describeOrphan, orphansOf, type Orphan } from "./orphans";
import { CLUSTER_TAG, GROUP_TAG, SERVER_GROUP_CAPACITY, type NodeGroupConfig, type ProviderConfig } from "./types";

type ValidateApi = Pick<Cloudscale, "listFlavors" | "listImages" | "listCustomImages" | "listRegions" | "listServerGroups" | "listServers">;

const zoneList = (zones: { slug: string }[] | undefined) => (zones ?? []).map((z) => z.slug).join(", ") || "none";

/** The keys of a group, for groups not read from a file (tests build them by hand). */
function sourceOf(g: NodeGroupConfig) {
  return g.source ?? { path: g.name, flavorPath: `${g.name}.flavor`, zonePath: `${g.name}.zone`, serverGroupPaths: g.serverGroups.map((_, i) => `${g.name}.serverGroups[${i}]`) };
}

const TALOS_IMAGE_DOCS = "docs/reference.md#the-talos-image-on-cloudscalech";

export async function validateAgainstApi(config: ProviderConfig, cloud: ValidateApi): Promise<string[]> {
  return (await checkAgainstApi(config, cloud)).problems;
}

/** The problems of the configuration against the API, and this cluster's servers in none of its groups. */
export async function checkAgainstApi(config: ProviderConfig, cloud: ValidateApi): Promise<{ problems: string[]; orphans: Orphan[] }> {
  const usesServerGroups = config.nodeGroups.some((g) => g.serverGroups.length);
  const [flavors, images, custom, regions, serverGroups, ours] = await Promise.all([
    cloud.listFlavors(),
    cloud.listImages(),
    // Custom images are checked only when they can be listed: a failed list says nothing about them.
    cloud.listCustomImages().then(
      (list) => ({ list, error: undefined }),
      (e: Error) => ({ list: [], error: e.message }),
    ),
    cloud.listRegions(),
    usesServerGroups ? cloud.listServerGroups() : Promise.resolve([]),
    // This cluster's servers: the members of our server groups, and servers in no configured group.
    cloud.listServers({ [CLUSTER_TAG]: config.clusterName }),
  ]);
  // One problem per key and fact: an entry's flavor missing in a zone is said once, not per group.
  const problems = new Set<string>();
  const zones = new Set(regions.flatMap((r) => r.zones.map((z) => z.slug)));
  const serverGroupOf = (ref: string) => serverGroups.find((x) => x.uuid === ref);

  for (const g of config.nodeGroups) {
    const at = sourceOf(g);
    if (!zones.has(g.zone)) problems.add(`${at.zonePath}: zone ${g.zone} does not exist (zones: ${[...zones].join(", ")})`);
    const flavor = flavors.find((f) => f.slug === g.flavor);
    if (!flavor) problems.add(`${at.flavorPath}: ${g.flavor} is not a flavor (the API lists no such flavor)`);
    else if (zones.has(g.zone) && flavor.zones?.length && !flavor.zones.some((z) => z.slug === g.zone)) {
      problems.add(`${at.flavorPath}: ${g.flavor} is not offered in zone ${g.zone} (${at.zonePath}); it is offered in ${zoneList(flavor.zones)}`);
    }

    const publicImage = g.image.startsWith("custom:") ? undefined : images.find((x) => x.slug === g.image);
    const customImage = g.image.startsWith("custom:")
      ? custom.list.find((c) => c.slug === g.image.slice("custom:".length))
      : publicImage
        ? undefined
        : custom.list.find((c) => c.uuid === g.image);
    const image = publicImage ?? customImage;
    if (!image && custom.error) problems.add(`${at.path}.image: could not check ${g.image}: the custom images could not be listed (${custom.error})`);
    else if (!image) problems.add(`${at.path}.image: ${g.image} does not exist${g.image.startsWith("custom:") ? " among the custom images" : ""}`);
    else if (zones.has(g.zone) && image.zones?.length && !image.zones.some((z) => z.slug === g.zone)) {
      problems.add(`${at.path}.image: ${g.image} is not available in zone ${g.zone} (${at.zonePath}); it is in ${zoneList(image.zones)}`);
    }
    // What a server of the image receives as user-data (the custom image's user_data_handling):
    // Talos must get its machine configuration as the provider wrote it.
    if (g.userDataFormat === "talos" && customImage) {
      const handling = customImage.user_data_handling;
      if (handling !== undefined && handling !== "pass-through") {
        problems.add(
          `${at.path}.image: custom image ${customImage.slug} has user_data_handling ${handling}, but the group's user-data is a Talos machine configuration, which Talos then does not get as written; import the image again with user_data_handling pass-through (${TALOS_IMAGE_DOCS})`,
        );
      }
    } else if (g.userDataFormat === "talos" && publicImage) {
      problems.add(`${at.path}.image: ${g.image} is a public image, which runs cloud-init, not Talos, but the group's user-data is a Talos machine configuration; use a Talos custom image (${TALOS_IMAGE_DOCS})`);
    }

    g.serverGroups.forEach((ref, i) => {
      const path = at.serverGroupPaths[i] ?? `${at.path}.serverGroups[${i}]`;
      const found = serverGroupOf(ref);
      if (!found) problems.add(`${path}: server group ${ref} does not exist`);
      else if (found.zone?.slug && found.zone.slug !== g.zone) {
        problems.add(`${path}: server group ${ref} (${found.name}) is in zone ${found.zone.slug}, but node group ${g.name} is in ${g.zone}`);
      }
    });
  }

  // Room in each server group: 4 servers, less those that are not servers of the groups placed in it.
  if (usesServerGroups) {
    const groupOfServer = new Map(ours.filter((s) => s.tags[CLUSTER_TAG] === config.clusterName).map((s) => [s.uuid, s.tags[GROUP_TAG] ?? ""]));
    const others = (uuid: string) => {
      const placed = new Set(config.nodeGroups.filter((g) => g.serverGroups.includes(uuid)).map((g) => g.name));
      return (serverGroupOf(uuid)?.servers ?? []).filter((m) => !placed.has(groupOfServer.get(m.uuid) ?? "")).length;
    };
    const capacity = serverGroupCapacityProblems(
      config.nodeGroups,
      (ref) => serverGroupOf(ref)?.uuid,
      (uuid) => SERVER_GROUP_CAPACITY - others(uuid),
      (uuid) => ` (it holds ${SERVER_GROUP_CAPACITY}, and ${others(uuid)} of its servers belong to no node group placed in it)`,
    );
    for (const p of capacity) problems.add(p);
  }
  return { problems: [...problems], orphans: orphansOf(ours, config.clusterName, config.nodeGroups.map((g) => g.name)) };
}

/** What `validate` prints about this cluster's servers in no node group of the file, and the ways out. */
export function orphansReport(configPath: string, clusterName: string, orphans: readonly Orphan[]): string {
  return (
    `servers tagged for cluster ${clusterName} in no node group of this configuration (they keep running and are billed; CA will not see them):\n` +
    orphans.map((o) => `  - ${describeOrphan(o)}\n`).join("") +
    `keep the group's name, or delete them after draining: autoscaler-cloudscale cleanup --config ${configPath}\n`
  );
}
