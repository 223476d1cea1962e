import { configureLog } from "../src/log";
configureLog({ level: "error" });
// Orders of events around CA's calls and the provider's own work, forced with a
// fake clock and a fake cloud (as in test/reconciler.test.ts): DeleteNodes against
// a creation on its way, the attempts of one creation, what one list settles before
// anything goes out, stopping, the provider's own lists that keep the view fresh,
// a silence that counts as a start (rule 14) and other instances (rule 15).
import { beforeEach, describe, expect, test } from "bun:test";
import { Code } from "@connectrpc/connect";
import { CloudscaleError } from "../src/cloudscale";
import { IDLE_RESTART_FLOOR_MS } from "../src/instances";
import type { Reconciler } from "../src/reconciler";
import { INSTANCE_TAG } from "../src/types";
import { PENDING_ID_PREFIX } from "../src/view";
import { FakeClock, settle } from "./helpers/fake-clock";
import { FakeCloud, lost } from "./helpers/fake-cloud";
import { codeOf, config, group, logged, node, ours, reconcilers } from "./helpers/reconciler";

let clock: FakeClock;
let cloud: FakeCloud;
let started: ReturnType<typeof reconcilers>["started"];

beforeEach(() => {
  clock = new FakeClock();
  cloud = new FakeCloud(clock);
  ({ started } = reconcilers(clock, cloud));
});

const posts = () => cloud.count("create");
const pendingNode = (name: string) => ({ providerID: `${PENDING_ID_PREFIX}${name}`, name: "" });
const unavailable = () => new CloudscaleError("server", "HTTP 503", 503);

describe("DeleteNodes against a creation on its way: an OK means the server goes", () => {
  test("CA read the pending id while the POST was out and names it after the POST was answered: the server is deleted", async () => {
    const r = await started();
    cloud.hold("create");
    const [name] = r.increaseSize("pool", 1);
    await settle();
    expect(r.nodes("pool").map((i) => i.id)).toEqual([`${PENDING_ID_PREFIX}${name}`]); // what CA reads now
    cloud.waiting("create")[0]!.answer(); // the POST is answered: the server exists
    await settle();
    expect(cloud.servers.size).toBe(1);
    expect(await codeOf(r.deleteNodes("pool", [pendingNode(name!)]))).toBe("ok");
    expect(cloud.servers.size).toBe(0); // before the fix: OK, and the server stayed (target 1)
    expect(r.targetSize("pool")).toBe(0);
  });

  test("the POST goes out while DeleteNodes waits for the cloud's word: nothing is deleted, the creation goes on", async () => {
    const a = cloud.add("uc-pool-aaaaaaaa", ours());
    const r = await started({}, config({ createConcurrency: 1 }));
    cloud.hold("create");
    const [first, second] = r.increaseSize("pool", 2); // the first is sent, the second waits its turn
    await settle();
    expect(cloud.waiting("create")).toHaveLength(1);
    cloud.hold("get");
    const deleting = codeOf(r.deleteNodes("pool", [node(a.uuid), pendingNode(second!)]));
    await settle();
    expect(cloud.waiting("get")).toHaveLength(1); // confirming that a is ours
    cloud.waiting("create")[0]!.answer(); // the first is answered: the second goes out now
    await settle();
    expect(cloud.waiting("create").map((c) => (c.arg as { name: string }).name)).toEqual([second!]);
    cloud.waiting("get")[0]!.answer();
    expect(await deleting).toBe(Code.Unavailable); // before the fix: OK, and the second's server was left untracked
    expect(cloud.count("delete")).toBe(0);
    cloud.waiting("create")[0]!.answer();
    await settle();
    expect(r.targetSize("pool")).toBe(3);
    expect(first).not.toBe(second);
    expect([...cloud.servers.values()].map((s) => s.name).sort()).toEqual(["uc-pool-aaaaaaaa", first!, second!].sort());
  });
});

