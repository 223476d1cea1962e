import { describe, expect, test } from "bun:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  ContainerSchema,
  PodSchema,
  PodSpecSchema,
  ResourceRequirementsSchema,
  type Container,
} from "../src/gen/k8s.io/api/core/v1/generated_pb";
import { QuantitySchema } from "../src/gen/k8s.io/apimachinery/pkg/api/resource/generated_pb";
import type { Flavor } from "../src/types";
import {
  BUILTIN_PRICES,
  PRICE_MODEL,
  PRICE_TABLE_DATE,
  estimateFlavorPricePerHour,
  nodePrice,
  podPrice,
  podRequests,
  pricePerHourFor,
} from "../src/pricing";
import { GiB, MiB } from "../src/quantity";

const flavor = (slug: string, vcpu: number, mem: number, gpu: Flavor["gpu"] = null): Flavor => ({
  slug,
  name: slug,
  vcpu_count: vcpu,
  memory_gb: mem,
  gpu,
  zones: [{ slug: "rma1" }],
});
const flex82 = flavor("flex-8-2", 2, 8);
const plus82 = flavor("plus-8-2", 2, 8);
const gpu = flavor("gpu2-128-16-1-200", 16, 128, {
  name: "NVIDIA RTX PRO 6000 Max-Q",
  count: 1,
  vram_per_gpu_gb: 96,
  total_vram_gb: 96,
});

const q = (s: string) => create(QuantitySchema, { string: s });
const res = (requests: Record<string, string>, limits: Record<string, string> = {}) =>
  create(ResourceRequirementsSchema, {
    requests: Object.fromEntries(Object.entries(requests).map(([k, v]) => [k, q(v)])),
    limits: Object.fromEntries(Object.entries(limits).map(([k, v]) => [k, q(v)])),
  });
const container = (requests: Record<string, string>, limits: Record<string, string> = {}): Container =>
  create(ContainerSchema, { name: "c", resources: res(requests, limits) });

describe("price table", () => {
  test("is dated and has the families", () => {
    expect(PRICE_TABLE_DATE).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(BUILTIN_PRICES["flex-4-1"]).toBeCloseTo(0.006 + 4 * 0.0045, 9);
    expect(BUILTIN_PRICES["plus-32-8"]).toBeCloseTo(8 * 0.02 + 32 * 0.0045, 9);
    expect(BUILTIN_PRICES["gpu2-128-16-1-200"]).toBeCloseTo(16 * 0.02 + 128 * 0.0045 + 1.5, 9);
  });

  test("dedicated costs more than shared, GPUs dominate, bigger costs more", () => {
    expect(estimateFlavorPricePerHour(plus82)).toBeGreaterThan(estimateFlavorPricePerHour(flex82));
    expect(estimateFlavorPricePerHour(gpu)).toBeGreaterThan(estimateFlavorPricePerHour(flavor("plus-192-96", 96, 192)) / 2);
    expect(BUILTIN_PRICES["flex-16-4"]!).toBeGreaterThan(BUILTIN_PRICES["flex-8-2"]!);
    for (const v of Object.values(BUILTIN_PRICES)) expect(v).toBeGreaterThan(0);
  });

  test("unknown flavors are priced by the model (at plus rates for unknown families)", () => {
    expect(estimateFlavorPricePerHour(flavor("flex-12-3", 3, 12))).toBeCloseTo(3 * PRICE_MODEL.flex.perVcpu + 12 * PRICE_MODEL.flex.perGiB, 9);
    expect(estimateFlavorPricePerHour(flavor("mystery-8-2", 2, 8))).toBeCloseTo(estimateFlavorPricePerHour(plus82), 9);
  });

  test("pricePerHourFor: group override, then config table, then built-in, then model", () => {
    expect(pricePerHourFor({ pricePerHour: 0.5 }, flex82, { "flex-8-2": 0.1 })).toBe(0.5);
    expect(pricePerHourFor({}, flex82, { "flex-8-2": 0.1 })).toBe(0.1);
    expect(pricePerHourFor({}, flex82)).toBe(BUILTIN_PRICES["flex-8-2"]!);
    const odd = flavor("flex-12-3", 3, 12);
    expect(pricePerHourFor({}, odd, {})).toBe(estimateFlavorPricePerHour(odd));
  });
});

describe("nodePrice", () => {
  test.each([
    [0.1, 0, 3600, 0.1],
    [0.1, 1000, 1000 + 1800, 0.05],
    [0.24, 0, 86400, 5.76],
    [0.1, 100, 100, 0],
    [0.1, 200, 100, 0],
    [0, 0, 3600, 0],
  ])("%p CHF/h from %p to %p → %p", (price, start, end, want) => {
    expect(nodePrice(price, start, end)).toBeCloseTo(want, 12);
  });
});

