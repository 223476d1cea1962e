// `check --live`: before autoscaling is enabled, prove with the operator's real
// token that the account and the API behave as the provider expects. In each
// configured zone one server of the smallest flavor is created, tagged as ours
// (the cluster tag, group `check`), waited for until it runs, found through the
// provider's own tag-filtered list, and deleted. Each step is timed, and every
// answer that differs from what the provider expects (error shapes, status
// names, units) is listed. Whatever happens (a failed step, a server stuck in
// `changing`, Ctrl-C), everything the check created is deleted before it exits.
import { sleep } from "./clock";
import { CloudscaleError, type Cloudscale } from "./cloudscale";
import { randomSuffix } from "./names";
import { flavorFromSlug } from "./resolved-group";
import { CHECK_GROUP, CLUSTER_TAG, GROUP_TAG, type CreateServerRequest, type Flavor, type ProviderConfig, type Server, type ServerStatus } from "./types";
import { CREATE_ERROR_CODES, viewOfList } from "./view";

export type CheckCloud = Pick<Cloudscale, "listFlavors" | "listServers" | "createServer" | "getServer" | "deleteServer">;

export interface CheckOptions {
  config: ProviderConfig;
  /** The API client; undefined without a token (then only the plan is shown). */
  cloud: CheckCloud | undefined;
  apiUrl: string;
  /** Without it nothing is written: the plan is shown. */
  yes: boolean;
  /** Image of the servers; default: the image of the first node group in the zone. */
  image?: string;
  waitRunningMs: number;
  waitDeleteMs: number;
  pollMs: number;
  /** Aborted on Ctrl-C: the check stops and cleans up. */
  signal: AbortSignal;
  print: (line: string) => void;
}

/** The status names of the API the provider knows (types.ts); any other is a difference. */
const KNOWN_STATUS: Record<ServerStatus, true> = {
  changing: true,
  running: true,
  stopped: true,
  paused: true,
  rescue_running: true,
  rescue_stopped: true,
  error: true,
  unknown: true,
};

interface ZonePlan {
  zone: string;
  flavor: Flavor | undefined;
  /** How many flavors the zone offers (to say what "smallest" was chosen from). */
  offered: number;
  image: string;
  volumeSizeGb: number;
}