describe("the attempts of one creation", () => {
  test("a creation Refresh sends again is reported failed after maxAttempts, not sent forever", async () => {
    const r = await started({ maxCreateAttempts: 2 });
    cloud.next("create", lost(), false); // no answer, and nothing was created
    r.increaseSize("pool", 1);
    await settle();
    for (let attempt = 1; attempt <= 2; attempt++) {
      cloud.next("list", unavailable()); // the check after verifyDelay cannot tell: a list decides
      await clock.advance(5_000);
      if (attempt === 1) cloud.next("create", lost(), false); // the POST sent again gets no answer either
      await clock.advance(1_000);
      await r.refresh(); // starts after the check's delay and shows no server: send it again, or give up
      await settle();
    }
    expect(posts()).toBe(2); // before the fix: a third POST (and one more per such Refresh)
    const [instance] = r.nodes("pool");
    expect(instance?.error?.code).toBe("CREATE_FAILED");
    expect(r.snapshot().groups[0]!.lastError?.message).toMatch(/2 attempt\(s\) got no clear answer/);
  });

  test("an older attempt's check that was taken before a newer POST is not acted on: one server, not two", async () => {
    const r = await started();
    cloud.next("create", lost(), false); // attempt 1: no answer, nothing created
    r.increaseSize("pool", 1);
    await settle();
    cloud.hold("list");
    await clock.advance(5_000);
    const check = cloud.waiting("list"); // attempt 1's check by name, on its way
    expect(check).toHaveLength(1);
    await clock.advance(1);
    const refresh = r.refresh(); // CA's Refresh: its list starts after the check's delay
    await settle();
    const list = cloud.waiting("list").filter((c) => c !== check[0]);
    expect(list).toHaveLength(1);
    cloud.next("create", lost(), true); // attempt 2: created, but the answer is lost again
    list[0]!.answerFromStart(); // no server: the list sends the creation again
    await refresh;
    await settle();
    expect(posts()).toBe(2);
    expect(cloud.servers.size).toBe(1);
    check[0]!.answerFromStart(); // attempt 1's check, taken before attempt 2: no server
    await settle();
    expect(posts()).toBe(2); // before the fix: attempt 1 sent a third POST, a duplicate server
    cloud.release("list");
    await clock.advance(5_000); // attempt 2's own check finds its server
    expect(posts()).toBe(2);
    expect(cloud.servers.size).toBe(1);
    expect(r.nodes("pool").map((i) => i.id)).toEqual([`cloudscale://${[...cloud.servers.keys()][0]}`]);
  });
});

describe("one list: first what it settles, then what goes out", () => {
  test("a creation the list sends again is first offered to a server that appeared (rule 9): no POST", async () => {
    const r = await started();
    cloud.next("create", lost(), false);
    cloud.next("list", unavailable()); // attempt 1's check cannot tell
    r.increaseSize("pool", 1);
    await settle();
    await clock.advance(5_000);
    cloud.add("uc-pool-late0001", ours()); // a predecessor's create lands
    await clock.advance(1_000);
    await r.refresh(); // does not show our creation, shows the newcomer
    await settle();
    expect(posts()).toBe(1); // before the fix: sent again in mid-loop, before the newcomer cancelled it
    expect(r.targetSize("pool")).toBe(1);
  });

  test("two servers for one creation after a start: the newer is deleted only once the grace is over (rule 8)", async () => {
    const older = cloud.add("uc-pool-twin0001", ours());
    await clock.advance(1000);
    const newer = cloud.add("uc-pool-twin0001", ours());
    const r = await started({ startupGraceMs: 10_000 });
    await settle();
    expect(cloud.count("delete")).toBe(0); // before the fix: deleted at once, inside the grace
    await clock.advance(10_000);
    await r.refresh();
    await settle();
    expect(cloud.calls.filter((c) => c.kind === "delete").map((c) => c.arg)).toEqual([newer.uuid]);
    expect([...cloud.servers.keys()]).toEqual([older.uuid]);
  });
});

