// The provider's flavor catalog as templateNode meets it, with a fake cloud whose
// flavor list is held: the caller's deadline bounds the wait for a first load.
import { expect, test } from "bun:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { ProviderError } from "../src/errors";
import { configureLog } from "../src/log";
import { toConnectError } from "../src/service";
import { FLAVOR_CATALOG_MAX_AGE_MS, createProvider } from "../src/provider";
import { parseConfig } from "../src/config";
import { FakeClock, settle } from "./helpers/fake-clock";
import { FakeCloud } from "./helpers/fake-cloud";

configureLog({ level: "error" });

const config = parseConfig("clusterName: c\nnodeGroups:\n  - {name: gpu, flavor: gpu2-128-16-1-200, image: debian-13, zone: rma1, min: 0, max: 2}\n");
const GPU = { slug: "gpu2-128-16-1-200", name: "GPU2-128-16-1-200", vcpu_count: 16, memory_gb: 128, gpu: { name: "NVIDIA RTX PRO 6000 Max-Q", count: 1, vram_per_gpu_gb: 96, total_vram_gb: 96 }, zones: [{ slug: "rma1" }] };

test("a first flavor load that outlasts the caller's deadline: templateNode gives up with it; the load's result serves the next call", async () => {
  const clock = new FakeClock();
  const cloud = new FakeCloud(clock);
  cloud.flavors = [GPU];
  cloud.hold("flavors");
  const provider = createProvider({ config, cloud, clock });

  const caller = new AbortController();
  let outcome: unknown = "waiting";
  const first = provider.templateNode("gpu", caller.signal).then((r) => r, (e) => e);
  first.then((r) => (outcome = r), (e: unknown) => (outcome = e));
  await settle();
  expect(outcome).toBe("waiting"); // no flavor known, no way to build the template yet
  caller.abort(); // CA's deadline
  await settle();
  expect(outcome).toBeInstanceOf(ProviderError);
  expect((outcome as ProviderError).kind).toBe("deadline-exceeded");
  expect((toConnectError(outcome) as ConnectError).code).toBe(Code.DeadlineExceeded);

  cloud.waiting("flavors")[0]!.answer(); // the load ends after the caller left
  await settle();
  const { node } = await provider.templateNode("gpu", new AbortController().signal);
  expect(node.status?.capacity["nvidia.com/gpu"]?.string).toBe("1");
  expect(cloud.count("flavors")).toBe(1); // served from what the first load brought
  provider.stop();
});

const FLEX = (vcpus: number, memoryGb: number) => ({ slug: "flex-8-2", name: "Flex-8-2", vcpu_count: vcpus, memory_gb: memoryGb, gpu: null, zones: [{ slug: "lpg1" }] });
const flexConfig = parseConfig("clusterName: c\nnodeGroups:\n  - {name: w, flavor: flex-8-2, image: debian-13, zone: lpg1, min: 0, max: 2}\n");
const cpuOf = async (provider: ReturnType<typeof createProvider>) => (await provider.templateNode("w", new AbortController().signal)).node.status?.capacity.cpu?.string;

test("the flavor catalog: the slug while the API cannot be reached at the start, then the API's list, re-read once it is older than its bound", async () => {
  const clock = new FakeClock();
  const cloud = new FakeCloud(clock);
  cloud.next("flavors", new Error("connection refused"));
  cloud.next("flavors", new Error("connection refused"));
  const provider = createProvider({ config: flexConfig, cloud, clock });
  await provider.start();
  expect(cloud.count("flavors")).toBe(1);
  // Before any list, a template waits for one more try, then reads the slug flex-8-2.
  expect(await cpuOf(provider)).toBe("2");
  expect(cloud.count("flavors")).toBe(2);

  // The API answers: its numbers win over the slug's (here they differ, so the source shows).
  cloud.flavors = [FLEX(3, 8)];
  await provider.refresh(new AbortController().signal);
  await settle();
  expect(cloud.count("flavors")).toBe(3);
  expect(await cpuOf(provider)).toBe("3");

  // Within the bound, a Refresh does not read the list again.
  cloud.flavors = [FLEX(4, 8)];
  await clock.advance(FLAVOR_CATALOG_MAX_AGE_MS - 1000);
  await provider.refresh(new AbortController().signal);
  await settle();
  expect(cloud.count("flavors")).toBe(3);
  expect(await cpuOf(provider)).toBe("3");

  // Past it, the next Refresh reads it, and the template follows.
  await clock.advance(2000);
  await provider.refresh(new AbortController().signal);
  await settle();
  expect(cloud.count("flavors")).toBe(4);
  expect(await cpuOf(provider)).toBe("4");

  // A failed re-read keeps the last list (not the slug), and the next Refresh tries again.
  await clock.advance(FLAVOR_CATALOG_MAX_AGE_MS + 1000);
  cloud.next("flavors", new Error("connection refused"));
  await provider.refresh(new AbortController().signal);
  await settle();
  expect(cloud.count("flavors")).toBe(5);
  expect(await cpuOf(provider)).toBe("4");
  await provider.refresh(new AbortController().signal);
  await settle();
  expect(cloud.count("flavors")).toBe(6);
  provider.stop();
});

test("a flavor answer that cannot be read leaves the last catalog in place", async () => {
  const clock = new FakeClock();
  const cloud = new FakeCloud(clock);
  cloud.flavors = [FLEX(3, 8)];
  const provider = createProvider({ config: flexConfig, cloud, clock });
  await provider.start();
  expect(await cpuOf(provider)).toBe("3");

  // Past the bound, the re-read gets a page where the list belongs (what a client that casts instead
  // of parsing would hand over): the catalog it had stays, rather than the slug's numbers.
  await clock.advance(FLAVOR_CATALOG_MAX_AGE_MS + 1000);
  cloud.flavors = "<html><body>Sign in to the network</body></html>" as unknown as (typeof cloud.flavors);
  await provider.refresh(new AbortController().signal);
  await settle();
  expect(cloud.count("flavors")).toBe(2);
  expect(await cpuOf(provider)).toBe("3");
  provider.stop();
});
