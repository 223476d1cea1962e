import { configureLog } from "../src/log";
configureLog({ level: "error" });
// The reconciler's rules about orders of events (its header comment numbers
// them), each forced in one order with a fake clock and a fake cloud: every
// call of a kind can be held until the test answers it, so "this list started
// before that create" is a fact of the test, not a matter of timing.
import { beforeEach, describe, expect, test } from "bun:test";
import { Code } from "@connectrpc/connect";
import { CloudscaleError } from "../src/cloudscale";
import type { Reconciler } from "../src/reconciler";
import { FakeClock, settle } from "./helpers/fake-clock";
import { FakeCloud, lost } from "./helpers/fake-cloud";
import { codeOf, config, group, logged, node, ours, reconcilers } from "./helpers/reconciler";

let clock: FakeClock;
let cloud: FakeCloud;
let reconciler: ReturnType<typeof reconcilers>["reconciler"];
let started: ReturnType<typeof reconcilers>["started"];

beforeEach(() => {
  clock = new FakeClock();
  cloud = new FakeCloud(clock);
  ({ reconciler, started } = reconcilers(clock, cloud));
});

const posts = () => cloud.count("create");
const ids = (r: Reconciler, g = "pool") => r.nodes(g).map((i) => `${i.id.replace(/^cloudscale:\/\//, "")} ${i.state}`);

describe("1. a list that started before a create was accepted does not drop the create", () => {
  test("the create is answered before the list", async () => {
    const r = await started();
    cloud.hold("list");
    const listing = r.refresh(); // starts now: the cloud has no server of ours
    await settle();
    r.increaseSize("pool", 1);
    await settle(); // the create went out and was answered
    expect(cloud.servers.size).toBe(1);
    cloud.waiting("list")[0]!.answerFromStart();
    await listing;
    expect(r.targetSize("pool")).toBe(1);
    const uuid = [...cloud.servers.keys()][0]!;
    expect(ids(r)).toEqual([`${uuid} creating`]);
    cloud.release("list");
    await r.refresh();
    expect(ids(r)).toEqual([`${uuid} running`]);
    expect(posts()).toBe(1);
  });

  test("the create is still on its way when the list is answered", async () => {
    const r = await started();
    cloud.hold("list");
    cloud.hold("create");
    const listing = r.refresh();
    await settle();
    r.increaseSize("pool", 1);
    await settle();
    cloud.waiting("list")[0]!.answer();
    await listing;
    expect(r.targetSize("pool")).toBe(1);
    expect(ids(r)).toEqual(["pending/uc-pool-n0000001 creating"]);
    cloud.waiting("create")[0]!.answer();
    await settle();
    cloud.release("list");
    await r.refresh();
    expect(r.targetSize("pool")).toBe(1);
    expect(posts()).toBe(1);
  });
});

describe("2. a list that started before a delete does not bring the server back", () => {
  test("the delete is answered while the list is on its way", async () => {
    const a = cloud.add("uc-pool-aaaaaaaa", ours());
    cloud.add("uc-pool-bbbbbbbb", ours());
    const r = await started();
    cloud.hold("list");
    const listing = r.refresh(); // still shows a
    await settle();
    await clock.advance(1000);
    await r.deleteNodes("pool", [node(a.uuid)]);
    expect(cloud.servers.has(a.uuid)).toBe(false);
    cloud.waiting("list")[0]!.answerFromStart();
    await listing;
    expect(r.targetSize("pool")).toBe(1);
    expect(ids(r)).toContain(`${a.uuid} deleting`);
    cloud.release("list");
    await clock.advance(1000);
    await r.refresh();
    expect(r.targetSize("pool")).toBe(1);
    expect(ids(r).some((i) => i.startsWith(a.uuid))).toBe(false);
  });
});

describe("3. a list that finishes after a newer one was applied is ignored", () => {
  test("the older list's servers do not come back", async () => {
    const a = cloud.add("uc-pool-aaaaaaaa", ours());
    const r = reconciler();
    const older = structuredClone([...cloud.servers.values()]);
    const t0 = clock.now();
    await clock.advance(1000);
    r.apply([], clock.now()); // the newer list: a is gone
    r.apply(older, t0); // the older one ends late
    expect(r.targetSize("pool")).toBe(0);
    expect(ids(r).some((i) => i.startsWith(a.uuid))).toBe(false);
  });
});