describe("podRequests", () => {
  test("sums containers", () => {
    const pod = create(PodSchema, {
      spec: create(PodSpecSchema, {
        containers: [container({ cpu: "250m", memory: "256Mi" }), container({ cpu: "1", memory: "1Gi" })],
      }),
    });
    expect(podRequests(pod)).toEqual({ cpuMillis: 1250, memoryBytes: 1280 * MiB, gpus: 0 });
  });

  test("init containers count by their maximum, per resource", () => {
    const pod = create(PodSchema, {
      spec: create(PodSpecSchema, {
        containers: [container({ cpu: "100m", memory: "2Gi" })],
        initContainers: [container({ cpu: "2", memory: "64Mi" }), container({ cpu: "500m", memory: "1Gi" })],
      }),
    });
    expect(podRequests(pod)).toEqual({ cpuMillis: 2000, memoryBytes: 2 * GiB, gpus: 0 });
  });

  test("overhead is added", () => {
    const pod = create(PodSchema, {
      spec: create(PodSpecSchema, {
        containers: [container({ cpu: "100m", memory: "100Mi" })],
        overhead: { cpu: q("250m"), memory: q("120Mi") },
      }),
    });
    expect(podRequests(pod)).toEqual({ cpuMillis: 350, memoryBytes: 220 * MiB, gpus: 0 });
  });

  test("pod-level resources replace the container sum, overhead still added", () => {
    const pod = create(PodSchema, {
      spec: create(PodSpecSchema, {
        containers: [container({ cpu: "100m", memory: "100Mi" }), container({ cpu: "100m" })],
        resources: res({ cpu: "1" }),
        overhead: { cpu: q("10m") },
      }),
    });
    expect(podRequests(pod)).toEqual({ cpuMillis: 1010, memoryBytes: 100 * MiB, gpus: 0 });
  });

  test("limits stand in for missing requests; GPUs counted", () => {
    const pod = create(PodSchema, {
      spec: create(PodSpecSchema, {
        containers: [container({}, { cpu: "2", memory: "4Gi", "nvidia.com/gpu": "1" })],
      }),
    });
    expect(podRequests(pod)).toEqual({ cpuMillis: 2000, memoryBytes: 4 * GiB, gpus: 1 });
  });

  test("decimal and exponent quantities", () => {
    const pod = create(PodSchema, {
      spec: create(PodSpecSchema, { containers: [container({ cpu: "0.5", memory: "1G" }), container({ memory: "1e6" })] }),
    });
    expect(podRequests(pod)).toEqual({ cpuMillis: 500, memoryBytes: 1_001_000_000, gpus: 0 });
  });

  test("empty pod and pod without spec", () => {
    expect(podRequests(create(PodSchema, {}))).toEqual({ cpuMillis: 0, memoryBytes: 0, gpus: 0 });
    expect(podRequests(create(PodSchema, { spec: create(PodSpecSchema, { containers: [container({})] }) }))).toEqual({
      cpuMillis: 0,
      memoryBytes: 0,
      gpus: 0,
    });
  });

  test("works on a Pod decoded from bytes (as PricingPodPrice receives it)", () => {
    const pod = create(PodSchema, { spec: create(PodSpecSchema, { containers: [container({ cpu: "1500m", memory: "3Gi" })] }) });
    const back = fromBinary(PodSchema, toBinary(PodSchema, pod));
    expect(podRequests(back)).toEqual({ cpuMillis: 1500, memoryBytes: 3 * GiB, gpus: 0 });
  });

  test("invalid quantity strings throw", () => {
    const pod = create(PodSchema, { spec: create(PodSpecSchema, { containers: [container({ cpu: "lots" })] }) });
    expect(() => podRequests(pod)).toThrow(/invalid quantity/);
  });
});

describe("podPrice", () => {
  const hour = [0, 3600] as const;

  test("the larger of cpu and memory fraction", () => {
    // 1 of 2 cores (50%) and 2 of 8 GiB (25%) → 50%.
    expect(podPrice({ cpuMillis: 1000, memoryBytes: 2 * GiB }, flex82, 0.1, ...hour)).toBeCloseTo(0.05, 12);
    // 250m (12.5%) and 6 GiB (75%) → 75%.
    expect(podPrice({ cpuMillis: 250, memoryBytes: 6 * GiB }, flex82, 0.1, ...hour)).toBeCloseTo(0.075, 12);
  });

  test("capped at the whole node", () => {
    expect(podPrice({ cpuMillis: 8000, memoryBytes: 0 }, flex82, 0.1, ...hour)).toBeCloseTo(0.1, 12);
  });

  test("zero requests cost nothing; interval scales the price", () => {
    expect(podPrice({ cpuMillis: 0, memoryBytes: 0 }, flex82, 0.1, ...hour)).toBe(0);
    expect(podPrice({ cpuMillis: 1000, memoryBytes: 0 }, flex82, 0.1, 0, 7200)).toBeCloseTo(0.1, 12);
  });

  test("a GPU pod pays for the GPU share on GPU flavors", () => {
    expect(podPrice({ cpuMillis: 100, memoryBytes: GiB, gpus: 1 }, gpu, 2.4, ...hour)).toBeCloseTo(2.4, 12);
    expect(podPrice({ cpuMillis: 100, memoryBytes: GiB, gpus: 1 }, flex82, 0.1, ...hour)).toBeCloseTo(0.1 / 8, 12);
  });
});
