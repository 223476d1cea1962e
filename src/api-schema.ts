// What the cloudscale.ch API's successful answers must look like before the provider believes them.
// A 200 from a captive portal or a misrouted balancer (an HTML page), a JSON object where a list
// belongs, or a field of the wrong type is not an answer: the client turns it into a "malformed"
// error, which is retried like a 5xx and never becomes an empty view.
//
// Only the fields the provider reads are checked and kept; other fields are dropped, so a field the
// API adds later breaks nothing. A server's status is any string: one the API adds later matches none
// of the statuses the provider acts on (a new status is not a wrong type).
import * as v from "valibot";
import type { Flavor, Server } from "./types";

const slugRef = v.object({ slug: v.string() });
const uuidRef = v.object({ uuid: v.string() });
/** The API's UUIDs; a provider ID is built from them, so they must have this shape. */
const uuid = v.pipe(v.string(), v.regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, "is not a UUID"));

/** What a list of servers must give of each: what the view is built from, and the flavor and zone. */
const listedServer = {
  uuid,
  name: v.string(),
  status: v.string(),
  flavor: v.object({ slug: v.string(), name: v.optional(v.string()), vcpu_count: v.number(), memory_gb: v.number() }),
  zone: slugRef,
  tags: v.record(v.string(), v.string()),
  created_at: v.string(),
};

/** One server (a create's or a GET's answer): also what `check` compares with the request. */
export const ServerAnswer = v.object({
  ...listedServer,
  href: v.optional(v.string()),
  image: v.optional(v.object({ slug: v.optional(v.string()) })),
  volumes: v.optional(v.array(v.object({ uuid: v.optional(v.string()), type: v.optional(v.string()), size_gb: v.number() }))),
  interfaces: v.optional(v.array(v.unknown())),
  server_groups: v.optional(v.array(uuidRef)),
});

/** One server of a list: what is read of it is checked (the list is read element by element, list-stream.ts). */
export const ListedServer = v.object(listedServer);

/** A list of servers: up to thousands at every Refresh, so only what is read of each is checked. */
export const ServerListAnswer = v.array(ListedServer);

const gpu = v.object({ name: v.string(), count: v.number(), vram_per_gpu_gb: v.number(), total_vram_gb: v.number() });

export const FlavorListAnswer = v.array(
  v.object({
    slug: v.string(),
    name: v.string(),
    vcpu_count: v.number(),
    memory_gb: v.number(),
    gpu: v.optional(v.nullable(gpu), null),
    zones: v.optional(v.array(slugRef), []),
  }),
);

export const ImageListAnswer = v.array(v.object({ slug: v.string(), zones: v.optional(v.array(slugRef)) }));
// user_data_handling decides what a server of the image receives as user-data (validate checks it).
export const CustomImageListAnswer = v.array(
  v.object({ uuid, slug: v.string(), zones: v.optional(v.array(slugRef)), user_data_handling: v.optional(v.string()) }),
);
export const RegionListAnswer = v.array(v.object({ slug: v.string(), zones: v.array(slugRef) }));
export const ServerGroupListAnswer = v.array(
  v.object({ uuid, name: v.string(), zone: slugRef, servers: v.optional(v.array(uuidRef)) }),
);

/** DELETE answers 204 with no body. An empty 200 or a JSON object is accepted too; a page of text is not. */
export const EmptyAnswer = v.union([v.undefined(), v.literal(""), v.looseObject({})]);

export type AnswerSchema<T> = v.GenericSchema<unknown, T>;

// The parsed shapes are the ones the rest of the provider is written against.
const _server: AnswerSchema<Server> = ServerAnswer;
const _servers: AnswerSchema<Server[]> = ServerListAnswer;
const _flavors: AnswerSchema<Flavor[]> = FlavorListAnswer;
void [_server, _servers, _flavors];

/** What the answer was, in a few words, for an error message: its JSON type, or the start of its text. */
function shapeOf(data: unknown): string {
  if (typeof data === "string") {
    const text = data.replace(/\s+/g, " ").trim();
    return text === "" ? "an empty body" : `text that is not JSON ("${text.slice(0, 80)}${text.length > 80 ? "…" : ""}")`;
  }
  if (data === null) return "null";
  if (Array.isArray(data)) return `a JSON list of ${data.length}`;
  return `a JSON ${typeof data}`;
}

/** Parses an answer; on a mismatch, returns a message naming what was wrong and where (at most three places). */
export function parseAnswer<T>(schema: AnswerSchema<T>, data: unknown, expected: string): { ok: true; value: T } | { ok: false; message: string } {
  const r = v.safeParse(schema, data);
  if (r.success) return { ok: true, value: r.output };
  const top = r.issues.find((i) => !i.path?.length);
  if (top || typeof data !== "object" || data === null) return { ok: false, message: `expected ${expected}, got ${shapeOf(data)}` };
  const places = r.issues.slice(0, 3).map((i) => `${v.getDotPath(i) ?? "(answer)"}: ${i.message}`);
  const more = r.issues.length > 3 ? ` (and ${r.issues.length - 3} more)` : "";
  return { ok: false, message: `expected ${expected}, but ${places.join("; ")}${more}` };
}