describe("4. an unanswered create is looked for by its name before it is sent again", () => {
  test("it took effect: the check finds it, nothing is sent twice", async () => {
    const r = await started();
    cloud.next("create", lost(), true);
    r.increaseSize("pool", 1);
    await settle();
    expect(ids(r)).toEqual(["pending/uc-pool-n0000001 creating"]);
    await clock.advance(5000); // the check
    const [s] = [...cloud.servers.values()];
    expect(ids(r)).toEqual([`${s!.uuid} creating`]);
    expect(posts()).toBe(1);
    expect(cloud.servers.size).toBe(1);
  });

  test("it did not take effect: the check does not find it, it is sent again", async () => {
    const r = await started();
    cloud.next("create", lost(), false);
    r.increaseSize("pool", 1);
    await settle();
    expect(posts()).toBe(1);
    await clock.advance(5000);
    expect(posts()).toBe(2);
    expect([...cloud.servers.values()].map((s) => s.name)).toEqual(["uc-pool-n0000001"]);
    expect(r.targetSize("pool")).toBe(1);
  });

  test("a list that starts well after it and does not show it sends it again; the late check then changes nothing", async () => {
    const r = await started();
    cloud.hold("list");
    cloud.next("create", lost(), false);
    r.increaseSize("pool", 1);
    await settle();
    await clock.advance(5000); // the check list goes out and is held
    const [check] = cloud.waiting("list");
    await clock.advance(1000);
    const listing = r.refresh(); // starts 6 s after the failed create
    await settle();
    cloud.waiting("list")[1]!.answer(); // shows nothing: the create did not happen
    await listing;
    await settle();
    expect(posts()).toBe(2); // sent again by the list's verdict
    check!.answer([]); // the check's list was made before the second create
    await settle();
    expect(posts()).toBe(2);
    expect(cloud.servers.size).toBe(1);
    expect(r.targetSize("pool")).toBe(1);
  });

  test("a list that shows it resolves it while the check still waits; no check is made", async () => {
    const r = await started();
    cloud.next("create", lost(), true);
    r.increaseSize("pool", 1);
    await settle();
    await clock.advance(1000);
    await r.refresh(); // shows the server by its name
    const lists = cloud.count("list");
    const [s] = [...cloud.servers.values()];
    expect(ids(r)).toEqual([`${s!.uuid} running`]);
    await clock.advance(5000);
    expect(cloud.count("list")).toBe(lists);
    expect(posts()).toBe(1);
  });

  test("a list that started before the create failed decides nothing", async () => {
    const r = await started();
    cloud.hold("list");
    const listing = r.refresh();
    await settle();
    cloud.next("create", lost(), false);
    r.increaseSize("pool", 1);
    await settle();
    cloud.waiting("list")[0]!.answer();
    await listing;
    expect(posts()).toBe(1); // not re-sent on the word of an older list
    expect(r.targetSize("pool")).toBe(1);
  });

  test("when the check cannot list, the next good list decides", async () => {
    const r = await started();
    cloud.next("create", lost(), true);
    cloud.next("list", new CloudscaleError("server", "HTTP 503", 503));
    r.increaseSize("pool", 1);
    await settle();
    await clock.advance(5000); // the check fails
    expect(ids(r)).toEqual(["pending/uc-pool-n0000001 creating"]);
    await r.refresh();
    const [s] = [...cloud.servers.values()];
    expect(ids(r)).toEqual([`${s!.uuid} running`]);
    expect(posts()).toBe(1);
  });

  test("after the last attempt it is reported as failed, with an error CA acts on", async () => {
    const r = await started();
    for (let i = 0; i < 3; i++) cloud.next("create", lost(), false);
    r.increaseSize("pool", 1);
    await settle();
    await clock.advance(5000);
    await clock.advance(5000);
    await clock.advance(5000);
    expect(posts()).toBe(3);
    const [inst] = r.nodes("pool");
    expect(inst).toMatchObject({ id: "cloudscale://pending/uc-pool-n0000001", state: "creating", error: { code: "CREATE_FAILED", errorClass: 99 } });
  });
});

