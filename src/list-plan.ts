// What one list means, decided before anything is done about it (pure): the view it
// makes, and for each mark what the list settles. The reconciler then acts on the
// plan in one order: the view and the marks, then the cancellations of rules 9 and
// 10, then what goes to the cloud (sends, the deletion of duplicates), so nothing is
// sent that a cancellation of the same list would have taken back.
import type { Server } from "./types";
import { deleteMarkDone, newcomers, pendingFate, viewOfList, type ListRules, type Marks, type PendingCreate, type ServerView, type View } from "./view";

export interface ListPlan {
  view: View;
  /** Accepted creations the list settles: listed (the view counts them now), failed long ago, or vanished after they were created. */
  forget: { name: string; why: "listed" | "expired" | "vanished"; p: PendingCreate }[];
  /** Unanswered creates that a list started well after them does not show: they did not happen. */
  retry: PendingCreate[];
  /** Delete marks (server UUIDs) the list ends. */
  deletesDone: string[];
  /** The newer of two servers of one creation (rule 7), not being deleted yet. */
  duplicates: ServerView[];
  /** Per group, servers this process did not create that appeared since the previous list (rule 9). */
  arrived: Map<string, number>;
}

export interface ListContext {
  clusterName: string;
  groups: Iterable<string>;
  /** The view the list replaces; undefined for the first list of a process. */
  previous: View | undefined;
  marks: Marks;
  rules: ListRules;
}

/** The plan for a list that was requested at `startedAt` and is applied at `now`. */
export function planList(list: Server[], startedAt: number, now: number, ctx: ListContext): ListPlan {
  const { view, duplicates } = viewOfList(list, ctx.clusterName, ctx.groups);
  const plan: ListPlan = { view, forget: [], retry: [], deletesDone: [], duplicates: [], arrived: newcomers(ctx.previous, view, ctx.marks) };
  for (const [name, p] of ctx.marks.pending) {
    const listed = (p.uuid !== undefined && view.servers.has(p.uuid)) || view.byName.has(name);
    const fate = pendingFate(p, listed, startedAt, now, ctx.rules);
    if (fate === "retry") plan.retry.push(p);
    else if (fate !== "keep") plan.forget.push({ name, why: fate, p });
  }
  const duplicateUuids = new Set(duplicates.map((d) => d.uuid));
  for (const [uuid, mark] of ctx.marks.deleting) {
    if (deleteMarkDone(mark, view.servers.has(uuid) || duplicateUuids.has(uuid), startedAt, now, ctx.rules)) plan.deletesDone.push(uuid);
  }
  const ending = new Set(plan.deletesDone);
  plan.duplicates = duplicates.filter((d) => !ctx.marks.deleting.has(d.uuid) || ending.has(d.uuid));
  return plan;
}

