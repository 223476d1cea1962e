// The provider's configuration: one YAML file, validated with valibot. Every
// mistake is collected and reported with its path and a plain sentence, all at
// once, before anything starts.
import * as v from "valibot";
import { YAMLParseError } from "yaml";
import { parseConfigYaml } from "./config-yaml";
import { parseSettings } from "./config-issues";
import { dirname, resolve } from "node:path";
import { readFileSync } from "node:fs";
import { detectUserDataFormat, forbiddenNodeLabels, talosPatchProblem } from "./talos";
import { duration, parseDuration } from "./duration";
import { nodeLabels, regionOfZone } from "./template";
import { isValidQuantity, parseBytes, parseCpuMillis } from "./quantity";
import { MAX_HOSTNAME, SERVER_NAME_SUFFIX, combinations, longestGroupName, overrideProblems, repeats, serverGroupCapacityProblems, sizeOf, type Combination } from "./expansion";
import { GPU_LABEL, NODE_GROUP_LABEL, type GroupOptions, type NodeGroupConfig, type ProviderConfig, type Reservations, type UserDataFormat } from "./types";

export { parseDuration };

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`configuration has ${problems.length} problem${problems.length === 1 ? "" : "s"}:\n  - ${problems.join("\n  - ")}`);
    this.name = "ConfigError";
  }
}

// A DNS label: server names are `<cluster>-<group>-<8 chars>` and become host names.
const dnsLabel = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
// Every cloudscale flavor slug has this form (flex-8-2, plus-32-8, gpu2-128-16-1-200); it
// also keeps expanded group names (`<name>-<flavor>-<zone>`) valid DNS labels.
const flavorSlugPattern = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

const durationString = duration();

const fraction = v.pipe(v.number("must be a number"), v.minValue(0, "must be at least 0"), v.maxValue(1, "must be at most 1"));

const labelKey = v.pipe(
  v.string(),
  v.regex(
    /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/,
    "is not a valid Kubernetes label key",
  ),
);
const labelValue = v.pipe(
  v.string("label values must be strings (quote numbers and booleans)"),
  v.regex(/^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/, "is not a valid Kubernetes label value"),
  v.maxLength(63, "must be at most 63 characters"),
);

const reservationsSchema = v.strictObject({
  cpu: v.optional(v.union([v.string(), v.number()])),
  memory: v.optional(v.union([v.string(), v.number()])),
  evictionMemory: v.optional(v.union([v.string(), v.number()])),
  ephemeralStorage: v.optional(v.union([v.string(), v.number()])),
  evictionNodefs: v.optional(v.pipe(v.string(), v.regex(/^\d+(\.\d+)?%$/, "must be a percentage such as 10%"))),
  maxPods: v.optional(v.pipe(v.number(), v.integer("must be a whole number"), v.minValue(1, "must be at least 1"), v.maxValue(1000, "must be at most 1000"))),
});

const optionsSchema = v.strictObject({
  scaleDownUtilizationThreshold: v.optional(fraction),
  scaleDownGpuUtilizationThreshold: v.optional(fraction),
  scaleDownUnneededTime: v.optional(durationString),
  scaleDownUnreadyTime: v.optional(durationString),
  maxNodeProvisionTime: v.optional(durationString),
  zeroOrMaxNodeScaling: v.optional(v.boolean("must be true or false")),
  ignoreDaemonSetsUtilization: v.optional(v.boolean("must be true or false")),
});

const taintSchema = v.strictObject({
  key: labelKey,
  value: v.optional(labelValue, ""),
  effect: v.picklist(["NoSchedule", "PreferNoSchedule", "NoExecute"], "must be NoSchedule, PreferNoSchedule or NoExecute"),
});

const interfaceSchema = v.strictObject({
  network: v.pipe(v.string(), v.minLength(1, "must be \"public\" or a network UUID")),
  addresses: v.optional(
    v.array(v.strictObject({ subnet: v.optional(v.string()), address: v.optional(v.string()) })),
  ),
});

const count = (what: string) =>
  v.pipe(v.number(`${what} must be a number`), v.integer(`${what} must be a whole number`), v.minValue(0, `${what} must not be negative`), v.maxValue(1000, `${what} must be at most 1000`));

