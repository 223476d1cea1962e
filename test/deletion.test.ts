// Deletion's parts on their own: the plan from the view (pure), the min rule,
// the cloud's word on ownership, and the DELETE with its marks.
import { beforeEach, describe, expect, test } from "bun:test";
import { Code } from "@connectrpc/connect";
import { ProviderError } from "../src/errors";
import { configureLog } from "../src/log";
import { toConnectError } from "../src/service";
import { CloudscaleError } from "../src/cloudscale";
import { Deleter, belowMin, confirmOwnership, planDeletion, serverTargets } from "../src/deletion";
import { CLUSTER_TAG, GROUP_TAG } from "../src/types";
import { viewOfList, type Marks } from "../src/view";
import { FakeClock } from "./helpers/fake-clock";
import { FakeCloud, lost, ourTags } from "./helpers/fake-cloud";

configureLog({ level: "error" });

const ours = (g: string) => ourTags("c", g);
let clock: FakeClock;
let cloud: FakeCloud;
beforeEach(() => {
  clock = new FakeClock();
  cloud = new FakeCloud(clock);
});
const marks = (): Marks => ({ pending: new Map(), deleting: new Map() });

describe("planDeletion", () => {
  test("every kind of node: ours by id or name, pending, gone, unknown, another group's, foreign", () => {
    const a1 = cloud.add("c-a-1", ours("a"));
    const a2 = cloud.add("c-a-2", ours("a"));
    const b1 = cloud.add("c-b-1", ours("b"));
    const { view } = viewOfList([...cloud.servers.values()], "c", ["a", "b"]);
    const m = marks();
    m.pending.set("c-a-q", { name: "c-a-q", group: "a", acceptedAt: 0, state: "queued", attempts: 0 });
    m.pending.set("c-b-q", { name: "c-b-q", group: "b", acceptedAt: 0, state: "queued", attempts: 0 });
    m.deleting.set(a2.uuid, { group: "a", issuedAt: 0 });
    const unknown = "99999999-9999-4999-8999-999999999999";
    const ok = planDeletion(view, m, "a", [
      { providerID: `cloudscale://${a1.uuid}`, name: "x" },
      { providerID: "", name: "c-a-1" },
      { providerID: "cloudscale://pending/c-a-q", name: "" },
      { providerID: "cloudscale://pending/forgotten", name: "" },
      { providerID: `cloudscale://${a2.uuid}`, name: "" },
      { providerID: `cloudscale://${unknown}`, name: "n" },
    ]);
    expect(ok.problems).toEqual([]);
    expect(ok.targets).toEqual([
      { kind: "server", uuid: a1.uuid, label: "x" },
      { kind: "server", uuid: a1.uuid, label: "c-a-1" },
      { kind: "pending", name: "c-a-q" },
      { kind: "gone" },
      { kind: "gone" },
      { kind: "check", uuid: unknown, label: "n" },
    ]);
    expect(serverTargets(ok.targets).map((t) => t.kind)).toEqual(["server", "server", "check"]);
    const bad = planDeletion(view, m, "a", [
      { providerID: `cloudscale://${b1.uuid}`, name: "c-b-1" },
      { providerID: "cloudscale://pending/c-b-q", name: "" },
      { providerID: "aws:///i-1", name: "i-1" },
      { providerID: "", name: "control-plane-1" },
      { providerID: "", name: "c-b-1" },
    ]);
    expect(bad.problems).toEqual([
      'node "c-b-1" belongs to node group "b", not "a"',
      'node "cloudscale://pending/c-b-q" belongs to node group "b", not "a"',
      'node "i-1" has providerID "aws:///i-1", which is not a cloudscale server',
      'node "control-plane-1" is not a server of node group "a"',
      'node "c-b-1" belongs to node group "b", not "a"',
    ]);
  });
});

