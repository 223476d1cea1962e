// `validate`: checks a configuration against the API — each node group's
// flavor, image, zone and server groups must exist, and the flavor must be
// offered in the zone. Returns plain sentences, one per problem (a check that could
// not run is one too: it is not a pass).
import type { Cloudscale } from "./cloudscale";
import type { ProviderConfig } from "./types";

export async function validateAgainstApi(config: ProviderConfig, cloud: Pick<Cloudscale, "listFlavors" | "listImages" | "listCustomImages" | "listRegions" | "listServerGroups">): Promise<string[]> {
  const problems: string[] = [];
  const [flavors, images, custom, regions, serverGroups] = await Promise.all([
    cloud.listFlavors(),
    cloud.listImages(),
    // Custom images are checked only when they can be listed: a failed list says nothing about them.
    cloud.listCustomImages().then(
      (list) => ({ list, error: undefined }),
      (e: Error) => ({ list: [], error: e.message }),
    ),
    cloud.listRegions(),
    config.nodeGroups.some((g) => g.serverGroups.length) ? cloud.listServerGroups() : Promise.resolve([]),
  ]);
  const customImages = custom.list;
  const zones = new Set(regions.flatMap((r) => r.zones.map((z) => z.slug)));
  config.nodeGroups.forEach((g, i) => {
    const at = `nodeGroups[${i}] (${g.name})`;
    if (!zones.has(g.zone)) problems.push(`${at}: zone "${g.zone}" does not exist (zones: ${[...zones].join(", ")})`);
    const flavor = flavors.find((f) => f.slug === g.flavor);
    if (!flavor) problems.push(`${at}: flavor "${g.flavor}" does not exist`);
    else if (flavor.zones?.length && !flavor.zones.some((z) => z.slug === g.zone)) {
      problems.push(`${at}: flavor "${g.flavor}" is not offered in zone ${g.zone} (only in ${flavor.zones.map((z) => z.slug).join(", ")})`);
    }
    const image = g.image.startsWith("custom:")
      ? customImages.find((c) => c.slug === g.image.slice("custom:".length))
      : images.find((x) => x.slug === g.image) ?? customImages.find((c) => c.uuid === g.image);
    if (!image && custom.error) problems.push(`${at}: could not check image "${g.image}": the custom images could not be listed (${custom.error})`);
    else if (!image) problems.push(`${at}: image "${g.image}" does not exist${g.image.startsWith("custom:") ? " among the custom images" : ""}`);
    else if (image.zones?.length && !image.zones.some((z) => z.slug === g.zone)) {
      problems.push(`${at}: image "${g.image}" is not available in zone ${g.zone}`);
    }
    for (const sg of g.serverGroups) {
      const found = serverGroups.find((x) => x.uuid === sg || x.name === sg);
      if (!found) problems.push(`${at}: server group "${sg}" does not exist`);
      else if (found.zone?.slug && found.zone.slug !== g.zone) problems.push(`${at}: server group "${sg}" is in zone ${found.zone.slug}, not ${g.zone}`);
    }
  });
  return problems;
}