const flavorSlug = v.pipe(
  v.string("must be a flavor slug such as flex-8-2"),
  v.check((s) => flavorSlugPattern.test(s), (issue) => `${String(issue.input)} is not a flavor (flavor slugs are lower-case letters, digits and '-', such as flex-8-2)`),
);
const zoneSlug = v.pipe(v.string("must be a zone slug such as lpg1 or rma1"), v.regex(/^[a-z]+\d+$/, "must be a zone slug such as lpg1 or rma1"));
// Servers join server groups by UUID (the create call refuses a name).
const serverGroupList = v.array(
  v.pipe(v.string("must be a server group UUID"), v.uuid("must be a server group's UUID (servers join server groups by UUID, not by name)")),
  "must be a list of server group UUIDs",
);

/** A change of min/max for some flavor × zone combinations of an entry (see expansion.ts). */
const overrideSchema = v.strictObject({
  flavor: v.optional(flavorSlug),
  zone: v.optional(zoneSlug),
  min: v.optional(count("min")),
  max: v.optional(count("max")),
});

const nodeGroupSchema = v.strictObject({
  name: v.pipe(v.string("is required"), v.regex(dnsLabel, "must be lower-case letters, digits and '-', starting and ending with a letter or digit")),
  // One of flavor/flavors and at most one of zone/zones (checked in entryKeyProblems).
  flavor: v.optional(flavorSlug),
  flavors: v.optional(v.pipe(v.array(flavorSlug, "must be a list of flavor slugs"), v.minLength(1, "must list at least one flavor"))),
  image: v.pipe(v.string("is required (an image slug such as debian-13 or custom:talos-1.13.2)"), v.minLength(1, "must not be empty")),
  zone: v.optional(zoneSlug),
  zones: v.optional(v.pipe(v.array(zoneSlug, "must be a list of zone slugs"), v.minLength(1, "must list at least one zone"))),
  min: count("min"),
  max: count("max"),
  overrides: v.optional(v.array(overrideSchema, "must be a list of {flavor, zone, min, max}")),
  volumeSizeGb: v.optional(v.pipe(v.number(), v.integer("must be a whole number"), v.minValue(10, "must be at least 10 (cloudscale's minimum root volume)"))),
  userData: v.optional(v.string("must be a string")),
  userDataFile: v.optional(v.string("must be a file path")),
  userDataFormat: v.optional(v.picklist(["auto", "talos", "cloud-init", "none"], "must be auto, talos, cloud-init or none")),
  labels: v.optional(v.record(labelKey, labelValue)),
  taints: v.optional(v.array(taintSchema)),
  // A list for every group of the entry, or per zone (server groups are zonal).
  serverGroups: v.optional(v.union([serverGroupList, v.record(zoneSlug, serverGroupList)], "must be a list of server group UUIDs, or a mapping of zone to such a list")),
  interfaces: v.optional(v.array(interfaceSchema)),
  sshKeys: v.optional(v.array(v.string())),
  tags: v.optional(v.record(v.string(), v.string("tag values must be strings"))),
  pricePerHour: v.optional(v.pipe(v.number(), v.minValue(0, "must not be negative"))),
  options: v.optional(optionsSchema),
  reservations: v.optional(reservationsSchema),
});

const configSchema = v.strictObject({
  clusterName: v.pipe(v.string("is required (it scopes which servers are ours)"), v.regex(dnsLabel, "must be lower-case letters, digits and '-', starting and ending with a letter or digit")),
  zone: v.optional(v.pipe(v.string(), v.regex(/^[a-z]+\d+$/, "must be a zone slug such as lpg1 or rma1"))),
  createConcurrency: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1, "must be at least 1"), v.maxValue(100, "must be at most 100"))),
  maxViewAge: v.optional(duration(2, "servers are created and deleted only from a view younger than this, and a view is already as old as the list it was read from")),
  failedCreateTtl: v.optional(duration(30, "CA reads instances once per loop (every 10s by default) and must see a failed creation to back off")),
  createVerifyDelay: v.optional(durationString),
  apiTimeout: v.optional(duration(1, "0 turns the timeout off (one hung request would stall every Refresh), and shorter ones cut off ordinary lists")),
  startupGrace: v.optional(durationString),
  prices: v.optional(v.record(v.string(), v.pipe(v.number("must be a price in CHF per hour"), v.minValue(0, "must not be negative")))),
  reservations: v.optional(reservationsSchema),
  // Each entry is parsed on its own (parseEntries), so one bad entry does not hide the others' problems.
  nodeGroups: v.pipe(v.array(v.unknown(), "must be a list of node groups"), v.minLength(1, "must list at least one node group")),
});