describe("5. an unanswered delete is decided by the first list that starts after it", () => {
  test("it did not happen: the server counts again", async () => {
    const a = cloud.add("uc-pool-aaaaaaaa", ours());
    const r = await started();
    cloud.hold("list");
    const before = r.refresh(); // starts before the delete
    await settle();
    cloud.next("delete", lost(), false);
    await clock.advance(1000);
    expect(await codeOf(r.deleteNodes("pool", [node(a.uuid)]))).toBe(Code.Unavailable);
    expect(r.targetSize("pool")).toBe(0); // not counted while unresolved
    cloud.waiting("list")[0]!.answer();
    await before;
    expect(r.targetSize("pool")).toBe(0); // that list may predate the delete
    cloud.release("list");
    await clock.advance(1000);
    await r.refresh();
    expect(r.targetSize("pool")).toBe(1);
    expect(ids(r)).toEqual([`${a.uuid} running`]);
  });

  test("it did happen: the server is gone for good", async () => {
    const a = cloud.add("uc-pool-aaaaaaaa", ours());
    const r = await started();
    cloud.next("delete", lost(), true);
    expect(await codeOf(r.deleteNodes("pool", [node(a.uuid)]))).toBe(Code.Unavailable);
    await clock.advance(1000);
    await r.refresh();
    expect(r.targetSize("pool")).toBe(0);
    expect(r.nodes("pool")).toEqual([]);
  });
});

describe("6. a created server that a later list no longer shows is forgotten", () => {
  test("gone behind our back after its create was answered", async () => {
    const r = await started();
    cloud.hold("list");
    const early = r.refresh();
    await settle();
    r.increaseSize("pool", 1);
    await settle();
    const [s] = [...cloud.servers.values()];
    cloud.servers.delete(s!.uuid); // deleted by someone else
    cloud.waiting("list")[0]!.answer(); // started before the create: decides nothing
    await early;
    expect(r.targetSize("pool")).toBe(1);
    cloud.release("list");
    await clock.advance(1000);
    await r.refresh(); // started after the create was confirmed
    expect(r.targetSize("pool")).toBe(0);
  });
});

describe("7. two servers for one creation: the newer is deleted", () => {
  test("the older stays, the newer is deleted once", async () => {
    const older = cloud.add("uc-pool-twin0001", ours());
    await clock.advance(1000);
    const newer = cloud.add("uc-pool-twin0001", ours());
    const r = await started();
    await settle();
    expect(cloud.calls.filter((c) => c.kind === "delete").map((c) => c.arg)).toEqual([newer.uuid]);
    expect([...cloud.servers.keys()]).toEqual([older.uuid]);
    expect(ids(r)).toEqual([`${older.uuid} running`]);
    await r.refresh();
    expect(cloud.count("delete")).toBe(1);
  });
});

describe("8. after a start, nothing is created or deleted until a list past the startup grace", () => {
  test("creations wait, deletions are refused; both go ahead after the grace", async () => {
    const a = cloud.add("uc-pool-aaaaaaaa", ours());
    const r = await started({ startupGraceMs: 10_000 });
    r.increaseSize("pool", 2);
    await settle();
    expect(posts()).toBe(0);
    expect(r.targetSize("pool")).toBe(3);
    expect(await codeOf(r.deleteNodes("pool", [node(a.uuid)]))).toBe(Code.Unavailable);
    expect(cloud.count("get") + cloud.count("delete")).toBe(0);
    await clock.advance(9_000);
    await r.refresh(); // started inside the grace
    expect(posts()).toBe(0);
    await clock.advance(1_000);
    await r.refresh();
    await settle();
    expect(posts()).toBe(2);
    expect(await codeOf(r.deleteNodes("pool", [node(a.uuid)]))).toBe("ok");
  });
});