class Interrupted extends Error {}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)}s`;
/** A configured bound as it was given: 5m, 90s, 0.2s. */
const bound = (ms: number) => (ms >= 60_000 && ms % 60_000 === 0 ? `${ms / 60_000}m` : `${ms / 1000}s`);

/** Waits `ms`; an interrupt (Ctrl-C) ends the wait and the step. */
async function pause(ms: number, signal: AbortSignal): Promise<void> {
  await sleep(ms, signal);
  if (signal.aborted) throw new Interrupted();
}

/** The smallest flavor (memory, then vCPUs) without GPUs offered in a zone. */
function smallestFlavor(flavors: Flavor[], zone: string): { flavor: Flavor | undefined; offered: number } {
  const offered = flavors.filter((f) => f.zones?.some((z) => z.slug === zone) && !f.gpu);
  const flavor = [...offered].sort((a, b) => a.memory_gb - b.memory_gb || a.vcpu_count - b.vcpu_count || a.slug.localeCompare(b.slug))[0];
  return { flavor, offered: offered.length };
}

/** How an error body differs from the API's documented shape (a JSON object of plain strings), or undefined. */
function errorShapeProblem(body: unknown): string | undefined {
  if (body === undefined || body === null || body === "") return "an empty body, not a JSON object";
  if (typeof body !== "object" || Array.isArray(body)) return `${JSON.stringify(body).slice(0, 120)}, not a JSON object`;
  const bad = Object.entries(body).filter(([, v]) => typeof v !== "string");
  return bad.length ? `${JSON.stringify(body).slice(0, 200)}: ${bad.map(([k]) => k).join(", ")} not a plain string (the provider reads {"field or detail": "message"})` : undefined;
}

/** What the provider would tell CA about a failed create (create-queue.ts). */
function createVerdict(e: CloudscaleError): string {
  if (e.ambiguous) return "the provider would look for the server by its name before sending it again";
  if (e.kind === "quota") return `the provider would show CA ${CREATE_ERROR_CODES.quota} (OutOfResources: CA backs off the group and tries another)`;
  if (e.kind === "capacity") return `the provider would show CA ${CREATE_ERROR_CODES.capacity} (OutOfResources: CA backs off the group and tries another)`;
  return `the provider would show CA ${CREATE_ERROR_CODES.other} (class Other)`;
}

/** How a create's answer differs from what the provider reads of it. */
function createAnswerProblems(s: Server, body: CreateServerRequest, flavor: Flavor): string[] {
  const out: string[] = [];
  const what = `POST /v1/servers answered`;
  if (!/^[0-9a-f-]{36}$/i.test(String(s.uuid))) out.push(`${what} uuid ${JSON.stringify(s.uuid)}, which is not the UUID the providerID cloudscale://<uuid> carries`);
  if (s.name !== body.name) out.push(`${what} name ${JSON.stringify(s.name)} for the requested ${body.name}`);
  if (s.tags?.[CLUSTER_TAG] !== body.tags[CLUSTER_TAG] || s.tags?.[GROUP_TAG] !== body.tags[GROUP_TAG]) out.push(`${what} tags ${JSON.stringify(s.tags)} without both of ours (${CLUSTER_TAG}, ${GROUP_TAG})`);
  if (s.status !== "changing" && s.status !== "running") out.push(`${what} status "${s.status}" for a new server (expected changing or running)`);
  if (s.flavor?.slug !== flavor.slug) out.push(`${what} flavor ${JSON.stringify(s.flavor?.slug)} for the requested ${flavor.slug}`);
  else if (s.flavor.memory_gb !== flavor.memory_gb || s.flavor.vcpu_count !== flavor.vcpu_count) {
    out.push(`${what} flavor ${flavor.slug} with memory_gb ${s.flavor.memory_gb} and vcpu_count ${s.flavor.vcpu_count}; GET /v1/flavors says ${flavor.memory_gb} and ${flavor.vcpu_count}`);
  }
  if (s.zone?.slug !== body.zone) out.push(`${what} zone ${JSON.stringify(s.zone?.slug)} for the requested ${body.zone}`);
  const root = s.volumes?.[0];
  if (!root) out.push(`${what} no volume; the provider expects a root volume of volume_size_gb (${body.volume_size_gb} GiB)`);
  else if (root.size_gb !== body.volume_size_gb) out.push(`${what} a root volume of size_gb ${root.size_gb} for volume_size_gb ${body.volume_size_gb} (both should be GiB)`);
  if (!s.created_at || Number.isNaN(Date.parse(s.created_at))) out.push(`${what} created_at ${JSON.stringify(s.created_at)}, not an RFC 3339 time`);
  return out;
}

/** Flavors whose slug (flex-<GiB>-<vCPUs>, plus-…) says other numbers than the API's fields: the provider reads both. */
function flavorUnitProblems(flavors: Flavor[]): string[] {
  const out: string[] = [];
  for (const f of flavors) {
    const bySlug = flavorFromSlug(f.slug);
    if (!bySlug) continue;
    if (bySlug.memory_gb !== f.memory_gb || bySlug.vcpu_count !== f.vcpu_count) {
      out.push(`GET /v1/flavors: ${f.slug} has memory_gb ${f.memory_gb} and vcpu_count ${f.vcpu_count}; its slug says ${bySlug.memory_gb} GiB and ${bySlug.vcpu_count} vCPUs`);
    }
  }
  return out;
}

function plans(o: CheckOptions, flavors: Flavor[] | undefined): ZonePlan[] {
  const zones = [...new Set(o.config.nodeGroups.map((g) => g.zone))].sort();
  return zones.map((zone) => {
    const group = o.config.nodeGroups.find((g) => g.zone === zone)!;
    const { flavor, offered } = flavors ? smallestFlavor(flavors, zone) : { flavor: undefined, offered: 0 };
    return { zone, flavor, offered, image: o.image ?? group.image, volumeSizeGb: group.volumeSizeGb };
  });
}