type NodeGroupEntry = v.InferOutput<typeof nodeGroupSchema>;
type TopLevel = v.InferOutput<typeof configSchema>;

type RawReservations = v.InferOutput<typeof reservationsSchema>;

/** Overrides of the flavor-derived default reservations; merged in resolved-group.ts. */
export function reservationOverrides(raw: RawReservations | undefined, path: string, problems: string[]): Partial<Reservations> {
  const out: Partial<Reservations> = {};
  if (!raw) return out;
  const q = (key: keyof RawReservations, kind: "cpu" | "bytes") => {
    const val = raw[key];
    if (val === undefined) return undefined;
    const text = String(val).trim();
    const n = !isValidQuantity(text) ? undefined : kind === "cpu" ? parseCpuMillis(text) : parseBytes(text);
    if (n === undefined) problems.push(`${path}.${key}: "${val}" is not a ${kind === "cpu" ? "CPU quantity such as 100m or 0.5" : "size such as 512Mi or 1Gi"}`);
    return n;
  };
  const cpu = q("cpu", "cpu");
  if (cpu !== undefined) out.cpuMillis = cpu;
  const mem = q("memory", "bytes");
  if (mem !== undefined) out.memoryBytes = mem;
  const ev = q("evictionMemory", "bytes");
  if (ev !== undefined) out.evictionMemoryBytes = ev;
  const eph = q("ephemeralStorage", "bytes");
  if (eph !== undefined) out.ephemeralStorageBytes = eph;
  if (raw.evictionNodefs !== undefined) out.evictionNodefsFraction = Number(raw.evictionNodefs.slice(0, -1)) / 100;
  if (raw.maxPods !== undefined) out.maxPods = raw.maxPods;
  return out;
}

const flavorOf = (c: Combination) => c.flavor;
const zoneOf = (c: Combination) => c.zone;
/** Labels that describe where a group's servers are and what they are, with the group's value of each. */
const placementLabels: [string, (c: Combination) => string][] = [
  ["topology.kubernetes.io/zone", zoneOf],
  ["failure-domain.beta.kubernetes.io/zone", zoneOf],
  ["topology.kubernetes.io/region", (c) => regionOfZone(c.zone)],
  ["failure-domain.beta.kubernetes.io/region", (c) => regionOfZone(c.zone)],
  ["node.kubernetes.io/instance-type", flavorOf],
  ["beta.kubernetes.io/instance-type", flavorOf],
];

/**
 * Which of flavor/flavors and zone/zones an entry gives, read from the raw YAML so these
 * are reported together with every schema problem: exactly one of flavor and flavors,
 * at most one of zone and zones.
 */
function entryKeyProblems(entry: unknown, i: number): string[] {
  if (entry === null || typeof entry !== "object" || Array.isArray(entry)) return [];
  const problems: string[] = [];
  const has = (k: string) => k in entry;
  if (!has("flavor") && !has("flavors")) problems.push(`nodeGroups[${i}].flavor: is required (a flavor slug such as flex-8-2, or flavors: [...] for several)`);
  if (has("flavor") && has("flavors")) problems.push(`nodeGroups[${i}]: set either flavor or flavors, not both`);
  if (has("zone") && has("zones")) problems.push(`nodeGroups[${i}]: set either zone or zones, not both`);
  return problems;
}

/**
 * The server groups of each zone of an entry. A list applies to every group of the entry;
 * a mapping gives each zone its own list (server groups are zonal), and must name every
 * zone of the entry and no other (`zone: []` for none).
 */
