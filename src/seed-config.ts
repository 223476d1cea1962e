// The configuration of the provider this project replaces, kubeterm-sh/autoscaler-cloudscale
// (its internal/config/config.go), turned into ours. Read as data, never run: its file
// (`listen`, `tls`, `cloudscaleAPIToken`, `clusterTag`, `nodeGroups` with `minSize`/`maxSize`,
// `userData: "@file"`, network switches, `serverGroupUUID`) or its Helm chart's values (the same
// under `config:`). Every setting is carried over, or named in a note that says why not and
// what to do instead. Nothing here does I/O.
import { dirname, isAbsolute, relative, resolve } from "node:path";
import { Document, parse as parseYaml } from "yaml";

/** The tags the old provider owns its servers by (its clusterTag and ManagedTag). */
export const SEED_CLUSTER_TAG = "k8s-cluster";
export const SEED_GROUP_TAG = "k8s-autoscaler-group";

const TOP_KEYS = ["listen", "tls", "cloudscaleAPIToken", "clusterTag", "nodeGroups"];
const GROUP_KEYS = [
  "name", "minSize", "maxSize", "flavor", "image", "zone", "sshKeys", "userData", "tags", "volumeSizeGB",
  "serverGroupUUID", "usePrivateNetwork", "usePublicNetwork", "networkUUID", "subnetUUID", "labels", "taints",
];

export class SeedConfigError extends Error {}

export interface ConvertInput {
  /** The old configuration's text. */
  text: string;
  /** Its path: `@file` user-data is relative to its directory. */
  path: string;
  /** Where the result is written (user-data paths are made relative to it); undefined: stdout, relative to the working directory. */
  outPath?: string;
  /** Overrides the cluster name (else the old clusterTag). */
  clusterName?: string;
  /** For ${VAR} in clusterTag, as the old provider expands it. */
  env: Record<string, string | undefined>;
  cwd: string;
  /** Put into the header comment. */
  version: string;
}

export interface ConvertResult {
  /** Our configuration, YAML, with a header comment. */
  yaml: string;
  /** What could not be carried over as it was, each with the key it is about. */
  notes: string[];
  clusterName: string;
  groups: number;
}