describe("9. a predecessor's creates that land after a restart fill the creations waiting here", () => {
  // Seen with the real Cluster Autoscaler: CA asks for 17, the provider is killed
  // (kill -9) with 10 landed and 7 still in flight; the restarted provider lists 10, so
  // CA asks for 7 more, which wait for the startup grace. Then the old 7 land. The
  // group must end at the 17 CA asked for, not 24 (nor 20 where the max stops it).
  const GRACE = 35_000;
  const groups = [group("pool", 0, 30)];

  async function crashWithSevenInFlight() {
    const before = reconciler({}, config({ createConcurrency: 20 }, groups));
    await before.refresh();
    cloud.hold("create");
    before.increaseSize("pool", 17);
    await settle();
    const sent = cloud.waiting("create");
    expect(sent).toHaveLength(17);
    for (const c of sent.slice(0, 10)) c.answer();
    before.stop(); // kill -9: the other 7 are still on their way
    cloud.release("create");
    const inFlight = sent.slice(10);
    const after = reconciler({ startupGraceMs: GRACE, nameSuffix: () => crypto.randomUUID().slice(0, 8) }, config({ createConcurrency: 20 }, groups));
    await after.refresh();
    expect(after.targetSize("pool")).toBe(10);
    after.increaseSize("pool", 7); // CA wants 17 again
    expect(after.targetSize("pool")).toBe(17);
    await settle();
    expect(posts()).toBe(17); // the 7 wait for the grace
    return { after, inFlight };
  }

  test("the old 7 land as the grace ends, then the first list past the grace (the provider's own, rule 13): 17", async () => {
    const { after, inFlight } = await crashWithSevenInFlight();
    await clock.advance(GRACE - 1);
    for (const c of inFlight) c.answer();
    await clock.advance(1); // the grace is over: the provider lists by itself, no Refresh needed
    expect(cloud.count("list")).toBe(3);
    expect({ posts: posts(), servers: cloud.servers.size, targetSize: after.targetSize("pool") }).toEqual({ posts: 17, servers: 17, targetSize: 17 });
    await clock.advance(10_000);
    await after.refresh();
    expect({ posts: posts(), servers: cloud.servers.size, targetSize: after.targetSize("pool") }).toEqual({ posts: 17, servers: 17, targetSize: 17 });
  });

  test("the old 7 land inside the grace, a list sees them there: 17", async () => {
    const { after, inFlight } = await crashWithSevenInFlight();
    await clock.advance(5_000);
    for (const c of inFlight.slice(0, 3)) c.answer();
    await after.refresh(); // 13 listed, 4 still waiting here
    expect(after.targetSize("pool")).toBe(17);
    for (const c of inFlight.slice(3)) c.answer();
    await clock.advance(GRACE);
    await after.refresh();
    await settle();
    expect({ posts: posts(), servers: cloud.servers.size, targetSize: after.targetSize("pool") }).toEqual({ posts: 17, servers: 17, targetSize: 17 });
  });

  test("a server this process created is not taken for a predecessor's", async () => {
    const r = await started({}, config({}, groups));
    cloud.hold("create");
    r.increaseSize("pool", 2);
    await settle();
    cloud.waiting("create")[0]!.answer(); // one lands, the other is still being sent
    await r.refresh();
    expect(r.targetSize("pool")).toBe(2);
    cloud.waiting("create")[0]!.answer();
    await settle();
    expect({ posts: posts(), servers: cloud.servers.size, targetSize: r.targetSize("pool") }).toEqual({ posts: 2, servers: 2, targetSize: 2 });
  });
});

describe("10. waiting creations never take a group above its max", () => {
  test("a predecessor's creates land during the grace: the waiting ones are cancelled, not sent", async () => {
    const r = await started({ startupGraceMs: 10_000 }, config({}, [group("pool", 0, 2)])); // the predecessor's two creates are still on their way
    r.increaseSize("pool", 2);
    cloud.add("uc-pool-prev0001", ours());
    cloud.add("uc-pool-prev0002", ours());
    await clock.advance(10_000);
    await r.refresh();
    await settle();
    expect(posts()).toBe(0);
    expect(cloud.servers.size).toBe(2);
    expect(r.targetSize("pool")).toBe(2);
  });
});

