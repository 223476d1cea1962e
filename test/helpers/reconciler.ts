// The reconciler under test: a fake clock, a fake cloud, one group "pool" of
// cluster "uc", predictable server names. Shared by the ordering tests.
import { ConnectError, type Code } from "@connectrpc/connect";
import { configureLog } from "../../src/log";
import { Reconciler, type ReconcilerDeps } from "../../src/reconciler";
import { toConnectError } from "../../src/service";
import { CLUSTER_TAG, GROUP_TAG, type NodeGroupConfig, type ProviderConfig } from "../../src/types";
import type { FakeClock } from "./fake-clock";
import { ourTags, type FakeCloud } from "./fake-cloud";

export const CLUSTER = "uc";
export const ours = (group = "pool") => ourTags(CLUSTER, group);

export function group(name: string, min: number, max: number): NodeGroupConfig {
  return {
    name,
    flavor: "flex-4-2",
    image: "debian-13",
    zone: "lpg1",
    min,
    max,
    volumeSizeGb: 10,
    userData: "",
    userDataFormat: "none",
    labels: {},
    taints: [],
    serverGroups: [],
    sshKeys: [],
    tags: {},
    reservationOverrides: {},
  };
}

export function config(over: Partial<ProviderConfig> = {}, groups = [group("pool", 0, 20)]): ProviderConfig {
  return {
    clusterName: CLUSTER,
    nodeGroups: groups,
    prices: {},
    createConcurrency: 10,
    maxViewAgeSeconds: 120,
    failedCreateTtlSeconds: 900,
    createVerifyDelaySeconds: 5,
    apiTimeoutSeconds: 30,
    startupGraceSeconds: 0,
    ...over,
  };
}

/** Builds reconcilers on one clock and one cloud. */
export function reconcilers(clock: FakeClock, cloud: FakeCloud) {
  function reconciler(over: Partial<ReconcilerDeps> = {}, cfg = config()): Reconciler {
    let n = 0;
    return new Reconciler({
      config: cfg,
      cloud,
      clock,
      createRequest: (g, name) => ({ name, flavor: g.flavor, image: g.image, zone: g.zone, volume_size_gb: 10, ssh_keys: [], tags: { [CLUSTER_TAG]: CLUSTER, [GROUP_TAG]: g.name } }),
      verifyDelayMs: 5000,
      maxCreateAttempts: 3,
      startupGraceMs: 0,
      nameSuffix: () => `n${String(++n).padStart(7, "0")}`,
      ...over,
    });
  }
  /** A reconciler that has applied its first list. */
  async function started(...args: Parameters<typeof reconciler>): Promise<Reconciler> {
    const r = reconciler(...args);
    await r.refresh();
    return r;
  }
  return { reconciler, started };
}

export const node = (uuid: string) => ({ providerID: `cloudscale://${uuid}`, name: "" });

/** The gRPC code CA would get for what `p` throws (the service maps the provider's errors at the edge), or "ok". */
export async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<Code | "ok"> {
  try {
    await (typeof p === "function" ? p() : p);
    return "ok";
  } catch (e) {
    const mapped = toConnectError(e);
    if (mapped instanceof ConnectError) return mapped.code;
    throw e;
  }
}

export /** Log lines written while `fn` runs (info and above), as text. */
async function logged(fn: () => Promise<void>): Promise<string[]> {
  const lines: string[] = [];
  const write = process.stderr.write;
  configureLog({ level: "info", format: "text" });
  process.stderr.write = ((chunk: string | Uint8Array) => {
    lines.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  try {
    await fn();
  } finally {
    process.stderr.write = write;
    configureLog({ level: "error" });
  }
  return lines;
}