describe("belowMin", () => {
  test("names the count left and the min; nothing to remove is always fine", () => {
    expect(belowMin("a", 3, 1, 2)).toBeUndefined();
    expect(belowMin("a", 3, 2, 2)).toBe('removing 2 server(s) from "a" would leave 1, below its min size 2');
    expect(belowMin("a", 0, 0, 5)).toBeUndefined();
  });
});

describe("confirmOwnership", () => {
  test("ours are returned once each; gone ones are left out", async () => {
    const a1 = cloud.add("c-a-1", ours("a"));
    const gone = "99999999-9999-4999-8999-999999999999";
    const t = (uuid: string) => ({ kind: "server" as const, uuid, label: uuid });
    expect(await confirmOwnership(cloud, [t(a1.uuid), t(gone), t(a1.uuid)], "c", "a")).toEqual([a1.uuid]);
  });

  test("one server without our tags refuses the whole call: it is not ours", async () => {
    const a1 = cloud.add("c-a-1", ours("a"));
    const f = cloud.add("x-1", { [CLUSTER_TAG]: "another-cluster", [GROUP_TAG]: "a" });
    const e = await confirmOwnership(cloud, [{ kind: "server", uuid: a1.uuid, label: "c-a-1" }, { kind: "check", uuid: f.uuid, label: "x-1" }], "c", "a").catch((x) => x);
    expect(e).toBeInstanceOf(ProviderError);
    expect(e.kind).toBe("not-ours");
    expect(e.message).toContain(`node "x-1" (server ${f.uuid}) does not carry this provider's tags`);
  });

  test("a server of another of our groups is a wrong request, as when the view knows it (not a permission problem)", async () => {
    const a1 = cloud.add("c-a-1", ours("a"));
    const f = cloud.add("c-b-1", { [CLUSTER_TAG]: "c", [GROUP_TAG]: "b" });
    const e = await confirmOwnership(cloud, [{ kind: "server", uuid: a1.uuid, label: "c-a-1" }, { kind: "check", uuid: f.uuid, label: "c-b-1" }], "c", "a").catch((x) => x);
    expect(e).toBeInstanceOf(ProviderError);
    expect(e.kind).toBe("invalid-argument");
    expect(e.message).toContain(`node "c-b-1" belongs to node group "b", not "a"`);
    // The same node, known to the view, gets the same answer.
    const view = viewOfList([...cloud.servers.values()], "c", ["a", "b"]).view;
    expect(planDeletion(view, { pending: new Map(), deleting: new Map() }, "a", [{ providerID: `cloudscale://${f.uuid}`, name: "c-b-1" }]).problems).toEqual([`node "c-b-1" belongs to node group "b", not "a"`]);
    expect(toConnectError(e)).toMatchObject({ code: Code.InvalidArgument });
  });

  test("a server tagged for a group that is no longer configured is not a node of ours", async () => {
    const r = cloud.add("c-retired-1", ours("retired"));
    const e = await confirmOwnership(cloud, [{ kind: "check", uuid: r.uuid, label: "c-retired-1" }], "c", "a", undefined, (g) => g === "a" || g === "b").catch((x) => x);
    expect(e.kind).toBe("not-ours");
  });

  test("a server that cannot be read refuses the whole call", async () => {
    const a1 = cloud.add("c-a-1", ours("a"));
    cloud.next("get", new CloudscaleError("server", "HTTP 503", 503));
    const e = await confirmOwnership(cloud, [{ kind: "server", uuid: a1.uuid, label: "c-a-1" }], "c", "a").catch((x) => x);
    expect(e.kind).toBe("unavailable");
    expect(e.message).toContain(`cannot read server ${a1.uuid}`);
  });

  test("a read cut short by the caller's deadline says so: DeadlineExceeded, not the API's failure", async () => {
    const a1 = cloud.add("c-a-1", ours("a"));
    cloud.hold("get");
    const caller = new AbortController();
    const confirming = confirmOwnership(cloud, [{ kind: "server", uuid: a1.uuid, label: "c-a-1" }], "c", "a", caller.signal).catch((x) => x);
    caller.abort();
    cloud.waiting("get")[0]!.fail(new CloudscaleError("timeout", "reading server: the operation timed out"));
    const e = await confirming;
    expect(e.kind).toBe("deadline-exceeded");
    expect(e.message).toContain("nothing deleted: the caller's deadline passed");
  });
});

