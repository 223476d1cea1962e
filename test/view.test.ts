// The view as pure functions: a list and the marks in, answers out.
import { describe, expect, test } from "bun:test";
import { CLUSTER_TAG, GROUP_TAG, type Server } from "../src/types";
import { ourTags } from "./helpers/fake-cloud";
import {
  deleteMarkDone,
  emptyView,
  existing,
  groupForNode,
  newcomers,
  instances,
  parseProviderId,
  pendingFate,
  targetSize,
  viewOfList,
  type DeleteMark,
  type Marks,
  type PendingCreate,
} from "../src/view";

const GROUPS = ["a", "b"];
let n = 0;
function server(name: string, tags: Record<string, string>, over: Partial<Server> = {}): Server {
  const uuid = `00000000-0000-4000-8000-${String(++n).padStart(12, "0")}`;
  return { href: "", uuid, name, status: "running", flavor: {} as Server["flavor"], image: {} as Server["image"], zone: { slug: "lpg1" }, volumes: [], interfaces: [], server_groups: [], tags, created_at: `2026-12-01T00:00:${String(n).padStart(2, "0")}.000000Z`, ...over };
}
const ours = (g: string) => ourTags("c", g);
const marks = (): Marks => ({ pending: new Map(), deleting: new Map() });
const pending = (over: Partial<PendingCreate>): PendingCreate => ({ name: "c-a-p", group: "a", acceptedAt: 0, state: "queued", attempts: 0, ...over });
const RULES = { verifyDelayMs: 5000, failedCreateTtlMs: 900_000, deleteConfirmWindowMs: 120_000 };

describe("viewOfList", () => {
  test("keeps only servers with both of our tags and a configured group", () => {
    const mine = server("c-a-1", ours("a"));
    const list = [mine, server("x", {}), server("c-a-2", { [CLUSTER_TAG]: "other", [GROUP_TAG]: "a" }), server("c-gone-1", ours("gone")), server("c-a-3", { [GROUP_TAG]: "a" })];
    const { view, duplicates } = viewOfList(list, "c", GROUPS);
    expect([...view.servers.keys()]).toEqual([mine.uuid]);
    expect(view.byGroup.get("a")!.map((s) => s.name)).toEqual(["c-a-1"]);
    expect(view.byGroup.get("b")).toEqual([]);
    expect(duplicates).toEqual([]);
  });

  test("two servers with one name: the older is the server, the newer a duplicate, in either order of the list", () => {
    const older = server("c-a-twin", ours("a"));
    const newer = server("c-a-twin", ours("a"));
    for (const list of [[older, newer], [newer, older]]) {
      const { view, duplicates } = viewOfList(list, "c", GROUPS);
      expect([...view.servers.keys()]).toEqual([older.uuid]);
      expect(duplicates.map((d) => d.uuid)).toEqual([newer.uuid]);
    }
  });

  test("keeps only the fields it needs", () => {
    const { view } = viewOfList([server("c-a-1", ours("a"))], "c", GROUPS);
    expect(Object.keys([...view.servers.values()][0]!).sort()).toEqual(["created_at", "name", "status", "tags", "uuid"]);
  });
});

