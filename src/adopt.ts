// `adopt`: takes over the servers of kubeterm-sh/autoscaler-cloudscale (the provider this one
// replaces), which owns its servers by the tags k8s-cluster=<clusterTag> and
// k8s-autoscaler-group=<group>. A server whose group is a group of this configuration gets this
// provider's tags (cluster and group) and loses k8s-autoscaler-group; every other tag stays.
// It explains first and changes tags only with --yes, reading each server again just before
// and checking its tags after. Nothing is created or deleted.
import { UsageError, help, parse } from "./cli-args";
import { createClient, type Cloudscale } from "./cloudscale";
import { apiSettings } from "./api-settings";
import { loadConfigFile } from "./config";
import { registerSecret } from "./log";
import { SEED_CLUSTER_TAG, SEED_GROUP_TAG } from "./seed-config";
import { CLUSTER_TAG, GROUP_TAG, type ProviderConfig, type Server } from "./types";

export const ADOPT_USAGE = `Usage: autoscaler-cloudscale adopt --config FILE [--cluster-tag TAG] [--yes] [flags]

Takes over the servers of kubeterm-sh/autoscaler-cloudscale, which owns its servers by the tags
${SEED_CLUSTER_TAG}=<clusterTag> and ${SEED_GROUP_TAG}=<group>. For each server whose group is a node
group of FILE (convert keeps the names), it sets ${CLUSTER_TAG}=<clusterName> and
${GROUP_TAG}=<group> and removes ${SEED_GROUP_TAG}; every other tag stays. Nothing is
created or deleted. Servers of groups FILE does not have, and servers already tagged for a
cluster, are listed and left alone.

Stop the old provider first (scale its Deployment to 0): two providers must never act on one
cluster. Without --yes it lists what it would change and explains; nothing is changed.

Flags:
  --config FILE        this provider's configuration (YAML)                         [required]
  --cluster-tag TAG    the old provider's clusterTag: only servers tagged ${SEED_CLUSTER_TAG}=TAG
                       [default: every server with a ${SEED_GROUP_TAG} tag in the account]
  --yes                really change the tags
  --token-file FILE    read the API token from FILE instead of CLOUDSCALE_API_TOKEN
  -h, --help           show this help

Exit code 0 when every server to take over was taken over (or, without --yes, could be), 1 when
one could not be (the last lines name it).
`;

type AdoptApi = Pick<Cloudscale, "listServers" | "getServer" | "updateServerTags">;

export interface AdoptOptions {
  config: ProviderConfig;
  configPath: string;
  cloud: AdoptApi;
  clusterTag?: string;
  yes: boolean;
  print: (line: string) => void;
}

/** The tags a server of the old provider gets: ours added, its group tag removed, the rest kept. */
export function adoptedTags(tags: Record<string, string>, clusterName: string, group: string): Record<string, string> {
  const out: Record<string, string> = { ...tags, [CLUSTER_TAG]: clusterName, [GROUP_TAG]: group };
  delete out[SEED_GROUP_TAG];
  return out;
}

type Decision = { server: Server; group: string; take: true } | { server: Server; group: string; take: false; why: string };

function decide(s: Server, opts: AdoptOptions, groups: Set<string>): Decision | undefined {
  const group = s.tags?.[SEED_GROUP_TAG];
  if (group === undefined) return undefined;
  if (opts.clusterTag !== undefined && s.tags[SEED_CLUSTER_TAG] !== opts.clusterTag) return undefined;
  const ours = s.tags[CLUSTER_TAG];
  if (ours !== undefined && ours !== opts.config.clusterName) return { server: s, group, take: false, why: `it is tagged for cluster ${ours}` };
  if (ours !== undefined && s.tags[GROUP_TAG] !== undefined) return { server: s, group, take: false, why: `it is this provider's already (group ${s.tags[GROUP_TAG]})` };
  if (!groups.has(group)) return { server: s, group, take: false, why: `${opts.configPath} has no node group ${group} (add one, or rename it there)` };
  return { server: s, group, take: true };
}

