// One configuration entry may list several flavors and zones: it stands for one
// CA node group per flavor × zone. This module names those groups, sizes them
// (the entry's min/max, changed per combination by `overrides`) and checks what
// only the whole set of groups shows: host-name length and server-group capacity.
// Pure functions; config.ts parses, validate.ts checks against the API.
import { SERVER_GROUP_CAPACITY, type NodeGroupConfig } from "./types";

/** Host names (and so server names) allow 63 characters: the API refuses longer names
 *  (https://github.com/cloudscale-ch/acceptance-tests, resources.py). */
export const MAX_HOSTNAME = 63;
/** A server's name is `<cluster>-<group>` plus "-" and 8 random characters. */
export const SERVER_NAME_SUFFIX = 9;

/** The longest group name whose servers' names `<cluster>-<group>-<8 random>` still fit in a host name. */
export function longestGroupName(clusterName: string): number {
  return MAX_HOSTNAME - clusterName.length - 1 - SERVER_NAME_SUFFIX;
}

/** The name of the group an entry expands to for one flavor in one zone. */
function expandedGroupName(entry: string, flavor: string, zone: string): string {
  return `${entry}-${flavor}-${zone}`;
}

/** What a configuration entry says about flavors and zones (one of each pair is given). */
export interface EntryShape {
  name: string;
  flavor?: string;
  flavors?: string[];
  zone?: string;
  zones?: string[];
}

/** One flavor in one zone of an entry, named, with the keys it came from. */
export interface Combination {
  name: string;
  flavor: string;
  zone: string;
  flavorPath: string;
  zonePath: string;
}

/**
 * The groups an entry stands for. An entry with a single `flavor` and `zone` is one group
 * named as the entry; one that lists `flavors` or `zones` is one group per flavor × zone,
 * each named `<name>-<flavor>-<zone>` (flavors in the outer loop, in the order written).
 */
export function combinations(entry: EntryShape, path: string, defaultZone: string): Combination[] {
  const flavors = entry.flavors
    ? entry.flavors.map((f, i) => ({ value: f, path: `${path}.flavors[${i}]` }))
    : [{ value: entry.flavor ?? "", path: `${path}.flavor` }];
  const zones = entry.zones
    ? entry.zones.map((z, i) => ({ value: z, path: `${path}.zones[${i}]` }))
    : [{ value: entry.zone ?? defaultZone, path: entry.zone !== undefined ? `${path}.zone` : "zone" }];
  const expands = entry.flavors !== undefined || entry.zones !== undefined;
  return flavors.flatMap((f) =>
    zones.map((z) => ({
      name: expands ? expandedGroupName(entry.name, f.value, z.value) : entry.name,
      flavor: f.value,
      zone: z.value,
      flavorPath: f.path,
      zonePath: z.path,
    })),
  );
}

/** A list key's entries that repeat an earlier one. */
export function repeats(list: readonly string[] | undefined, path: string, what: string): string[] {
  const problems: string[] = [];
  list?.forEach((x, i) => {
    const first = list.indexOf(x);
    if (first < i) problems.push(`${path}[${i}]: ${x} is listed twice (also ${path}[${first}]); each ${what} once`);
  });
  return problems;
}

/** A per-combination change of min/max: naming a flavor, a zone, or both. */
export interface SizeOverride {
  flavor?: string;
  zone?: string;
  min?: number;
  max?: number;
}

const scope = (o: SizeOverride) => (o.flavor !== undefined && o.zone !== undefined ? "both" : "one");

/**
 * Problems with an entry's overrides: each names a flavor and/or a zone of the entry and
 * sets min and/or max; no two name the same combination; and no flavor-only and zone-only
 * pair sets the same bound on their common combination unless an override naming both
 * decides it.
 */
