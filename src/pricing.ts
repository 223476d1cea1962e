// Prices for CA's price expander (PricingNodePrice / PricingPodPrice).
//
// cloudscale's API has no prices. The numbers below are ESTIMATES, not
// cloudscale's list prices: a per-vCPU + per-GiB model per flavor family,
// dated PRICE_TABLE_DATE. The price expander only compares node groups with one
// another, so what matters is that the ratios between flavors are sensible
// (dedicated vCPUs cost more than shared ones, GPUs dominate everything). For
// real numbers set `prices:` (flavor slug → CHF per hour) in the config, which is
// merged over BUILTIN_PRICES, or `pricePerHour` on a node group, which wins over
// both.

import { GPU_RESOURCE, type Flavor, type NodeGroupConfig } from "./types";
import type { Pod } from "./gen/k8s.io/api/core/v1/generated_pb";
import type { Quantity } from "./gen/k8s.io/apimachinery/pkg/api/resource/generated_pb";
import { GiB, parseBytes, parseCpuMillis } from "./quantity";

/** Date the estimate model was set. */
export const PRICE_TABLE_DATE = "2026-11-25";

/**
 * The estimate model, CHF per hour:
 * - flex (shared vCPU):     0.006 per vCPU + 0.0045 per GiB RAM
 *                           (flex-4-1 ≈ 0.024/h ≈ CHF 17.5 per 30 days)
 * - plus (dedicated vCPU):  0.020 per vCPU + 0.0045 per GiB RAM
 *                           (plus-32-8 ≈ 0.304/h)
 * - GPU flavors:            plus rates for vCPU/RAM + 1.50 per GPU
 *                           (gpu2-128-16-1-200 ≈ 2.40/h)
 * Any other family is priced at plus rates.
 */
export const PRICE_MODEL = {
  flex: { perVcpu: 0.006, perGiB: 0.0045 },
  plus: { perVcpu: 0.02, perGiB: 0.0045 },
  perGpu: 1.5,
} as const;

function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

/** Estimated CHF per hour of a flavor, from the model (works for any flavor the API lists). */
export function estimateFlavorPricePerHour(flavor: Pick<Flavor, "slug" | "vcpu_count" | "memory_gb" | "gpu">): number {
  const rates = flavor.slug.startsWith("flex-") && !flavor.gpu ? PRICE_MODEL.flex : PRICE_MODEL.plus;
  const gpus = flavor.gpu && flavor.gpu.count > 0 ? flavor.gpu.count : 0;
  return round6(flavor.vcpu_count * rates.perVcpu + flavor.memory_gb * rates.perGiB + gpus * PRICE_MODEL.perGpu);
}

/** Parses "<family>-<memGB>-<vcpus>[-…]" slugs for the built-in table. */
function sized(slug: string, gpu: Flavor["gpu"] = null) {
  const [, mem, cpu] = slug.split("-");
  return { slug, memory_gb: Number(mem), vcpu_count: Number(cpu), gpu };
}

/**
 * Built-in table (CHF per hour, estimates as of PRICE_TABLE_DATE) for representative
 * flex/plus/GPU slugs, computed from PRICE_MODEL. Flavors missing here are priced by
 * `estimateFlavorPricePerHour` from their size.
 */
export const BUILTIN_PRICES: Readonly<Record<string, number>> = Object.freeze(
  Object.fromEntries(
    [
      ...["flex-4-1", "flex-4-2", "flex-8-2", "flex-8-4", "flex-16-4", "flex-16-8", "flex-32-8", "flex-32-16", "flex-48-12", "flex-64-16", "flex-80-20", "flex-96-24"].map((s) => sized(s)),
      ...["plus-8-2", "plus-16-4", "plus-32-8", "plus-48-12", "plus-64-16", "plus-80-20", "plus-96-24", "plus-128-32", "plus-192-48", "plus-192-96"].map((s) => sized(s)),
      sized("gpu2-128-16-1-200", { name: "NVIDIA RTX PRO 6000 Max-Q", count: 1, vram_per_gpu_gb: 96, total_vram_gb: 96 }),
    ].map((f) => [f.slug, estimateFlavorPricePerHour(f)]),
  ),
);

/**
 * CHF per hour for a group's servers: the group's `pricePerHour`, else `prices[slug]`
 * (the config's table, normally already merged over BUILTIN_PRICES), else
 * BUILTIN_PRICES, else the model's estimate.
 */
export function pricePerHourFor(
  group: Pick<NodeGroupConfig, "pricePerHour">,
  flavor: Flavor,
  prices: Readonly<Record<string, number>> = {},
): number {
  if (group.pricePerHour !== undefined) return group.pricePerHour;
  return prices[flavor.slug] ?? BUILTIN_PRICES[flavor.slug] ?? estimateFlavorPricePerHour(flavor);
}