function serverGroupsByZone(
  config: string[] | Record<string, string[]> | undefined,
  zones: string[],
  path: string,
  problems: string[],
): (zone: string) => { ids: string[]; paths: string[] } {
  const at = `${path}.serverGroups`;
  if (config === undefined) return () => ({ ids: [], paths: [] });
  if (Array.isArray(config)) {
    problems.push(...repeats(config, at, "server group"));
    return () => ({ ids: config, paths: config.map((_, i) => `${at}[${i}]`) });
  }
  for (const zone of Object.keys(config)) {
    if (!zones.includes(zone)) problems.push(`${at}.${zone}: ${zone} is not a zone of this entry (${zones.join(", ")})`);
    else problems.push(...repeats(config[zone], `${at}.${zone}`, "server group"));
  }
  for (const zone of zones) {
    if (!(zone in config)) problems.push(`${at}: no list for zone ${zone} (write ${zone}: [] for none)`);
  }
  return (zone) => {
    const ids = config[zone] ?? [];
    return { ids, paths: ids.map((_, i) => `${at}.${zone}[${i}]`) };
  };
}

/** Host names allow 63 characters; a name cut short could collide, so a long name is an error, never truncated. */
function nameTooLong(clusterName: string, entry: string, combo: Combination, path: string, longest: number): string {
  const length = clusterName.length + 1 + combo.name.length + SERVER_NAME_SUFFIX;
  const shape = combo.name === entry ? "<clusterName>-<name>-<8 random>" : "<clusterName>-<name>-<flavor>-<zone>-<8 random>";
  const room = longest - (combo.name.length - entry.length);
  const advice = room > 0 ? `shorten name to at most ${room} characters, or clusterName` : "shorten clusterName";
  const which = combo.name === entry ? "" : ` (the longest this entry expands to)`;
  return `${path}.name: server names "${shape}" of node group ${combo.name}${which} would be ${length} characters; host names allow ${MAX_HOSTNAME}: ${advice}`;
}

export interface LoadOptions {
  /** Directory user-data files are relative to (defaults to the config file's). */
  baseDir?: string;
  /** Injected for tests: reads a user-data file. */
  readFile?: (path: string) => string;
}