/** Runs the check; returns the exit code: 0 passed, 1 failed or an answer differed, 130 interrupted. */
export async function runCheck(o: CheckOptions): Promise<number> {
  const t0 = performance.now();
  const cluster = o.config.clusterName;
  const { print } = o;
  const problems: string[] = [];
  const note = (p: string) => {
    if (!problems.includes(p)) problems.push(p);
  };
  const listQuery = `GET /v1/servers?tag:${CLUSTER_TAG}=${cluster}`;

  let flavors: Flavor[] | undefined;
  let readError: string | undefined;
  let existing: Server[] | undefined;
  if (o.cloud) {
    try {
      flavors = await o.cloud.listFlavors();
    } catch (e) {
      readError = (e as Error).message;
    }
    try {
      existing = await o.cloud.listServers({ [CLUSTER_TAG]: cluster });
    } catch (e) {
      readError ??= (e as Error).message;
    }
  }
  const zonePlans = plans(o, flavors);
  const leftovers = (existing ?? []).filter((s) => s.tags?.[CLUSTER_TAG] === cluster && s.tags?.[GROUP_TAG] === CHECK_GROUP);
  const tagsText = `${CLUSTER_TAG}=${cluster}, ${GROUP_TAG}=${CHECK_GROUP}`;

  if (!o.yes) {
    print(`check --live without --yes: nothing is created. With --yes, for cluster "${cluster}" at ${o.apiUrl}, in each configured zone:`);
    for (const p of zonePlans) {
      const flavor = p.flavor ? `${p.flavor.slug} (the smallest of ${p.offered} flavors offered in ${p.zone}: ${p.flavor.vcpu_count} vCPU, ${p.flavor.memory_gb} GiB)` : "the smallest flavor offered there";
      print(`  ${p.zone}: create one server ${cluster}-${CHECK_GROUP}-<8 random> of ${flavor}, image ${p.image}, ${p.volumeSizeGb} GiB root volume, no user-data, tags ${tagsText}`);
    }
    print(`  then wait until it runs (at most ${bound(o.waitRunningMs)}), find it in the provider's list (${listQuery}),`);
    print(`  delete it and wait until it is gone (at most ${bound(o.waitDeleteMs)}). Each step is timed; every answer that differs from`);
    print(`  what the provider expects is listed. It costs a few minutes of the smallest server per zone.`);
    if (leftovers.length) print(`  ${leftovers.length} server(s) left by an earlier check would be deleted too: ${leftovers.map((s) => s.name).join(", ")}`);
    if (!o.cloud) print("No API token: set CLOUDSCALE_API_TOKEN or pass --token-file to run it.");
    else if (readError) print(`The API cannot be read now: ${readError}`);
    else print(`Read so far (no write): ${flavors!.length} flavors, ${existing!.length} server(s) of cluster ${cluster}. Pass --yes to run it.`);
    return 0;
  }
  if (!o.cloud) {
    print("check: no API token: set CLOUDSCALE_API_TOKEN or pass --token-file");
    return 1;
  }
  if (readError || !flavors || !existing) {
    print(`check: cannot read the account: ${readError}`);
    return 1;
  }
  const cloud = o.cloud;
  for (const p of flavorUnitProblems(flavors)) note(p);
  print(`check: cluster "${cluster}" at ${o.apiUrl}; zones ${zonePlans.map((p) => p.zone).join(", ")}; ${existing.length} server(s) of the cluster listed`);
  if (leftovers.length) print(`  ${leftovers.length} server(s) left by an earlier check: deleted at the end (${leftovers.map((s) => s.name).join(", ")})`);

  /** Everything this run created or may have created: name -> uuid (undefined while unknown). */
  const created = new Map<string, string | undefined>();
  /** Servers that were deleted (or given up on) already. */
  const handled = new Set<string>();
  let failed = false;
  let interrupted = false;

  const line = (label: string, ms: number, text: string) => print(`  ${label.padEnd(8)} ${seconds(ms).padStart(6)}  ${text}`);
  const failure = (label: string, ms: number, text: string) => {
    failed = true;
    line(label, ms, `FAILED: ${text}`);
  };
  // The API's refusals (4xx) are read for their words (quota, capacity); 5xx only by status.
  const errorShape = (call: string, e: unknown) => {
    if (!(e instanceof CloudscaleError) || e.status === undefined || e.status >= 500) return;
    const shape = errorShapeProblem(e.body);
    if (shape) note(`${call} answered HTTP ${e.status} with ${shape}`);
  };

  /** Deletes one server: DELETE until the API takes it (it refuses while the server is `changing`), then until GET says 404. */
  async function remove(uuid: string, label = "delete"): Promise<boolean> {
    handled.add(uuid);
    const start = performance.now();
    let busy = 0;
    for (;;) {
      try {
        const outcome = await cloud.deleteServer(uuid);
        line(label, performance.now() - start, `DELETE answered ${outcome === "gone" ? "404 (already gone)" : "204"}${busy ? ` after ${busy} refusal(s) while the server was changing (HTTP 400, which the provider retries)` : ""}`);
        break;
      } catch (e) {
        errorShape("DELETE /v1/servers/{uuid}", e);
        const elapsed = performance.now() - start;
        if (e instanceof CloudscaleError && e.kind === "busy" && elapsed < o.waitDeleteMs) {
          busy++;
          await sleep(o.pollMs); // deleting what it created goes on after an interrupt
          continue;
        }
        failure(label, elapsed, `${(e as Error).message}; server ${uuid} is left behind: delete it by hand`);
        return false;
      }
    }
    const gone = performance.now();
    for (;;) {
      let still: string;
      try {
        const s = await cloud.getServer(uuid);
        if (!s) {
          line("gone", performance.now() - gone, "GET answers 404");
          return true;
        }
        still = `status ${s.status}`;
      } catch (e) {
        errorShape("GET /v1/servers/{uuid}", e);
        still = `unreadable: ${(e as Error).message}`;
      }
      if (performance.now() - start > o.waitDeleteMs) {
        failure("gone", performance.now() - gone, `still there after ${bound(o.waitDeleteMs)} (${still}); server ${uuid} may be left behind`);
        return false;
      }
      await sleep(o.pollMs); // deleting what it created goes on after an interrupt
    }
  }

  async function checkZone(p: ZonePlan): Promise<void> {
    if (!p.flavor) {
      print(`zone ${p.zone}:`);
      failure("flavor", 0, `GET /v1/flavors offers no flavor without GPUs in ${p.zone}`);
      return;
    }
    print(`zone ${p.zone}: ${p.flavor.slug} (smallest of ${p.offered} offered there), image ${p.image}, ${p.volumeSizeGb} GiB root volume`);
    const name = `${cluster}-${CHECK_GROUP}-${randomSuffix()}`;
    const body: CreateServerRequest = {
      name,
      flavor: p.flavor.slug,
      image: p.image,
      zone: p.zone,
      volume_size_gb: p.volumeSizeGb,
      ssh_keys: [],
      tags: { [CLUSTER_TAG]: cluster, [GROUP_TAG]: CHECK_GROUP },
    };
    // 1. create (never interrupted half-way: its answer names what to delete)
    created.set(name, undefined);
    let start = performance.now();
    let server: Server | undefined;
    try {
      server = await cloud.createServer(body);
      created.set(name, server.uuid);
      line("create", performance.now() - start, `${name} (uuid ${server.uuid}), status ${server.status}`);
      for (const problem of createAnswerProblems(server, body, p.flavor)) note(problem);
    } catch (e) {
      const err = e instanceof CloudscaleError ? e : new CloudscaleError("network", String(e));
      errorShape("POST /v1/servers", err);
      if (!err.ambiguous) return failure("create", performance.now() - start, `${err.message}; ${createVerdict(err)}`);
      // No clear answer: as the provider does, look for it by its unique name after createVerifyDelay.
      await pause(o.config.createVerifyDelaySeconds * 1000, o.signal);
      const found = (await cloud.listServers({ [CLUSTER_TAG]: cluster }).catch(() => [] as Server[])).find((s) => s.name === name);
      if (!found) return failure("create", performance.now() - start, `${err.message}; the server does not exist (${createVerdict(err)})`);
      server = found;
      created.set(name, found.uuid);
      line("create", performance.now() - start, `${err.message}, but the server exists (found by its name: uuid ${found.uuid}); the provider does the same`);
    }
    const uuid = server.uuid;
    if (o.signal.aborted) throw new Interrupted();

    // 2. wait until it runs
    start = performance.now();
    const seen = [server.status];
    let status = server.status;
    while (status !== "running") {
      if (status === "error") break;
      if (performance.now() - start >= o.waitRunningMs) break;
      await pause(Math.min(o.pollMs, Math.max(1, o.waitRunningMs - (performance.now() - start))), o.signal);
      try {
        const s = await cloud.getServer(uuid, o.signal);
        if (!s) break;
        status = s.status;
      } catch (e) {
        if (o.signal.aborted) throw new Interrupted();
        errorShape("GET /v1/servers/{uuid}", e);
        continue;
      }
      if (!(status in KNOWN_STATUS)) note(`GET /v1/servers/{uuid} answered status "${status}", which the provider does not know (it knows ${Object.keys(KNOWN_STATUS).join(", ")})`);
      if (seen.at(-1) !== status) seen.push(status);
    }
    const path = seen.join(" → ");
    if (status === "running") line("running", performance.now() - start, path);
    else if (status === "error") failure("running", performance.now() - start, `${path}: the server is in status error; the provider would show CA a failed instance`);
    else failure("running", performance.now() - start, `${path}: not running within ${bound(o.waitRunningMs)}; deleting it anyway`);

    // 3. find it through the provider's list
    start = performance.now();
    try {
      const list = await cloud.listServers({ [CLUSTER_TAG]: cluster }, o.signal);
      const foreign = list.filter((s) => s.tags?.[CLUSTER_TAG] !== cluster);
      if (foreign.length) note(`${listQuery} answered ${foreign.length} server(s) without that tag: the API did not filter (the provider skips them)`);
      const { view } = viewOfList(list, cluster, [CHECK_GROUP]);
      if (view.servers.has(uuid)) line("listed", performance.now() - start, `found by the provider's list (${listQuery}: ${list.length} server(s))`);
      else failure("listed", performance.now() - start, `${listQuery} does not show server ${uuid}: the provider would not see the servers it creates`);
    } catch (e) {
      if (o.signal.aborted) throw new Interrupted();
      errorShape("GET /v1/servers", e);
      failure("listed", performance.now() - start, (e as Error).message);
    }

    // 4. delete it
    if (o.signal.aborted) throw new Interrupted();
    await remove(uuid);
  }

  try {
    for (const p of zonePlans) {
      if (o.signal.aborted) throw new Interrupted();
      await checkZone(p);
    }
  } catch (e) {
    if (!(e instanceof Interrupted)) throw e;
    interrupted = true;
    print("interrupted: deleting what the check created");
  } finally {
    // Everything this run created that is not deleted yet (an interrupted or unanswered create),
    // and what an earlier check left: found by name or uuid through the provider's list.
    let listed: Server[] = [];
    try {
      listed = await cloud.listServers({ [CLUSTER_TAG]: cluster });
    } catch (e) {
      print(`cannot list servers to clean up: ${(e as Error).message}`);
    }
    const uuids = new Set<string>();
    for (const [name, uuid] of created) {
      const found = uuid ?? listed.find((s) => s.name === name)?.uuid;
      if (found) uuids.add(found);
    }
    for (const s of listed) if (s.tags?.[CLUSTER_TAG] === cluster && s.tags?.[GROUP_TAG] === CHECK_GROUP && (created.has(s.name) || leftovers.some((l) => l.uuid === s.uuid))) uuids.add(s.uuid);
    const todo = [...uuids].filter((u) => !handled.has(u));
    if (todo.length) print(`cleanup: ${todo.length} server(s)`);
    for (const uuid of todo) await remove(uuid, "cleanup");
  }

  const left = await leftBehind(cloud, cluster, created, leftovers);
  if (problems.length) {
    print("answers that differ from what the provider expects:");
    for (const p of problems) print(`  - ${p}`);
  } else if (!interrupted) print("every answer was what the provider expects");
  const outcome = interrupted ? "interrupted" : failed || problems.length ? "FAILED" : "passed";
  print(`check ${outcome} in ${seconds(performance.now() - t0)}; ${left.length ? `LEFT BEHIND: ${left.join(", ")} (delete by hand)` : "nothing left behind"}`);
  if (interrupted) return 130;
  return failed || problems.length || left.length ? 1 : 0;
}

/** Servers of this run or of an earlier check that still exist, by name and uuid. */
async function leftBehind(cloud: CheckCloud, cluster: string, created: Map<string, string | undefined>, leftovers: Server[]): Promise<string[]> {
  try {
    const list = await cloud.listServers({ [CLUSTER_TAG]: cluster });
    return list.filter((s) => created.has(s.name) || leftovers.some((l) => l.uuid === s.uuid)).map((s) => `${s.name} (${s.uuid})`);
  } catch (e) {
    return [...created].map(([name, uuid]) => `${name} (${uuid ?? "uuid unknown"}; cannot list to make sure: ${(e as Error).message})`);
  }
}