/** Price of running a node from startSec to endSec (Unix seconds): pricePerHour × hours; 0 for an empty or inverted interval. */
export function nodePrice(pricePerHour: number, startSec: number, endSec: number): number {
  const seconds = endSec - startSec;
  if (!(seconds > 0) || !(pricePerHour > 0)) return 0;
  return (pricePerHour * seconds) / 3600;
}

/** What a pod asks for, as Kubernetes counts it for scheduling. */
export interface PodRequests {
  cpuMillis: number;
  memoryBytes: number;
  /** nvidia.com/gpu. */
  gpus: number;
}

/**
 * The pod's share of its node's price for the interval: the node price times the
 * largest of its CPU, memory and (on GPU flavors) GPU fraction of the flavor's
 * nominal size, capped at 1. A pod that fills a node's memory pays for the whole
 * node even if it uses one core — that is what keeps others off the node.
 */
export function podPrice(
  requests: { cpuMillis: number; memoryBytes: number; gpus?: number },
  flavor: Flavor,
  pricePerHour: number,
  startSec: number,
  endSec: number,
): number {
  const fractions: number[] = [];
  if (flavor.vcpu_count > 0) fractions.push(Math.max(0, requests.cpuMillis) / (flavor.vcpu_count * 1000));
  if (flavor.memory_gb > 0) fractions.push(Math.max(0, requests.memoryBytes) / (flavor.memory_gb * GiB));
  if (flavor.gpu && flavor.gpu.count > 0) fractions.push(Math.max(0, requests.gpus ?? 0) / flavor.gpu.count);
  const share = Math.min(1, Math.max(0, ...fractions));
  return share * nodePrice(pricePerHour, startSec, endSec);
}

type ResourceMap = { [key: string]: Quantity };

function readMap(requests: ResourceMap | undefined, limits: ResourceMap | undefined): PodRequests {
  // The API server defaults a missing request to the limit; do the same for
  // objects that were not defaulted.
  const get = (name: string): string | undefined => requests?.[name]?.string || limits?.[name]?.string || undefined;
  const cpu = get("cpu");
  const memory = get("memory");
  const gpu = get(GPU_RESOURCE);
  return {
    cpuMillis: cpu ? Math.max(0, parseCpuMillis(cpu)) : 0,
    memoryBytes: memory ? Math.max(0, parseBytes(memory)) : 0,
    gpus: gpu ? Math.max(0, Math.ceil(parseBytes(gpu))) : 0,
  };
}

function sum(a: PodRequests, b: PodRequests): PodRequests {
  return { cpuMillis: a.cpuMillis + b.cpuMillis, memoryBytes: a.memoryBytes + b.memoryBytes, gpus: a.gpus + b.gpus };
}

function max(a: PodRequests, b: PodRequests): PodRequests {
  return {
    cpuMillis: Math.max(a.cpuMillis, b.cpuMillis),
    memoryBytes: Math.max(a.memoryBytes, b.memoryBytes),
    gpus: Math.max(a.gpus, b.gpus),
  };
}

/**
 * A pod's effective requests, the way the scheduler counts them
 * (k8s.io/component-helpers resource.PodRequests):
 * - per resource, the larger of the sum over `containers` and the largest single
 *   init container (init containers run one at a time before the others);
 * - pod-level `spec.resources` cpu/memory (requests, else limits, as the API
 *   server defaults them), when set, replace the container aggregate for that
 *   resource;
 * - `spec.overhead` (RuntimeClass overhead) is added on top.
 * Sidecar init containers (restartPolicy Always) cannot be told apart with the
 * fields we decode and are counted like ordinary init containers.
 * Invalid quantity strings throw.
 */
export function podRequests(pod: Pod): PodRequests {
  const spec = pod.spec;
  const zero: PodRequests = { cpuMillis: 0, memoryBytes: 0, gpus: 0 };
  if (!spec) return zero;
  let containers = zero;
  for (const c of spec.containers) containers = sum(containers, readMap(c.resources?.requests, c.resources?.limits));
  let init = zero;
  for (const c of spec.initContainers) init = max(init, readMap(c.resources?.requests, c.resources?.limits));
  let total = max(containers, init);

  const podLevel = spec.resources;
  if (podLevel) {
    const cpu = podLevel.requests?.cpu?.string || podLevel.limits?.cpu?.string;
    const memory = podLevel.requests?.memory?.string || podLevel.limits?.memory?.string;
    if (cpu) total = { ...total, cpuMillis: Math.max(0, parseCpuMillis(cpu)) };
    if (memory) total = { ...total, memoryBytes: Math.max(0, parseBytes(memory)) };
  }

  if (spec.overhead && Object.keys(spec.overhead).length > 0) {
    total = sum(total, readMap(spec.overhead, undefined));
  }
  return total;
}