export function overrideProblems(overrides: readonly SizeOverride[], flavors: readonly string[], zones: readonly string[], path: string): string[] {
  const problems: string[] = [];
  overrides.forEach((o, i) => {
    const at = `${path}.overrides[${i}]`;
    if (o.flavor === undefined && o.zone === undefined) problems.push(`${at}: name a flavor, a zone or both`);
    if (o.min === undefined && o.max === undefined) problems.push(`${at}: set min, max or both`);
    if (o.flavor !== undefined && !flavors.includes(o.flavor)) problems.push(`${at}.flavor: ${o.flavor} is not one of this entry's flavors (${flavors.join(", ")})`);
    if (o.zone !== undefined && !zones.includes(o.zone)) problems.push(`${at}.zone: ${o.zone} is not one of this entry's zones (${zones.join(", ")})`);
    const same = overrides.findIndex((x) => x.flavor === o.flavor && x.zone === o.zone);
    if (same < i) problems.push(`${at}: overrides[${same}] already names the same ${describeScope(o)}`);
  });
  const firstOfItsKind = (o: SizeOverride, i: number) => overrides.findIndex((x) => x.flavor === o.flavor && x.zone === o.zone) === i;
  overrides.forEach((a, i) => {
    overrides.forEach((b, j) => {
      if (j <= i || !firstOfItsKind(a, i) || !firstOfItsKind(b, j)) return;
      // Only a flavor-only and a zone-only override meet on one combination at the same rank.
      if (a.flavor === undefined === (b.flavor === undefined) || scope(a) === "both" || scope(b) === "both") return;
      const flavor = a.flavor ?? b.flavor!;
      const zone = a.zone ?? b.zone!;
      for (const bound of ["min", "max"] as const) {
        if (a[bound] === undefined || b[bound] === undefined) continue;
        const decided = overrides.some((x) => x.flavor === flavor && x.zone === zone && x[bound] !== undefined);
        if (!decided) {
          problems.push(`${path}.overrides[${j}]: sets ${bound} for ${flavor} in ${zone}, as overrides[${i}] does; add an override naming both flavor ${flavor} and zone ${zone} to decide`);
        }
      }
    });
  });
  return problems;
}

function describeScope(o: SizeOverride): string {
  if (o.flavor !== undefined && o.zone !== undefined) return `flavor and zone (${o.flavor} in ${o.zone})`;
  return o.flavor !== undefined ? `flavor (${o.flavor})` : `zone (${o.zone})`;
}

/**
 * min and max of one combination: the entry's, replaced by overrides naming only its flavor
 * or only its zone, then by one naming both (the most specific wins). `from` says which key
 * set each bound, for messages.
 */
export function sizeOf(
  combo: { flavor: string; zone: string },
  base: { min: number; max: number },
  overrides: readonly SizeOverride[],
  path: string,
): { min: number; max: number; minFrom: string; maxFrom: string } {
  const size = { ...base, minFrom: `${path}.min`, maxFrom: `${path}.max` };
  const matches = overrides
    .map((o, i) => ({ o, i }))
    .filter(({ o }) => (o.flavor === undefined || o.flavor === combo.flavor) && (o.zone === undefined || o.zone === combo.zone))
    .sort((a, b) => Number(scope(a.o) === "both") - Number(scope(b.o) === "both"));
  for (const { o, i } of matches) {
    if (o.min !== undefined) Object.assign(size, { min: o.min, minFrom: `${path}.overrides[${i}].min` });
    if (o.max !== undefined) Object.assign(size, { max: o.max, maxFrom: `${path}.overrides[${i}].max` });
  }
  return size;
}

/**
 * Groups whose servers would not fit in a server group. Every server of a group joins every
 * server group listed for it, and an anti-affinity server group holds at most 4 servers;
 * so the max of all groups placed in one server group must fit in what it has free.
 * `key` maps a configured reference to the server group it means (by default the text
 * itself); `free` says how many servers it can still take (by default 4); `note` adds why.
 */
export function serverGroupCapacityProblems(
  groups: readonly NodeGroupConfig[],
  key: (reference: string) => string | undefined = (r) => r,
  free: (serverGroup: string) => number = () => SERVER_GROUP_CAPACITY,
  note: (serverGroup: string) => string = () => "",
): string[] {
  const placed = new Map<string, { path: string; reference: string; groups: NodeGroupConfig[] }>();
  for (const g of groups) {
    g.serverGroups.forEach((reference, i) => {
      const k = key(reference);
      if (k === undefined) return;
      const entry = placed.get(k) ?? { path: g.source?.serverGroupPaths[i] ?? `${g.name}.serverGroups[${i}]`, reference, groups: [] };
      if (!entry.groups.some((x) => x.name === g.name)) entry.groups.push(g);
      placed.set(k, entry);
    });
  }
  const problems: string[] = [];
  for (const [k, { path, reference, groups: members }] of placed) {
    const total = members.reduce((n, g) => n + g.max, 0);
    const room = free(k);
    if (total <= room) continue;
    const who = members.length === 1 ? `node group ${members[0]!.name} can grow to ${total} (its max)` : `the node groups placed in it can grow to ${total} together (${members.map((g) => `${g.name} max ${g.max}`).join(", ")})`;
    const holds = room === SERVER_GROUP_CAPACITY ? `holds at most ${SERVER_GROUP_CAPACITY} servers (the API refuses a 5th)` : `can take only ${Math.max(0, room)} more servers${note(k)}`;
    const fix = members.length === 1 ? `lower its max to ${Math.max(0, room)}` : "lower their max, or give each group its own server group";
    problems.push(`${path}: server group "${reference}" ${holds}, but ${who}; ${fix}`);
  }
  return problems;
}