describe("11. nothing is created or deleted from a stale view", () => {
  test("IncreaseSize and DeleteNodes are refused; accepted creations wait for a good list", async () => {
    const a = cloud.add("uc-pool-aaaaaaaa", ours());
    const r = await started({}, { ...config(), createConcurrency: 1 });
    cloud.hold("create");
    r.increaseSize("pool", 3);
    await settle();
    expect(posts()).toBe(1); // one at a time; two wait
    cloud.hold("list");
    await clock.advance(121_000);
    const refreshing = r.refresh();
    cloud.waiting("list")[0]!.fail(new CloudscaleError("server", "HTTP 503", 503));
    expect(refreshing).rejects.toThrow(/cannot list servers/);
    cloud.waiting("create")[0]!.answer();
    await settle();
    expect(posts()).toBe(1); // the next one did not go out
    expect(await codeOf(() => r.increaseSize("pool", 1))).toBe(Code.Unavailable);
    expect(await codeOf(r.deleteNodes("pool", [node(a.uuid)]))).toBe(Code.Unavailable);
    // The held two make the provider list by itself (rule 13); until that list lands nothing goes out.
    expect(cloud.waiting("list")).toHaveLength(1);
    expect(posts()).toBe(1);
    cloud.waiting("list")[0]!.answer();
    cloud.release("list");
    cloud.release("create");
    await settle();
    for (const c of cloud.waiting("create")) c.answer();
    await r.whenIdle();
    expect(posts()).toBe(3);
    expect(r.targetSize("pool")).toBe(4);
  });
});

describe("12. a delete refused while the server is still changing is tried again until it is done", () => {
  test("scale-down of a server that is still booting ends with the server deleted, not a stuck delete mark", async () => {
    cloud.bootStatus = "changing";
    const r = await started();
    r.increaseSize("pool", 2);
    await settle();
    await r.refresh();
    const [booting, other] = [...cloud.servers.values()];
    expect(ids(r)).toEqual([`${booting!.uuid} creating`, `${other!.uuid} creating`]);

    expect(await codeOf(r.deleteNodes("pool", [node(booting!.uuid)]))).toBe("ok"); // accepted, not an error for CA
    expect(r.targetSize("pool")).toBe(1);
    expect(ids(r)).toContain(`${booting!.uuid} deleting`);
    await clock.advance(1000);
    await r.refresh(); // still listed, still changing: it does not come back
    expect(r.targetSize("pool")).toBe(1);
    expect(await codeOf(r.deleteNodes("pool", [node(booting!.uuid)]))).toBe("ok"); // CA asking again changes nothing
    const deletes = cloud.count("delete");

    booting!.status = "running"; // booted
    await clock.advance(5000);
    expect(cloud.servers.has(booting!.uuid)).toBe(false);
    expect(cloud.count("delete")).toBe(deletes + 1);
    await clock.advance(1000);
    await r.refresh();
    expect(ids(r)).toEqual([`${other!.uuid} creating`]);
    expect(r.targetSize("pool")).toBe(1);
  });

  test("one that never leaves changing: after the bound the server counts again and CA can decide anew", async () => {
    cloud.bootStatus = "changing";
    const r = await started({ busyDeleteRetryMs: 60_000 });
    r.increaseSize("pool", 1);
    await settle();
    await r.refresh();
    const [stuck] = [...cloud.servers.values()];
    await r.deleteNodes("pool", [node(stuck!.uuid)]);
    expect(r.targetSize("pool")).toBe(0);
    await clock.advance(61_000);
    await r.refresh();
    expect(ids(r)).toEqual([`${stuck!.uuid} creating`]);
    expect(r.targetSize("pool")).toBe(1);
  });
});

describe("the generation: cached answers (service.ts) are kept only while it stands still", () => {
  test("every change of a target size or an instance moves it; nothing else does", async () => {
    const a = cloud.add("uc-pool-aaaaaaaa", ours());
    const r = await started(undefined, config({ failedCreateTtlSeconds: 60 }));
    let last = { generation: r.generation, answers: "" };
    const answers = () => JSON.stringify([r.targetSize("pool"), r.nodes("pool")]);
    last.answers = answers();
    const moves: string[] = [];
    /** After each event: if what CA would be answered changed, the generation must have moved. */
    const observe = async (what: string, event: () => unknown) => {
      await event();
      await settle();
      const now = { generation: r.generation, answers: answers() };
      if (now.answers !== last.answers) {
        expect({ what, moved: now.generation !== last.generation }).toEqual({ what, moved: true });
        moves.push(what);
      }
      last = now;
    };
    const same = r.generation;
    expect(answers()).toBe(last.answers);
    expect(r.generation).toBe(same); // reading answers moves nothing: caching pays

    cloud.hold("create");
    await observe("a scale-up is accepted", () => r.increaseSize("pool", 2));
    await observe("the first create is answered with its server", () => cloud.waiting("create")[0]!.answer());
    await observe("the second create fails", () => cloud.waiting("create")[0]!.fail(new CloudscaleError("quota", "quota exceeded", 400)));
    cloud.release("create");
    await observe("a list shows the created server", () => r.refresh());
    await observe("the listed server finishes booting", async () => {
      for (const s of cloud.servers.values()) s.status = "running";
      await r.refresh();
    });
    await observe("a delete is issued", () => r.deleteNodes("pool", [node(a.uuid)]));
    await observe("a list no longer shows the deleted server", async () => {
      await clock.advance(1000);
      await r.refresh();
    });
    await observe("the failed placeholder is cancelled", () => r.decreaseTargetSize("pool", -1));
    await observe("a server appears behind our back", async () => {
      cloud.add("uc-pool-cccccccc", ours());
      await r.refresh();
    });
    // The observer is only as good as the events it saw change the answers.
    expect(moves.length).toBeGreaterThanOrEqual(7);
  });
});

