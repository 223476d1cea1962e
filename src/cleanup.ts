// `cleanup`: deletes this cluster's servers that are in no node group of the configuration
// (orphans.ts): left running, and billed, by a group renamed or removed. It explains first and
// deletes only with --yes, and only servers that carry this cluster's tag and the group tag of
// a group the configuration does not have, read again just before each deletion.
import { UsageError, help, parse } from "./cli-args";
import { CloudscaleError, createClient, type Cloudscale } from "./cloudscale";
import { apiSettings } from "./api-settings";
import { sleep } from "./clock";
import { loadConfigFile, parseDuration } from "./config";
import { registerSecret } from "./log";
import { describeOrphan, orphansOf, type Orphan } from "./orphans";
import { CLUSTER_TAG, GROUP_TAG, type ProviderConfig } from "./types";

export const CLEANUP_USAGE = `Usage: autoscaler-cloudscale cleanup --config FILE [--yes] [flags]

Deletes this cluster's servers that are in no node group of FILE: servers tagged
autoscaler-cloudscale-cluster=<clusterName> whose autoscaler-cloudscale-group names a group the
file does not have (a group renamed or removed, or an entry turned from flavor into flavors,
which renames its groups). They keep running and are billed, and Cluster Autoscaler no longer
sees them. No other server is touched: each is read again just before it is deleted, and one
whose tags changed is left alone.

Without --yes it lists them and explains; nothing is deleted. They may be nodes of your cluster:
drain them first (kubectl drain NAME --ignore-daemonsets --delete-emptydir-data). To keep them
instead, keep the group's old name in the configuration (docs/reference.md).

Flags:
  --config FILE            the provider configuration (YAML)                        [required]
  --yes                    really delete them
  --wait-delete DURATION   how long to keep trying a server the API will not delete yet
                           (it refuses while a server is changing)                  [default 5m]
  --token-file FILE        read the API token from FILE instead of CLOUDSCALE_API_TOKEN
  -h, --help               show this help

Exit code 0 when nothing is left to delete, 1 when a server could not be deleted (the last lines
name it), 130 when interrupted.
`;

type CleanupApi = Pick<Cloudscale, "listServers" | "getServer" | "deleteServer">;

export interface CleanupOptions {
  config: ProviderConfig;
  configPath: string;
  cloud: CleanupApi;
  yes: boolean;
  waitDeleteMs: number;
  pollMs?: number;
  signal?: AbortSignal;
  print: (line: string) => void;
}

/** Deletes one orphan after reading it again; says what happened in one line. */
async function deleteOrphan(o: Orphan, opts: CleanupOptions, groups: Set<string>): Promise<"deleted" | "gone" | "skipped" | "failed"> {
  const { cloud, print } = opts;
  const fresh = await cloud.getServer(o.uuid, opts.signal);
  if (!fresh) {
    print(`  gone      ${o.name}: already deleted`);
    return "gone";
  }
  const group = fresh.tags?.[GROUP_TAG];
  if (fresh.tags?.[CLUSTER_TAG] !== opts.config.clusterName || group !== o.group || groups.has(group)) {
    print(`  skipped   ${o.name}: its tags changed since the list (cluster ${fresh.tags?.[CLUSTER_TAG] ?? "-"}, group ${group ?? "-"}); left alone`);
    return "skipped";
  }
  const deadline = Date.now() + opts.waitDeleteMs;
  for (let i = 0; ; i++) {
    try {
      const r = await cloud.deleteServer(o.uuid, opts.signal);
      print(`  ${r === "gone" ? "gone    " : "deleted "}  ${o.name} (uuid ${o.uuid}, group ${o.group})`);
      return r;
    } catch (e) {
      const busy = e instanceof CloudscaleError && e.kind === "busy";
      if (!busy || Date.now() >= deadline || opts.signal?.aborted) {
        print(`  FAILED    ${o.name}: ${(e as Error).message}`);
        return "failed";
      }
      if (i === 0) print(`  waiting   ${o.name}: the API does not delete it yet (${fresh.status}); trying again for up to ${Math.round(opts.waitDeleteMs / 1000)}s`);
      await sleep(opts.pollMs ?? 2000, opts.signal);
    }
  }
}

export async function runCleanupWith(opts: CleanupOptions): Promise<number> {
  const { config, print } = opts;
  const groups = new Set(config.nodeGroups.map((g) => g.name));
  const listed = await opts.cloud.listServers({ [CLUSTER_TAG]: config.clusterName }, opts.signal);
  const orphans = orphansOf(listed, config.clusterName, groups);
  if (!orphans.length) {
    print(`no server of cluster ${config.clusterName} is in a node group missing from ${opts.configPath} (${listed.length} listed); nothing to delete`);
    return 0;
  }
  print(`${orphans.length} server${orphans.length === 1 ? "" : "s"} of cluster ${config.clusterName} ${orphans.length === 1 ? "is" : "are"} in no node group of ${opts.configPath} (billed, and Cluster Autoscaler does not see them):`);
  for (const o of orphans) print(`  - ${describeOrphan(o)}`);
  print("They may be nodes of your cluster: drain them first (kubectl drain NAME --ignore-daemonsets --delete-emptydir-data). Deleting a server deletes its root volume.");
  if (!opts.yes) {
    print(`nothing was deleted; run again with --yes to delete ${orphans.length === 1 ? "it" : `these ${orphans.length}`} (or keep the group's name in the configuration to keep them)`);
    return 0;
  }
  const counts = { deleted: 0, gone: 0, skipped: 0, failed: 0 };
  const failed: string[] = [];
  for (const o of orphans) {
    if (opts.signal?.aborted) break;
    const r = await deleteOrphan(o, opts, groups);
    counts[r]++;
    if (r === "failed") failed.push(o.name);
  }
  const done = counts.deleted + counts.gone + counts.skipped + counts.failed;
  print(`deleted ${counts.deleted}, already gone ${counts.gone}, left alone ${counts.skipped}, failed ${counts.failed} of ${orphans.length}`);
  if (failed.length) print(`still there: ${failed.join(", ")}; run cleanup again, or delete them in the control panel`);
  if (opts.signal?.aborted && done < orphans.length) {
    print(`interrupted: ${orphans.length - done} not tried: ${orphans.slice(done).map((o) => o.name).join(", ")}`);
    return 130;
  }
  return failed.length ? 1 : 0;
}

export async function runCleanup(argv: string[]): Promise<number> {
  const { values } = parse(argv, { config: { type: "string" }, yes: { type: "boolean" }, "wait-delete": { type: "string", default: "5m" }, "token-file": { type: "string" } }, CLEANUP_USAGE);
  if (values.help) return help(CLEANUP_USAGE);
  if (!values.config) throw new UsageError(`--config is required\n\n${CLEANUP_USAGE}`);
  const wait = parseDuration(values["wait-delete"]!);
  if (wait === undefined || wait < 0) throw new UsageError(`--wait-delete must be a duration such as 90s or 5m (got "${values["wait-delete"]}")`);
  const config = loadConfigFile(values.config);
  const api = apiSettings(process.env, values["token-file"]);
  registerSecret(api.token);
  const interrupt = new AbortController();
  const onSignal = () => {
    process.stderr.write("\ninterrupted: stopping after the server being deleted\n");
    interrupt.abort();
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    return await runCleanupWith({
      config,
      configPath: values.config,
      cloud: createClient({ ...api, timeoutMs: config.apiTimeoutSeconds * 1000 }),
      yes: !!values.yes,
      waitDeleteMs: wait * 1000,
      signal: interrupt.signal,
      print: (line) => process.stdout.write(`${line}\n`),
    });
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
