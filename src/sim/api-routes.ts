// The simulated cloud API's routes (base <origin>/v1, JSON, `Authorization: Bearer <token>`):
//   GET    /v1/servers[?tag:<k>=<v>&tag:<k>…]      all filters must match; `tag:<k>` without "=" = has key
//   POST   /v1/servers                              201 + Server (status "changing", "running" after boot)
//   GET    /v1/servers/<uuid>       PATCH (204; one of name|flavor|interfaces|tags)
//   DELETE /v1/servers/<uuid>       204; 400 {"detail": …} while the server is still `changing`, as the real API
//   POST   /v1/servers/<uuid>/start|stop|reboot    204
//   GET    /v1/flavors  /v1/images  /v1/custom-images[/<uuid>]  /v1/regions  /v1/networks[/<uuid>]
//   POST   /v1/custom-images/import (201)   GET /v1/custom-images/import[/<uuid>]   (image-imports.ts)
//          /v1/subnets[/<uuid>]
//   GET    /v1/server-groups   POST /v1/server-groups (201)   GET|DELETE /v1/server-groups/<uuid>
// Errors: 400 {"<field>": "<msg>"} or {"detail": "<msg>"}; 404 {"detail": "Not found."}; 415 for a
// non-JSON body. Quota exceeded on create: 400 {"detail": "Quota exceeded: ..."}; out of capacity: 400
// {"detail": "Insufficient capacity for flavor F in zone Z."} (the real shapes are not documented).
// Authentication, 405 and injected faults are server.ts's.

import { REGIONS } from "./catalog.ts";
import { rfc3339Micro } from "./clock.ts";
import { fromResult, json, noContent, parseTagFilters, rawJson, readJson, tagsMatch } from "./http.ts";
import { NOT_FOUND } from "./records.ts";
import { renderCustomImage, renderNetwork, renderServerGroup, renderSubnet } from "./render.ts";
import type { SimState } from "./state.ts";

export interface RouteCtx {
  req: Request;
  url: URL;
  params: string[];
}
export type Handler = (c: RouteCtx) => Response | Promise<Response>;
export interface Route {
  /** The path with ":name" placeholders; also the key requests are counted and faulted by. */
  pattern: string;
  re: RegExp;
  methods: Record<string, Handler>;
}

function route(pattern: string, methods: Record<string, Handler>): Route {
  const re = new RegExp(`^${pattern.replace(/:[a-z]+/g, "([^/]+)")}$`);
  return { pattern, re, methods };
}

const notFound = () => json(404, NOT_FOUND.body);

export function apiRoutes(state: SimState): Route[] {
  const list = (items: unknown[]) => json(200, items);
  const api = () => state.apiUrl;
  return [
    route("/v1/servers", {
      GET: ({ url }) => {
        const f = parseTagFilters(url.search);
        if (!f) return json(400, { detail: "Malformed query string." });
        return rawJson(200, state.listServersJson(f));
      },
      POST: async ({ req }) => {
        const b = await readJson(req);
        if (!b.ok) return b.response;
        return fromResult(state.createServer(b.value), (s) => rawJson(201, state.serverJson(s)));
      },
    }),
    route("/v1/servers/:uuid", {
      GET: ({ params }) => {
        const s = state.getServer(params[0]!);
        return s ? rawJson(200, state.serverJson(s)) : notFound();
      },
      PATCH: async ({ req, params }) => {
        if (!state.getServer(params[0]!)) return notFound();
        const b = await readJson(req);
        if (!b.ok) return b.response;
        return fromResult(state.patchServer(params[0]!, b.value), noContent);
      },
      DELETE: ({ params }) => fromResult(state.deleteServer(params[0]!), noContent),
    }),
    ...(["start", "stop", "reboot"] as const).map((a) =>
      route(`/v1/servers/:uuid/${a}`, { POST: ({ params }) => fromResult(state.serverAction(params[0]!, a), noContent) }),
    ),
    route("/v1/flavors", { GET: () => list([...state.flavors.values()]) }),
    route("/v1/images", { GET: () => list([...state.images.values()]) }),
    route("/v1/custom-images", {
      GET: ({ url }) => {
        const f = parseTagFilters(url.search) ?? [];
        return list([...state.customImages.values()].filter((c) => tagsMatch(c.tags, f)).map((c) => renderCustomImage(api(), c)));
      },
    }),
    // Before /v1/custom-images/:uuid, which would take "import" for a uuid.
    route("/v1/custom-images/import", {
      GET: () => list([...state.imageImports.imports.values()].map((i) => state.imageImports.render(api(), i))),
      POST: async ({ req }) => {
        const b = await readJson(req);
        if (!b.ok) return b.response;
        return fromResult(state.imageImports.create(b.value, rfc3339Micro(state.now(), 0)), (i) => json(201, state.imageImports.render(api(), i, true)));
      },
    }),
    route("/v1/custom-images/import/:uuid", {
      GET: ({ params }) => {
        const i = state.imageImports.get(params[0]!);
        return i ? json(200, state.imageImports.render(api(), i)) : notFound();
      },
    }),
    route("/v1/custom-images/:uuid", {
      GET: ({ params }) => {
        const c = state.customImages.get(params[0]!.toLowerCase());
        return c ? json(200, renderCustomImage(api(), c)) : notFound();
      },
    }),
    route("/v1/regions", { GET: () => list(REGIONS) }),
    route("/v1/server-groups", {
      GET: ({ url }) => {
        const f = parseTagFilters(url.search) ?? [];
        return list([...state.serverGroups.values()].filter((g) => tagsMatch(g.tags, f)).map((g) => renderServerGroup(api(), g)));
      },
      POST: async ({ req }) => {
        const b = await readJson(req);
        if (!b.ok) return b.response;
        return fromResult(state.createServerGroup(b.value), (g) => json(201, renderServerGroup(api(), g)));
      },
    }),
    route("/v1/server-groups/:uuid", {
      GET: ({ params }) => {
        const g = state.serverGroups.get(params[0]!.toLowerCase());
        return g ? json(200, renderServerGroup(api(), g)) : notFound();
      },
      DELETE: ({ params }) => fromResult(state.deleteServerGroup(params[0]!), noContent),
    }),
    route("/v1/networks", {
      GET: ({ url }) => {
        const f = parseTagFilters(url.search) ?? [];
        return list([...state.networks.values()].filter((n) => tagsMatch(n.tags, f)).map((n) => renderNetwork(api(), n)));
      },
    }),
    route("/v1/networks/:uuid", {
      GET: ({ params }) => {
        const n = state.networks.get(params[0]!.toLowerCase());
        return n ? json(200, renderNetwork(api(), n)) : notFound();
      },
    }),
    route("/v1/subnets", {
      GET: () => list([...state.networks.values()].flatMap((n) => n.subnets.map((s) => renderSubnet(api(), n, s)))),
    }),
    route("/v1/subnets/:uuid", {
      GET: ({ params }) => {
        const f = state.catalog.findSubnet(params[0]!.toLowerCase());
        return f ? json(200, renderSubnet(api(), f.network, f.subnet)) : notFound();
      },
    }),
  ];
}

/** The route a path matches and its decoded parameters; a malformed %-escape counts as no route. */
export function matchRoute(routes: Route[], path: string): { route?: Route; params: string[] } {
  for (const r of routes) {
    const m = r.re.exec(path);
    if (m) {
      try {
        return { route: r, params: m.slice(1).map((p) => decodeURIComponent(p)) };
      } catch {
        return { params: [] };
      }
    }
  }
  return { params: [] };
}