const holds = (lines: string[]) => lines.filter((l) => /creations are held/.test(l));
const releases = (lines: string[]) => lines.filter((l) => /held creations released/.test(l));

describe("13. held creations never wait for CA's next Refresh", () => {
  const GRACE = 35_000;

  test("after a start: IncreaseSize before any Refresh; the grace passes; the provider's own list lands; the creates go out", async () => {
    const lines = await logged(async () => {
      const r = await started({ startupGraceMs: GRACE }); // the start's own list; CA has not called Refresh
      r.increaseSize("pool", 2);
      await settle();
      expect(posts()).toBe(0);
      expect(r.snapshot().groups[0]).toMatchObject({ pending: 2, held: 2, targetSize: 2 });
      expect(r.snapshot().hold?.reason).toBe("startup-grace");
      cloud.hold("list");
      await clock.advance(GRACE - 1);
      expect(cloud.count("list")).toBe(1); // nothing before the grace ends
      await clock.advance(1);
      const own = cloud.waiting("list");
      expect(own).toHaveLength(1); // the provider's own list, started as the grace ended
      expect(own[0]!.startedAt).toBe(clock.now());
      expect(posts()).toBe(0); // not before that list lands
      own[0]!.answer();
      await settle();
      expect(posts()).toBe(2);
      expect(r.snapshot().groups[0]).toMatchObject({ held: 0 });
      expect(r.snapshot().hold).toBeNull();
      await clock.advance(600_000);
      expect(cloud.count("list")).toBe(2); // and then it stops listing
    });
    expect(holds(lines)).toHaveLength(1);
    expect(holds(lines)[0]).toMatch(/may still land until 2026-12-01T00:00:35.000Z \(startupGrace 35s after the start\)/);
    expect(holds(lines)[0]).toMatch(/creates=2 reason=startup-grace groups="pool=2"/);
    expect(releases(lines)).toHaveLength(1);
    expect(releases(lines)[0]).toMatch(/creates=2 heldSeconds=35/);
  });

  test("more creations while held are logged once; a Refresh under way past the grace is shared, not doubled", async () => {
    const lines = await logged(async () => {
      const r = await started({ startupGraceMs: GRACE });
      r.increaseSize("pool", 1);
      await clock.advance(10_000);
      r.increaseSize("pool", 2);
      await clock.advance(GRACE - 10_000 - 1);
      cloud.hold("list");
      const refresh = r.refresh(); // CA's Refresh, started 1 ms inside the grace
      await clock.advance(1); // the grace ends while that list is under way
      expect(cloud.waiting("list")).toHaveLength(1); // shared: one list at a time
      cloud.waiting("list")[0]!.answerFromStart();
      await refresh;
      await settle();
      // That list started inside the grace: the provider lists again at once, past it.
      expect(cloud.waiting("list")).toHaveLength(1);
      expect(posts()).toBe(0);
      cloud.waiting("list")[0]!.answer();
      await settle();
      expect(posts()).toBe(3);
      expect(cloud.count("list")).toBe(3);
    });
    expect(holds(lines)).toHaveLength(1);
    expect(releases(lines)).toHaveLength(1);
  });

  test("while listing fails the provider tries again with a bounded backoff, then goes on", async () => {
    const r = await started({ startupGraceMs: GRACE });
    r.increaseSize("pool", 1);
    cloud.hold("list");
    await clock.advance(GRACE);
    const starts: number[] = [];
    // Ten minutes of a failing API: each of the provider's lists fails as soon as it is made.
    for (let t = 0; t <= 600; t++) {
      for (const c of cloud.waiting("list")) {
        starts.push(c.startedAt);
        c.fail(new CloudscaleError("server", "HTTP 503", 503));
      }
      await settle();
      await clock.advance(1000);
    }
    const gaps = starts.slice(1).map((t, i) => (t - starts[i]!) / 1000);
    expect(gaps.slice(0, 5)).toEqual([5, 10, 20, 40, 60]);
    expect(Math.max(...gaps)).toBe(60);
    expect(starts.length).toBeLessThanOrEqual(15); // not a hammering loop
    expect(posts()).toBe(0);
    // No list past the grace has landed, so the hold is still the grace's (the view is stale too by now).
    expect(r.snapshot().hold?.reason).toBe("startup-grace");
    await clock.advance(60_000);
    cloud.waiting("list")[0]!.answer();
    await settle();
    expect(posts()).toBe(1);
    expect(r.snapshot().hold).toBeNull();
  });

  test("a stale view with creations queued: the provider lists by itself and they go out, no Refresh needed", async () => {
    const lines = await logged(async () => {
      const r = await started({}, { ...config(), createConcurrency: 1 });
      cloud.hold("create");
      r.increaseSize("pool", 2);
      await settle();
      await clock.advance(121_000); // no Refresh for longer than maxViewAge: the view is stale
      cloud.hold("list");
      cloud.waiting("create")[0]!.answer();
      await settle(); // the second may not go out from a stale view: it is held, and the provider lists at once
      expect(r.snapshot().hold?.reason).toBe("stale-view");
      expect(r.snapshot().groups[0]).toMatchObject({ held: 1, pending: 1 });
      expect(cloud.waiting("list")).toHaveLength(1);
      expect(posts()).toBe(1);
      cloud.release("create");
      cloud.waiting("list")[0]!.answer();
      await settle();
      expect(posts()).toBe(2);
      expect(cloud.count("list")).toBe(2);
    });
    expect(holds(lines)).toHaveLength(1);
    expect(holds(lines)[0]).toMatch(/WARN .*view of the cloud is 121s old \(limit 120s\).*reason=stale-view/);
    expect(releases(lines)).toHaveLength(1);
  });

  test("held creations that CA cancels end the hold and the provider's lists", async () => {
    const lines = await logged(async () => {
      const r = await started({ startupGraceMs: GRACE });
      r.increaseSize("pool", 2);
      await settle();
      r.decreaseTargetSize("pool", -2);
      await clock.advance(10 * GRACE);
      expect(cloud.count("list")).toBe(1);
      expect(r.snapshot().hold).toBeNull();
    });
    expect(holds(lines)).toHaveLength(1);
    expect(lines.filter((l) => /no creation is held any more: the held ones were cancelled/.test(l))).toHaveLength(1);
    expect(releases(lines)).toHaveLength(0);
  });

  test("a hold that ends and a new one inside the grace: one list at its end, not one per hold", async () => {
    const r = await started({ startupGraceMs: GRACE });
    r.increaseSize("pool", 1);
    await settle();
    r.decreaseTargetSize("pool", -1);
    await clock.advance(1000);
    r.increaseSize("pool", 2);
    await settle();
    await clock.advance(GRACE);
    expect(cloud.count("list")).toBe(2);
    expect(posts()).toBe(2);
    await clock.advance(10 * GRACE);
    expect(cloud.count("list")).toBe(2);
  });

  test("a stopped provider makes no list of its own", async () => {
    const r = await started({ startupGraceMs: GRACE });
    r.increaseSize("pool", 1);
    await settle();
    r.stop();
    await clock.advance(10 * GRACE);
    expect(cloud.count("list")).toBe(1);
  });
});

describe("a list that cannot be read into a view leaves the last good view and its age", () => {
  test("apply of something that is not a list throws before the view counts as fresh", async () => {
    cloud.add("uc-pool-a", ours());
    const r = await started();
    await clock.advance(60_000);
    const age = r.viewAgeSeconds;
    expect(() => r.apply({ detail: "ok" } as never, clock.now())).toThrow();
    expect(r.viewAgeSeconds).toBe(age); // the object did not move lastGoodAt
    expect(r.targetSize("pool")).toBe(1);
  });
});