describe("Deleter", () => {
  function deleter(m = marks()) {
    return { m, d: new Deleter({ cloud, marks: m, clock, busyRetryMs: 60_000 }) };
  }

  test("a confirmed delete keeps its mark (until a list decides) and drops the creation it came from", async () => {
    const a1 = cloud.add("c-a-1", ours("a"));
    const { m, d } = deleter();
    m.pending.set("c-a-1", { name: "c-a-1", group: "a", acceptedAt: 0, state: "created", uuid: a1.uuid, attempts: 1 });
    expect(await d.deleteOne(a1.uuid, "a")).toBe("deleted");
    expect(m.deleting.get(a1.uuid)).toMatchObject({ group: "a", confirmed: true, completedAt: clock.now() });
    expect(m.pending.size).toBe(0);
    expect(await d.deleteOne(a1.uuid, "a")).toBe("gone");
  });

  test("an unanswered delete keeps its mark for a list to decide; a refused one drops it", async () => {
    const a1 = cloud.add("c-a-1", ours("a"));
    const { m, d } = deleter();
    cloud.next("delete", lost());
    expect(d.deleteOne(a1.uuid, "a")).rejects.toThrow("HTTP 502");
    expect(m.deleting.get(a1.uuid)).toMatchObject({ completedAt: clock.now() });
    expect(m.deleting.get(a1.uuid)?.confirmed).toBeUndefined();
    cloud.next("delete", new CloudscaleError("auth", "HTTP 403", 403));
    expect(d.deleteOne(a1.uuid, "a")).rejects.toThrow("HTTP 403");
    expect(m.deleting.has(a1.uuid)).toBe(false);
  });

  test("refused while the server is still changing: counted as deleting, tried again until it is deleted", async () => {
    const a1 = cloud.add("c-a-1", ours("a"), "changing");
    const { m, d } = deleter();
    expect(await d.deleteOne(a1.uuid, "a")).toBe("later");
    expect(m.deleting.get(a1.uuid)).toEqual({ group: "a", issuedAt: clock.now() }); // no end yet: no list ends it
    await clock.advance(2000);
    expect(cloud.count("delete")).toBe(2); // still changing
    cloud.servers.get(a1.uuid)!.status = "running"; // booted
    await clock.advance(4000);
    expect(cloud.count("delete")).toBe(3);
    expect(cloud.servers.has(a1.uuid)).toBe(false);
    expect(m.deleting.get(a1.uuid)).toMatchObject({ confirmed: true, completedAt: clock.now() });
    await clock.advance(600_000);
    expect(cloud.count("delete")).toBe(3);
  });

  test("a server that stays changing: given up after the bound, and it counts again", async () => {
    const a1 = cloud.add("c-a-1", ours("a"), "changing");
    const { m, d } = deleter();
    expect(await d.deleteOne(a1.uuid, "a")).toBe("later");
    await clock.advance(59_000);
    expect(m.deleting.has(a1.uuid)).toBe(true);
    await clock.advance(60_000);
    expect(m.deleting.has(a1.uuid)).toBe(false);
    const tries = cloud.count("delete");
    expect(tries).toBeGreaterThan(3);
    await clock.advance(600_000);
    expect(cloud.count("delete")).toBe(tries);
    expect(cloud.servers.has(a1.uuid)).toBe(true);
  });

  test("stop() ends the retries", async () => {
    const a1 = cloud.add("c-a-1", ours("a"), "changing");
    const { d } = deleter();
    await d.deleteOne(a1.uuid, "a");
    d.stop();
    await clock.advance(600_000);
    expect(cloud.count("delete")).toBe(1);
  });
});