describe("stop leaves nothing waiting", () => {
  test("the verify wait, the busy-delete retry and the own lists end at stop: no sleeper is left", async () => {
    cloud.bootStatus = "changing";
    const booting = cloud.add("uc-pool-booting1", ours(), "changing");
    const r = await started({ startupGraceMs: 0 });
    r.keepFresh();
    cloud.next("create", lost(), false);
    r.increaseSize("pool", 1);
    await r.deleteNodes("pool", [node(booting.uuid)]); // refused while changing: tried again later
    await settle();
    expect(clock.sleeping).toBeGreaterThanOrEqual(3); // verify, busy retry, own list
    r.stop();
    await settle();
    expect(clock.sleeping).toBe(0); // before the fix: the three sleeps stayed (timers keep a process alive)
  });
});

describe("13. the provider's own lists keep the view fresh while CA is quiet", () => {
  test("no call for ten times maxViewAge: the view is never older than maxViewAge, one list per half of it", async () => {
    const r = await started();
    r.keepFresh();
    let oldest = 0;
    for (let t = 0; t < 1200; t++) {
      await clock.advance(1000);
      oldest = Math.max(oldest, r.viewAgeSeconds);
      expect(r.fresh).toBe(true);
    }
    expect(oldest).toBeLessThanOrEqual(60);
    expect(cloud.count("list")).toBe(1 + 20); // the start's, then one per 60 s: a bounded schedule
  });

  test("CA's Refresh keeps the view fresh: the provider then lists nothing of its own", async () => {
    const r = await started();
    r.keepFresh();
    for (let t = 0; t < 30; t++) {
      await clock.advance(10_000);
      await r.refresh();
    }
    expect(cloud.count("list")).toBe(1 + 30);
  });

  test("while the API fails it tries again with a bounded backoff, and the view's age shows (it is not hidden)", async () => {
    const r = await started();
    r.keepFresh();
    cloud.hold("list");
    const starts: number[] = [];
    for (let t = 0; t < 600; t++) {
      for (const c of cloud.waiting("list")) {
        starts.push(c.startedAt);
        c.fail(unavailable());
      }
      await settle();
      await clock.advance(1000);
    }
    const gaps = starts.slice(1).map((t, i) => (t - starts[i]!) / 1000);
    expect(gaps.slice(0, 5)).toEqual([5, 10, 20, 40, 60]);
    expect(Math.max(...gaps)).toBe(60);
    expect(r.fresh).toBe(false);
    expect(r.snapshot().viewAgeSeconds).toBe(600);
    expect(r.snapshot().lastListError?.message).toContain("HTTP 503");
    cloud.release("list");
    await clock.advance(60_000);
    expect(r.fresh).toBe(true);
  });
});

