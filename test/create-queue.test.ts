// The create queue on its own: how many go out at once, what waits, what is
// cancelled first, and how each kind of failure is reported to CA.
import { beforeEach, describe, expect, test } from "bun:test";
import { configureLog } from "../src/log";
import { CloudscaleError } from "../src/cloudscale";
import { CreateQueue, cancellable, queuedOverMax, type CreateQueueDeps } from "../src/create-queue";
import { CLUSTER_TAG, GROUP_TAG, type NodeGroupConfig } from "../src/types";
import type { PendingCreate } from "../src/view";
import { FakeClock, settle } from "./helpers/fake-clock";
import { FakeCloud } from "./helpers/fake-cloud";

configureLog({ level: "error" });

const GROUP = { name: "a", flavor: "flex-4-2", image: "debian-13", zone: "lpg1" } as NodeGroupConfig;
let clock: FakeClock;
let cloud: FakeCloud;
let may: boolean;
beforeEach(() => {
  clock = new FakeClock();
  cloud = new FakeCloud(clock);
  may = true;
});

function queue(over: Partial<CreateQueueDeps> = {}) {
  const pending = new Map<string, PendingCreate>();
  const q = new CreateQueue({
    clusterName: "c",
    groups: new Map([["a", GROUP]]),
    cloud,
    createRequest: (g, name) => ({ name, flavor: g.flavor, image: g.image, volume_size_gb: 10, ssh_keys: [], tags: { [CLUSTER_TAG]: "c", [GROUP_TAG]: g.name } }),
    pending,
    clock,
    concurrency: 2,
    verifyDelayMs: 5000,
    maxAttempts: 3,
    mayCreate: () => may,
    ...over,
  });
  return { q, pending };
}

describe("CreateQueue", () => {
  test("at most `concurrency` creates at once; the rest follow as they end", async () => {
    cloud.hold("create");
    const { q } = queue();
    for (let i = 1; i <= 5; i++) q.accept("a", `c-a-${i}`);
    await settle();
    expect(cloud.waiting("create").map((c) => (c.arg as { name: string }).name)).toEqual(["c-a-1", "c-a-2"]);
    cloud.waiting("create")[0]!.answer();
    await settle();
    expect(cloud.waiting("create").map((c) => (c.arg as { name: string }).name)).toEqual(["c-a-2", "c-a-3"]);
    cloud.release("create");
    for (const c of cloud.waiting("create")) c.answer();
    await q.whenIdle();
    expect(cloud.count("create")).toBe(5);
  });

  test("nothing goes out while creations may not (the owner is told they are held); a pump after that sends them", async () => {
    may = false;
    let held = 0;
    const { q, pending } = queue({ onHeld: () => held++ });
    q.accept("a", "c-a-1");
    await settle();
    expect(cloud.count("create")).toBe(0);
    expect(pending.get("c-a-1")?.state).toBe("queued");
    expect(held).toBe(1);
    may = true;
    q.pump();
    await q.whenIdle();
    expect(pending.get("c-a-1")).toMatchObject({ state: "created", attempts: 1 });
    expect(held).toBe(1);
  });

  test("cancelQueued takes the newest waiting ones, never one on its way", async () => {
    cloud.hold("create");
    const { q, pending } = queue({ concurrency: 1 });
    for (let i = 1; i <= 4; i++) {
      q.accept("a", `c-a-${i}`);
      await clock.advance(1);
    }
    expect(q.cancelQueued("a", 2)).toBe(2);
    expect([...pending.keys()]).toEqual(["c-a-1", "c-a-2"]);
    expect(q.cancelQueued("a", 5)).toBe(1); // c-a-1 is being sent
    expect([...pending.keys()]).toEqual(["c-a-1"]);
    cloud.release("create");
    cloud.waiting("create")[0]!.answer();
    await q.whenIdle();
    expect(cloud.count("create")).toBe(1);
  });

  test("failures: quota and capacity are OutOfResources, others Other; a bad request body fails without a call", async () => {
    const failed: string[] = [];
    const { q, pending } = queue({
      onFailed: (p) => failed.push(`${p.name} ${p.error?.code}`),
      createRequest: (g, name) => {
        if (name === "c-a-bad") throw new Error("user-data cannot be patched");
        return { name, flavor: g.flavor, image: g.image, volume_size_gb: 10, ssh_keys: [], tags: {} };
      },
    });
    cloud.next("create", new CloudscaleError("quota", "Quota exceeded", 400));
    q.accept("a", "c-a-q");
    await q.whenIdle();
    cloud.next("create", new CloudscaleError("capacity", "Insufficient capacity", 400));
    q.accept("a", "c-a-c");
    await q.whenIdle();
    cloud.next("create", new CloudscaleError("validation", "image: broken", 400));
    q.accept("a", "c-a-v");
    await q.whenIdle();
    q.accept("a", "c-a-bad");
    await q.whenIdle();
    expect([...pending.values()].map((p) => [p.name, p.state, p.error?.code, p.error?.errorClass])).toEqual([
      ["c-a-q", "failed", "QUOTA_EXCEEDED", 1],
      ["c-a-c", "failed", "OUT_OF_CAPACITY", 1],
      ["c-a-v", "failed", "CREATE_FAILED", 99],
      ["c-a-bad", "failed", "CREATE_FAILED", 99],
    ]);
    expect(failed).toEqual(["c-a-q QUOTA_EXCEEDED", "c-a-c OUT_OF_CAPACITY", "c-a-v CREATE_FAILED", "c-a-bad CREATE_FAILED"]);
    expect(cloud.count("create")).toBe(3);
  });
});

describe("pure helpers", () => {
  const p = (state: PendingCreate["state"], acceptedAt: number): PendingCreate => ({ name: `${state}-${acceptedAt}`, group: "a", acceptedAt, state, attempts: 0 });

  test("queuedOverMax counts what exists and what is on its way", () => {
    const pending = [p("queued", 1), p("queued", 2), p("creating", 3), p("created", 4)];
    expect(queuedOverMax(pending, 2, 5)).toBe(0);
    expect(queuedOverMax(pending, 3, 5)).toBe(1);
    expect(queuedOverMax(pending, 6, 5)).toBe(2);
  });

  test("cancellable: failed first, then queued, newest first; nothing on its way or created", () => {
    const pending = [p("queued", 1), p("failed", 2), p("queued", 3), p("creating", 4), p("failed", 5), p("created", 6), p("verifying", 7)];
    expect(cancellable(pending).map((x) => x.name)).toEqual(["failed-5", "failed-2", "queued-3", "queued-1"]);
  });
});