/** ${VAR} and $VAR from the environment (Go's os.ExpandEnv, which the old provider applies to clusterTag). */
function expandEnv(text: string, env: Record<string, string | undefined>): string {
  return text.replace(/\$\{([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (_, a: string | undefined, b: string | undefined) => env[a ?? b ?? ""] ?? "");
}

const isObject = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === "object" && !Array.isArray(x);

export function convertSeedConfig(input: ConvertInput): ConvertResult {
  let raw: unknown;
  try {
    raw = parseYaml(input.text);
  } catch (e) {
    throw new SeedConfigError(`${input.path} is not valid YAML: ${(e as Error).message.split("\n")[0]}`);
  }
  if (!isObject(raw)) throw new SeedConfigError(`${input.path} is not a YAML mapping; expected the old provider's configuration (clusterTag, nodeGroups with minSize/maxSize)`);
  const notes: string[] = [];
  let cfg: Record<string, unknown> = raw;
  let at = "";
  // The Helm chart's values: the configuration is under `config`, the rest is deployment.
  if (!("nodeGroups" in raw) && isObject(raw.config) && "nodeGroups" in raw.config) {
    cfg = raw.config;
    at = "config.";
    const rest = Object.keys(raw).filter((k) => k !== "config");
    if (rest.length) notes.push(`${rest.join(", ")}: Helm values of the old chart are not configuration; deploy/ (kustomize) or the provider's Helm chart cover them (docs/operating.md)`);
  }
  if (!Array.isArray(cfg.nodeGroups)) throw new SeedConfigError(`${input.path}: no ${at}nodeGroups list; this is not the old provider's configuration`);
  if (cfg.nodeGroups.some((g) => isObject(g) && ("min" in g || "max" in g) && !("minSize" in g))) {
    throw new SeedConfigError(`${input.path}: its node groups have min/max, not minSize/maxSize: it looks like this provider's configuration already`);
  }

  for (const key of Object.keys(cfg)) if (!TOP_KEYS.includes(key)) notes.push(`${at}${key}: not a setting of the old provider; left out`);
  if (cfg.listen !== undefined) {
    const listen = String(cfg.listen).startsWith(":") ? `0.0.0.0${String(cfg.listen)}` : String(cfg.listen);
    notes.push(`${at}listen: a flag now: serve --listen ${listen} (default 0.0.0.0:8086)`);
  }
  if (isObject(cfg.tls)) {
    const t = cfg.tls;
    notes.push(`${at}tls: flags now: serve --tls-cert ${String(t.certFile ?? "FILE")} --tls-key ${String(t.keyFile ?? "FILE")} --tls-client-ca ${String(t.caFile ?? "FILE")} (mutual TLS is the default)`);
  }
  if (cfg.cloudscaleAPIToken !== undefined) {
    // Never copied, never printed: the token stays out of configuration files and logs.
    notes.push(`${at}cloudscaleAPIToken: not written; give the token as CLOUDSCALE_API_TOKEN or serve --token-file FILE, and remove it from the old file`);
  }

  let clusterName = input.clusterName;
  const tag = cfg.clusterTag === undefined ? "" : expandEnv(String(cfg.clusterTag), input.env);
  if (clusterName === undefined) {
    if (!tag) throw new SeedConfigError(`${input.path}: no ${at}clusterTag to take the cluster name from; pass --cluster-name NAME`);
    if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(tag)) {
      throw new SeedConfigError(`${input.path}: ${at}clusterTag "${tag}" cannot be a cluster name (lower-case letters, digits and '-'); pass --cluster-name NAME`);
    }
    clusterName = tag;
  }
  if (String(cfg.clusterTag ?? "").includes("$")) notes.push(`${at}clusterTag: ${String(cfg.clusterTag)} expanded from the environment to "${tag}"`);
  notes.push(
    `${at}clusterTag: servers are now owned by the tags autoscaler-cloudscale-cluster=${clusterName} and autoscaler-cloudscale-group=<group> (not ${SEED_CLUSTER_TAG}/${SEED_GROUP_TAG}); ` +
      `the old provider's servers are not seen until \`autoscaler-cloudscale adopt\` re-tags them`,
  );

  const seedDir = dirname(resolve(input.cwd, input.path));
  const outDir = input.outPath ? dirname(resolve(input.cwd, input.outPath)) : input.cwd;
  const groups = (cfg.nodeGroups as unknown[]).map((g, i) => convertGroup(g, `${at}nodeGroups[${i}]`, notes, seedDir, outDir));

  const doc = new Document({ clusterName, nodeGroups: groups });
  doc.commentBefore =
    ` Converted by autoscaler-cloudscale convert ${input.version} from ${input.path}\n` +
    ` (the configuration of kubeterm-sh/autoscaler-cloudscale). Check it with\n` +
    ` \`autoscaler-cloudscale validate --config <this file>\`; the settings listed below\n` +
    ` were not carried over as they were:\n` +
    notes.map((n) => `   - ${n}`).join("\n");
  return { yaml: doc.toString({ lineWidth: 0 }), notes, clusterName, groups: groups.length };
}

function convertGroup(raw: unknown, p: string, notes: string[], seedDir: string, outDir: string): Record<string, unknown> {
  if (!isObject(raw)) throw new SeedConfigError(`${p}: not a node group (a mapping with name, minSize, maxSize, flavor, image, zone)`);
  const g = raw;
  for (const key of Object.keys(g)) if (!GROUP_KEYS.includes(key)) notes.push(`${p}.${key}: not a setting of the old provider; left out`);
  const out: Record<string, unknown> = {};
  const set = (key: string, value: unknown) => {
    if (value !== undefined && value !== null) out[key] = value;
  };
  set("name", g.name);
  set("flavor", g.flavor);
  set("zone", g.zone);
  set("image", g.image);
  // Go's zero values: an absent minSize/maxSize was 0 to the old provider.
  out.min = g.minSize ?? 0;
  out.max = g.maxSize ?? 0;
  set("volumeSizeGb", g.volumeSizeGB);
  if (typeof g.volumeSizeGB === "number" && g.volumeSizeGB < 10) notes.push(`${p}.volumeSizeGB: ${g.volumeSizeGB} is below cloudscale's minimum root volume of 10 GiB; the API would refuse it`);

  if (typeof g.userData === "string" && g.userData.length > 1 && g.userData.startsWith("@")) {
    const file = g.userData.slice(1);
    const abs = isAbsolute(file) ? file : resolve(seedDir, file);
    // Absolute stays absolute (a mounted path in a pod); a relative path follows the new file.
    out.userDataFile = isAbsolute(file) ? file : relative(outDir, abs) || ".";
    if (!isAbsolute(file) && seedDir !== outDir) notes.push(`${p}.userData: @${file} is ${String(out.userDataFile)} from the new file's directory`);
  } else set("userData", g.userData);

  if (isObject(g.labels)) out.labels = g.labels;
  if (Array.isArray(g.taints)) out.taints = g.taints;
  if (Array.isArray(g.sshKeys) && g.sshKeys.length) out.sshKeys = g.sshKeys;
  if (typeof g.serverGroupUUID === "string" && g.serverGroupUUID) out.serverGroups = [g.serverGroupUUID];

  if (isObject(g.tags)) {
    const tags = { ...g.tags };
    for (const key of [SEED_CLUSTER_TAG, SEED_GROUP_TAG]) {
      if (key in tags) {
        notes.push(`${p}.tags.${key}: the old provider's ownership tag; left out (ownership is autoscaler-cloudscale-cluster/-group now)`);
        delete tags[key];
      }
    }
    if (Object.keys(tags).length) out.tags = tags;
  }

  // Networks: the old provider sent use_public_network/use_private_network, and an interface
  // on networkUUID (with subnetUUID) when set. This provider sends `interfaces` or nothing
  // (the API's default: the public network).
  const usePublic = g.usePublicNetwork === true;
  const usePrivate = g.usePrivateNetwork === true;
  if (typeof g.networkUUID === "string" && g.networkUUID) {
    const priv: Record<string, unknown> = { network: g.networkUUID };
    if (typeof g.subnetUUID === "string" && g.subnetUUID) priv.addresses = [{ subnet: g.subnetUUID }];
    out.interfaces = [...(usePublic ? [{ network: "public" }] : []), priv];
  } else {
    if (usePrivate) {
      notes.push(`${p}.usePrivateNetwork: the zone's default private network cannot be named offline; add it by UUID: interfaces: [${usePublic ? "{network: public}, " : ""}{network: <private network UUID>}]`);
    }
    if (usePrivate && usePublic) out.interfaces = [{ network: "public" }];
    if (!usePublic && !usePrivate) {
      notes.push(`${p}.usePublicNetwork: false (or unset) with no private network: the old provider created servers without a network; this one gives them the public network (the API's default); set interfaces to change that`);
    }
  }
  return out;
}