describe("answers from a view and the marks", () => {
  const s1 = server("c-a-1", ours("a"));
  const s2 = server("c-a-2", ours("a"), { status: "changing" });
  const s3 = server("c-a-3", ours("a"), { status: "error" });
  const { view } = viewOfList([s1, s2, s3], "c", GROUPS);
  const m = marks();
  m.deleting.set(s1.uuid, { group: "a", issuedAt: 0 });
  m.pending.set("c-a-q", pending({ name: "c-a-q" }));
  m.pending.set("c-a-c", pending({ name: "c-a-c", state: "created", uuid: "11111111-1111-4111-8111-111111111111" }));
  m.pending.set("c-a-f", pending({ name: "c-a-f", state: "failed", error: { code: "QUOTA_EXCEEDED", message: "q", errorClass: 1 } }));

  test("target size: listed minus being deleted, plus every accepted creation", () => {
    expect(targetSize(view, m, "a")).toBe(5);
    expect(targetSize(view, m, "b")).toBe(0);
  });

  test("existing: listed minus being deleted, plus confirmed creations only", () => {
    expect(existing(view, m, "a")).toBe(3);
  });

  test("instances: deleting, creating for changing, an error for error, pending ids for creations", () => {
    expect(instances(view, m, "a")).toEqual([
      { id: `cloudscale://${s1.uuid}`, state: "deleting" },
      { id: `cloudscale://${s2.uuid}`, state: "creating" },
      { id: `cloudscale://${s3.uuid}`, state: "creating", error: { code: "server-error", message: "server c-a-3 is in status error", errorClass: 99 } },
      { id: "cloudscale://pending/c-a-q", state: "creating" },
      { id: "cloudscale://11111111-1111-4111-8111-111111111111", state: "creating" },
      { id: "cloudscale://pending/c-a-f", state: "creating", error: { code: "QUOTA_EXCEEDED", message: "q", errorClass: 1 } },
    ]);
  });

  test("the group of a node: by providerID, pending id, name; empty for anything else", () => {
    expect(groupForNode(view, m, `cloudscale://${s2.uuid}`, "")).toBe("a");
    expect(groupForNode(view, m, `cloudscale:///${s2.uuid.toUpperCase()}`, "")).toBe("a");
    expect(groupForNode(view, m, "cloudscale://pending/c-a-q", "")).toBe("a");
    expect(groupForNode(view, m, "cloudscale://11111111-1111-4111-8111-111111111111", "")).toBe("a");
    expect(groupForNode(view, m, "", "c-a-2")).toBe("a");
    expect(groupForNode(view, m, "", "c-a-q")).toBe("a");
    expect(groupForNode(view, m, "aws:///x", "c-a-2")).toBe("");
    expect(groupForNode(view, m, "cloudscale://not-a-uuid", "")).toBe("");
    expect(groupForNode(view, m, "", "")).toBe("");
    expect(groupForNode(emptyView(GROUPS), marks(), "", "c-a-2")).toBe("");
  });

  test("parseProviderId", () => {
    expect(parseProviderId("cloudscale://pending/x")).toEqual({ pendingName: "x" });
    expect(parseProviderId("gce://p/z/n")).toBeNull();
    expect(parseProviderId(`cloudscale://${s1.uuid}`)).toEqual({ uuid: s1.uuid });
  });
});

describe("what a newer list means for a mark", () => {
  const T = 100_000;
  test.each([
    ["listed, whatever its state", "listed", pending({ state: "creating" }), true],
    ["confirmed before the list started, not listed", "vanished", pending({ state: "created", confirmedAt: T - 1 }), false],
    ["confirmed after the list started", "keep", pending({ state: "created", confirmedAt: T }), false],
    ["unanswered, the list started well after", "retry", pending({ state: "verifying", uncertainSince: T - 5001 }), false],
    ["unanswered, the list started within the verify delay", "keep", pending({ state: "verifying", uncertainSince: T - 5000 }), false],
    ["failed long ago", "expired", pending({ state: "failed", failedAt: T - 900_001 }), false],
    ["failed recently", "keep", pending({ state: "failed", failedAt: T - 10 }), false],
    ["queued", "keep", pending({}), false],
  ] as const)("a creation %s: %s", (_label, fate, p, listed) => {
    expect(pendingFate(p, listed, T, T, RULES)).toBe(fate);
  });

  const mark = (over: Partial<DeleteMark>): DeleteMark => ({ group: "a", issuedAt: 0, ...over });
  test.each([
    ["still being tried", false, mark({}), true],
    ["ended after the list started", false, mark({ completedAt: 200, confirmed: true }), false],
    ["confirmed, gone", true, mark({ completedAt: 50, confirmed: true }), false],
    ["confirmed, still listed shortly after", false, mark({ completedAt: 50, confirmed: true }), true],
    ["unanswered, still listed: it survived", true, mark({ completedAt: 50 }), true],
    ["unanswered, gone", true, mark({ completedAt: 50 }), false],
  ] as const)("a delete %s: done=%p", (_label, done, m, listed) => {
    expect(deleteMarkDone(m, listed, 100, 1000, RULES)).toBe(done);
  });

  test("a confirmed delete still listed long after: believe the cloud", () => {
    expect(deleteMarkDone(mark({ completedAt: 50, confirmed: true }), true, 100, 50 + 120_001, RULES)).toBe(true);
  });
});

describe("newcomers", () => {
  test("servers a newer list shows that the previous did not, and whose names are not ours", () => {
    const known = server("c-a-1", ours("a"));
    const mine = server("c-a-mine", ours("a"));
    const stranger = server("c-a-prev", ours("a"));
    const other = server("c-b-prev", ours("b"));
    const m = marks();
    m.pending.set("c-a-mine", pending({ name: "c-a-mine", state: "created", uuid: mine.uuid }));
    const previous = viewOfList([known], "c", GROUPS).view;
    const next = viewOfList([known, mine, stranger, other], "c", GROUPS).view;
    expect(newcomers(previous, next, m)).toEqual(new Map([["a", 1], ["b", 1]]));
    expect(newcomers(undefined, next, m)).toEqual(new Map()); // the first list is where a process starts from
  });
});