describe("14. a silence longer than the startup grace: the next call counts as a start", () => {
  const GRACE = 35_000;
  const other = (name: string) => cloud.add(name, { ...ours(), [INSTANCE_TAG]: "cp-2-abcdef" });

  test("another instance's creates land after CA came back: they fill the creations held here, no overshoot", async () => {
    const lines = await logged(async () => {
      const a = cloud.add("uc-pool-xxxxxxxx", ours());
      const r = await started({ startupGraceMs: GRACE, instanceId: "cp-1-aaaaaa" });
      r.keepFresh();
      await clock.advance(GRACE);
      r.noteCall();
      await r.refresh();
      expect(r.settled).toBe(true);
      // CA moves to another control-plane node for ten minutes; this provider keeps its view fresh.
      await clock.advance(10 * 60_000);
      expect(cloud.count("list")).toBeGreaterThan(5);
      expect(r.settled).toBe(true); // its own lists end no silence
      // CA comes back (the other instance still has creates on their way) and asks for two more.
      r.noteCall();
      expect(r.settled).toBe(false);
      r.increaseSize("pool", 2);
      await settle();
      expect(posts()).toBe(0); // held: before the fix both went out at once
      expect(r.snapshot().hold?.reason).toBe("startup-grace");
      expect(await codeOf(r.deleteNodes("pool", [node(a.uuid)]))).toBe(Code.Unavailable); // nor deletions
      other("uc-pool-other001"); // the other instance's create lands inside the grace
      await clock.advance(GRACE); // the provider's own list past the grace
      await settle();
      expect(posts()).toBe(1);
      expect(r.targetSize("pool")).toBe(3); // a, the other's, ours: CA asked for 1 + 2
    });
    expect(lines.filter((l) => /no call for longer than the startup grace/.test(l))).toHaveLength(1);
  });

  test("CA's own pauses (shorter than the grace and the floor) change nothing", async () => {
    const r = await started({ startupGraceMs: 1000 });
    r.keepFresh();
    await clock.advance(1000);
    r.noteCall();
    await r.refresh();
    for (let i = 0; i < 10; i++) {
      await clock.advance(IDLE_RESTART_FLOOR_MS - 1000); // a slow scan interval, longer than this grace
      r.noteCall();
      expect(r.settled).toBe(true);
    }
    r.increaseSize("pool", 1);
    await settle();
    expect(posts()).toBe(1);
  });
});

describe("15. another instance creating while this one serves", () => {
  test("warned once per instance, shown in the snapshot; a predecessor's creates inside the grace and our own are not", async () => {
    const lines = await logged(async () => {
      const r = await started({ startupGraceMs: 10_000, instanceId: "cp-1-aaaaaa" });
      cloud.add("uc-pool-pred0001", { ...ours(), [INSTANCE_TAG]: "cp-1-dead00" }); // a killed predecessor's, landing in the grace
      cloud.add("uc-pool-mine0001", { ...ours(), [INSTANCE_TAG]: "cp-1-aaaaaa" });
      await clock.advance(10_000);
      r.noteCall();
      await r.refresh();
      expect(r.snapshot().otherInstances).toEqual([]);
      await clock.advance(1000);
      cloud.add("uc-pool-twin0001", { ...ours(), [INSTANCE_TAG]: "cp-2-bbbbbb" });
      cloud.add("uc-pool-twin0002", { ...ours(), [INSTANCE_TAG]: "cp-2-bbbbbb" });
      await clock.advance(1000);
      r.noteCall();
      await r.refresh();
      await r.refresh();
      expect(r.snapshot().otherInstances).toMatchObject([{ id: "cp-2-bbbbbb", servers: 2 }]);
      expect(r.targetSize("pool")).toBe(4); // they count like any server of the group
      await clock.advance(11 * 60_000); // no longer fresh
      r.noteCall();
      await r.refresh();
      expect(r.snapshot().otherInstances).toEqual([]);
    });
    const warnings = lines.filter((l) => /another provider instance is creating servers/.test(l));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/otherInstance=cp-2-bbbbbb thisInstance=cp-1-aaaaaa servers=2/);
  });

  test("an idle instance (another one serves CA) does not warn about the active one", async () => {
    const r = await started({ startupGraceMs: 10_000, instanceId: "cp-1-aaaaaa" });
    r.keepFresh();
    await clock.advance(5 * 60_000); // no call: CA talks to the other instance
    cloud.add("uc-pool-act00001", { ...ours(), [INSTANCE_TAG]: "cp-2-bbbbbb" });
    await clock.advance(60_000);
    expect(r.snapshot().otherInstances).toEqual([]);
  });

  test("servers of a group keep counting whatever instance made them", async () => {
    const r: Reconciler = await started({}, config({}, [group("pool", 0, 3)]));
    cloud.add("uc-pool-a", { ...ours(), [INSTANCE_TAG]: "x" });
    await r.refresh();
    expect(await codeOf(() => r.increaseSize("pool", 3))).toBe(Code.OutOfRange);
  });
});