export async function runAdoptWith(opts: AdoptOptions): Promise<number> {
  const { config, print } = opts;
  const groups = new Set(config.nodeGroups.map((g) => g.name));
  // One tag filter at most (the API does not combine several); the rest is checked here.
  const listed = await opts.cloud.listServers(opts.clusterTag !== undefined ? { [SEED_CLUSTER_TAG]: opts.clusterTag } : {});
  const decisions = listed.map((s) => decide(s, opts, groups)).filter((d): d is Decision => d !== undefined);
  const take = decisions.filter((d) => d.take);
  const leave = decisions.filter((d): d is Extract<Decision, { take: false }> => !d.take);
  const scope = opts.clusterTag !== undefined ? `${SEED_CLUSTER_TAG}=${opts.clusterTag} and ${SEED_GROUP_TAG}` : `${SEED_GROUP_TAG} (any ${SEED_CLUSTER_TAG}; --cluster-tag narrows it)`;
  if (!decisions.length) {
    print(`no server is tagged ${scope}: nothing to take over`);
    return 0;
  }
  if (take.length) {
    print(`${take.length} server${take.length === 1 ? "" : "s"} of kubeterm-sh/autoscaler-cloudscale (tagged ${scope}) to take over for cluster ${config.clusterName}:`);
    for (const d of take) print(`  - ${d.server.name} (uuid ${d.server.uuid}, ${d.server.status}) -> node group ${d.group}`);
    print(`For each: set ${CLUSTER_TAG}=${config.clusterName} and ${GROUP_TAG}=<its group>, remove ${SEED_GROUP_TAG}; every other tag stays. Nothing is created or deleted.`);
    print("Stop the old provider first: while it runs it acts on these servers too.");
  }
  if (leave.length) {
    print(`left alone (${leave.length}):`);
    for (const d of leave) print(`  - ${d.server.name} (uuid ${d.server.uuid}, group ${d.group}): ${d.why}`);
  }
  // A group that would hold more servers than its max: CA does not scale it up until it is below.
  const ours = await opts.cloud.listServers({ [CLUSTER_TAG]: config.clusterName });
  for (const g of config.nodeGroups) {
    const n = take.filter((d) => d.group === g.name).length;
    const already = ours.filter((s) => s.tags[GROUP_TAG] === g.name).length;
    if (n && n + already > g.max) print(`note: node group ${g.name} will have ${n + already} servers, above its max ${g.max}; Cluster Autoscaler scales it up again only below its max: raise max in ${opts.configPath}, or let CA scale it down`);
  }
  if (!take.length) return 0;
  if (!opts.yes) {
    print(`nothing was changed; run again with --yes to re-tag ${take.length === 1 ? "it" : `these ${take.length}`}`);
    return 0;
  }
  const failed: string[] = [];
  for (const d of take) {
    // Read again: the tags may have changed since the list (the old provider still running?).
    const fresh = await opts.cloud.getServer(d.server.uuid);
    const again = fresh ? decide(fresh, opts, groups) : undefined;
    if (!fresh || !again?.take || again.group !== d.group) {
      print(`  skipped   ${d.server.name}: ${fresh ? "its tags changed since the list" : "it is gone"}`);
      failed.push(d.server.name);
      continue;
    }
    const want = adoptedTags(fresh.tags, config.clusterName, d.group);
    try {
      await opts.cloud.updateServerTags(fresh.uuid, want);
      const after = await opts.cloud.getServer(fresh.uuid);
      const same = after && JSON.stringify(Object.entries(after.tags).sort()) === JSON.stringify(Object.entries(want).sort());
      if (!same) throw new Error(`the API shows other tags after the change: ${JSON.stringify(after?.tags ?? null)}`);
      print(`  adopted   ${fresh.name} (uuid ${fresh.uuid}) -> node group ${d.group}`);
    } catch (e) {
      print(`  FAILED    ${fresh.name}: ${(e as Error).message}`);
      failed.push(fresh.name);
    }
  }
  print(`adopted ${take.length - failed.length} of ${take.length}${failed.length ? `; not adopted: ${failed.join(", ")} (run adopt again)` : ""}`);
  if (!failed.length) print(`start this provider now: the next list (GET /v1/servers?tag:${CLUSTER_TAG}=${config.clusterName}) shows them in their groups`);
  return failed.length ? 1 : 0;
}

export async function runAdopt(argv: string[]): Promise<number> {
  const { values } = parse(argv, { config: { type: "string" }, "cluster-tag": { type: "string" }, yes: { type: "boolean" }, "token-file": { type: "string" } }, ADOPT_USAGE);
  if (values.help) return help(ADOPT_USAGE);
  if (!values.config) throw new UsageError(`--config is required\n\n${ADOPT_USAGE}`);
  if (values["cluster-tag"] === "") throw new UsageError("--cluster-tag must not be empty (leave it out to take every server with a k8s-autoscaler-group tag)");
  const config = loadConfigFile(values.config);
  const api = apiSettings(process.env, values["token-file"]);
  registerSecret(api.token);
  return runAdoptWith({
    config,
    configPath: values.config,
    cloud: createClient({ ...api, timeoutMs: config.apiTimeoutSeconds * 1000 }),
    clusterTag: values["cluster-tag"],
    yes: !!values.yes,
    print: (line) => process.stdout.write(`${line}\n`),
  });
}