/** Parses and validates config text. Throws ConfigError listing every problem, all in one round. */
export function parseConfig(text: string, opts: LoadOptions = {}): ProviderConfig {
  let raw: unknown;
  try {
    raw = parseConfigYaml(text);
  } catch (e) {
    const msg = e instanceof YAMLParseError ? e.message.split("\n")[0] : String(e);
    throw new ConfigError([`the file is not valid YAML: ${msg}`]);
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new ConfigError(["the file must be a YAML mapping with clusterName and nodeGroups"]);
  }
  // Schema problems first (top level, then each entry), then the key rules, then what the
  // settings that are right say together: all of them from one reading of the file.
  const top = parseSettings(configSchema, raw, "");
  const c: Partial<TopLevel> = top.value ?? {};
  const rawEntries = Array.isArray((raw as { nodeGroups?: unknown }).nodeGroups) ? ((raw as { nodeGroups: unknown[] }).nodeGroups) : [];
  const parsed = rawEntries.map((e, i) => ({ i, keys: entryKeyProblems(e, i), ...parseSettings(nodeGroupSchema, e, `nodeGroups[${i}]`) }));
  const problems: string[] = [...top.problems, ...parsed.flatMap((e) => e.problems), ...parsed.flatMap((e) => e.keys)];
  const complete = top.complete && parsed.every((e) => e.complete && !e.keys.length);

  const readFile = opts.readFile ?? ((p: string) => readFileSync(p, "utf8"));
  const baseDir = opts.baseDir ?? process.cwd();
  const defaultZone = c.zone ?? "lpg1";
  const globalReservations = reservationOverrides(c.reservations, "reservations", problems);
  const longest = c.clusterName !== undefined ? longestGroupName(c.clusterName) : Infinity;
  const named = new Map<string, { entry: string; from: string }>(); // group name -> its entry and what it was expanded from
  const groups: NodeGroupConfig[] = [];
  for (const { i, value, keys } of parsed) {
    if (!value) continue;
    groups.push(...entryGroups(value, `nodeGroups[${i}]`, !keys.length));
  }

  /** The groups an entry expands to, and the problems of what it says (partial: only its settings that are right). */
  function entryGroups(g: Partial<NodeGroupEntry>, p: string, keysOk: boolean): NodeGroupConfig[] {
    if (g.min !== undefined && g.max !== undefined && g.min > g.max) problems.push(`${p}: min (${g.min}) must not be greater than max (${g.max})`);
    let userData = g.userData ?? "";
    if (g.userData !== undefined && g.userDataFile !== undefined) {
      problems.push(`${p}: set either userData or userDataFile, not both`);
    } else if (g.userDataFile !== undefined) {
      const file = resolve(baseDir, g.userDataFile);
      try {
        userData = readFile(file);
      } catch (e) {
        problems.push(`${p}.userDataFile: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
      }
    }
    const format: UserDataFormat = !g.userDataFormat || g.userDataFormat === "auto" ? detectUserDataFormat(userData) : g.userDataFormat;
    if (Buffer.byteLength(userData) > 64 * 1024) problems.push(`${p}: user-data is ${Buffer.byteLength(userData)} bytes; keep it under 64 KiB`);
    // A kubelet may not set these on its own Node (NodeRestriction): the real node would lack
    // what the template promised, and CA would keep scaling up for pods that never fit.
    for (const key of forbiddenNodeLabels(g.labels ?? {})) {
      problems.push(`${p}.labels.${key}: a kubelet may not set this label on its own node (NodeRestriction); use another key, e.g. node-role.example.com/...`);
    }
    for (const key of [NODE_GROUP_LABEL, GPU_LABEL]) {
      if (g.labels && key in g.labels) problems.push(`${p}.labels.${key}: this label is set by the provider`);
    }
    for (const key of Object.keys(g.tags ?? {})) {
      if (key.startsWith("autoscaler-cloudscale-")) problems.push(`${p}.tags.${key}: tag keys starting with autoscaler-cloudscale- are reserved for ownership`);
    }
    const options: GroupOptions | undefined = g.options
      ? {
          scaleDownUtilizationThreshold: g.options.scaleDownUtilizationThreshold,
          scaleDownGpuUtilizationThreshold: g.options.scaleDownGpuUtilizationThreshold,
          scaleDownUnneededSeconds: g.options.scaleDownUnneededTime,
          scaleDownUnreadySeconds: g.options.scaleDownUnreadyTime,
          maxNodeProvisionSeconds: g.options.maxNodeProvisionTime,
          zeroOrMaxNodeScaling: g.options.zeroOrMaxNodeScaling,
          ignoreDaemonSetsUtilization: g.options.ignoreDaemonSetsUtilization,
        }
      : undefined;
    const reservations = { ...globalReservations, ...reservationOverrides(g.reservations, `${p}.reservations`, problems) };

    // The flavor × zone expansion needs the entry's name and a clear flavor/zone choice.
    if (g.name === undefined || !keysOk || (g.flavor === undefined && g.flavors === undefined)) return [];
    const entry = { ...g, name: g.name };
    const combos = combinations(entry, p, defaultZone);
    const flavors = [...new Set(combos.map((x) => x.flavor))];
    const zones = [...new Set(combos.map((x) => x.zone))];
    problems.push(...repeats(g.flavors, `${p}.flavors`, "flavor"), ...repeats(g.zones, `${p}.zones`, "zone"));
    const overrides = g.overrides ?? [];
    if (overrides.length && g.flavors === undefined && g.zones === undefined) problems.push(`${p}.overrides: only an entry with flavors or zones has combinations to override`);
    else problems.push(...overrideProblems(overrides, flavors, zones, p));
    const serverGroupsFor = serverGroupsByZone(g.serverGroups, zones, p, problems);
    // Zone, region and instance type are each group's own: a label may not say otherwise.
    for (const [key, of] of placementLabels) {
      const value = g.labels?.[key];
      const own = [...new Set(combos.map(of))];
      if (value !== undefined && own.some((x) => x !== value)) {
        problems.push(`${p}.labels.${key}: is set from each group's ${of === flavorOf ? "flavor" : "zone"} (${own.join(", ")}); remove it`);
      }
    }
    // One message for the entry, about its longest name.
    const longestCombo = combos.reduce((a, b) => (b.name.length > a.name.length ? b : a));
    if (longestCombo.name.length > longest) problems.push(nameTooLong(c.clusterName!, entry.name, longestCombo, p, longest));
    const out: NodeGroupConfig[] = [];
    for (const combo of combos) {
      const from = combo.name === entry.name ? p : `${p}: ${combo.flavor} in ${combo.zone}`;
      const other = named.get(combo.name);
      // (Within one entry only a repeated flavor or zone repeats a name; that has its own message.)
      if (other !== undefined && other.entry !== p) problems.push(`${p}.name: "${combo.name}" is used by another node group (${other.from}); names must be unique`);
      named.set(combo.name, { entry: p, from });
      // Without both bounds a size cannot be checked; such an entry has a schema problem already.
      const size = g.min !== undefined && g.max !== undefined ? sizeOf(combo, { min: g.min, max: g.max }, overrides, p) : { min: 0, max: 0, minFrom: "", maxFrom: "" };
      if (size.min > size.max && (size.minFrom !== `${p}.min` || size.maxFrom !== `${p}.max`)) {
        problems.push(`${from}: min (${size.min}, ${size.minFrom}) must not be greater than max (${size.max}, ${size.maxFrom})`);
      }
      const sg = serverGroupsFor(combo.zone);
      const group: NodeGroupConfig = {
        name: combo.name,
        entry: entry.name,
        source: { path: p, flavorPath: combo.flavorPath, zonePath: combo.zonePath, serverGroupPaths: sg.paths },
        flavor: combo.flavor,
        image: g.image ?? "",
        zone: combo.zone,
        min: size.min,
        max: size.max,
        volumeSizeGb: g.volumeSizeGb ?? 10,
        userData,
        userDataFormat: format,
        labels: g.labels ?? {},
        taints: (g.taints ?? []).map((t) => ({ key: t.key, value: t.value ?? "", effect: t.effect })),
        serverGroups: sg.ids,
        interfaces: g.interfaces,
        sshKeys: g.sshKeys ?? [],
        tags: g.tags ?? {},
        pricePerHour: g.pricePerHour,
        options,
        reservationOverrides: reservations,
      };
      out.push(group);
    }
    // Every creation patches the Talos user-data for its server: try it now, so that what would fail
    // each one of them fails the configuration instead.
    if (format === "talos" && out.length > 0) {
      const g0 = out[0]!;
      const problem = talosPatchProblem(g0.userData, g0.userDataFormat, { hostname: `${c.clusterName ?? "c"}-${g0.name}-00000000`, labels: nodeLabels(g0, undefined), taints: g0.taints });
      if (problem) problems.push(`${p}.${g.userDataFile !== undefined ? "userDataFile" : "userData"}: ${problem}`);
    }
    return out;
  }

  problems.push(...serverGroupCapacityProblems(groups));
  if (problems.length || !complete) throw new ConfigError(problems);
  return {
    clusterName: c.clusterName!,
    nodeGroups: groups,
    prices: c.prices ?? {},
    createConcurrency: c.createConcurrency ?? 10,
    maxViewAgeSeconds: c.maxViewAge ?? 120,
    failedCreateTtlSeconds: c.failedCreateTtl ?? 900,
    createVerifyDelaySeconds: c.createVerifyDelay ?? 5,
    apiTimeoutSeconds: c.apiTimeout ?? 30,
    // A killed predecessor's requests end within its API timeout (plus the API's own work).
    startupGraceSeconds: c.startupGrace ?? (c.apiTimeout ?? 30) + 5,
  };
}

export function loadConfigFile(path: string): ProviderConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new ConfigError([`cannot read the configuration file ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`]);
  }
  return parseConfig(text, { baseDir: dirname(resolve(path)) });
}
