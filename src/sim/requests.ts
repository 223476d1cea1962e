// Validation of the API's request bodies: what the simulated API refuses, and with which words, before
// anything in the account changes. Each parser returns the request in a checked shape or a 400.
//
// Error bodies follow the real API's shape: 400 field errors are {"<field>": "<msg>"} with plain-string
// values; state errors are {"detail": "<msg>"}. Field messages reuse Django REST framework's default
// wording where the real API is known to do so ("This field may not be blank.", "Not found."); where the
// real text is unknown we wrote our own.

import { SERVER_GROUP_CAPACITY, type Flavor } from "../types.ts";
import type { AddressRequest } from "./addresses.ts";
import { isUuid, type Catalog, type ImageStub } from "./catalog.ts";
import { fail, ok, type Result, type ServerGroupRecord } from "./records.ts";

const LABEL_RE = /^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$/;
const REQUIRED = "This field is required.";
const NULL = "This field may not be null.";

/** Python's name for a JSON value's type, as DRF's messages show it. */
export function typeName(v: unknown): string {
  if (v === null) return "NoneType";
  if (Array.isArray(v)) return "list";
  if (typeof v === "string") return "str";
  if (typeof v === "number") return Number.isInteger(v) ? "int" : "float";
  if (typeof v === "boolean") return "bool";
  return "dict";
}

/** Returns an error message or null. */
export function hostnameError(name: string): string | null {
  if (name.trim() === "") return "This field may not be blank.";
  if (name.length > 63) return "Ensure this field has no more than 63 characters.";
  const labels = name.split(".");
  if (!labels.every((l) => LABEL_RE.test(l))) {
    return "Enter a valid host name: letters, digits and hyphens, optionally separated by dots; no leading or trailing hyphen.";
  }
  return null;
}

/** Returns an error message or null. */
export function tagsError(v: unknown): string | null {
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    return `Expected a dictionary of items but got type "${typeName(v)}".`;
  }
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== "string") return `Tag values must be strings (tag "${k}").`;
  }
  return null;
}

/** A body's optional `tags` (null or missing: none); a wrong value is recorded in errs.tags. */
function optionalTags(b: Record<string, unknown>, errs: Record<string, string>): Record<string, string> {
  if (b.tags === undefined || b.tags === null) return {};
  const e = tagsError(b.tags);
  if (e) {
    errs.tags = e;
    return {};
  }
  return { ...(b.tags as Record<string, string>) };
}

function notADict(body: unknown): Result<never> | null {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return fail(400, { detail: `Invalid data. Expected a dictionary, but got ${typeName(body)}.` });
  }
  return null;
}

/** One entry of a create's or a PATCH's `interfaces`: "public" or a network uuid (lower case). */
export interface InterfaceRequest {
  network: string;
  addresses?: AddressRequest[];
}

/** Validates an interfaces list; returns the normalized list or an error message. */
export function checkInterfaces(catalog: Catalog, v: unknown, zone: string | null): InterfaceRequest[] | string {
  if (!Array.isArray(v)) return `Expected a list of items but got type "${typeName(v)}".`;
  const out: InterfaceRequest[] = [];
  for (const item of v as unknown[]) {
    const i = item as { network?: unknown; addresses?: unknown };
    if (typeof i !== "object" || i === null || typeof i.network !== "string") return 'Each interface needs a "network": "public" or a network UUID.';
    if (i.network !== "public") {
      const net = catalog.networks.get(i.network.toLowerCase());
      if (!net) return `Invalid pk "${i.network}" - object does not exist.`;
      if (zone && net.zone !== zone) return `Network ${net.uuid} is in zone ${net.zone}, not in zone ${zone}.`;
    }
    let addresses: AddressRequest[] | undefined;
    if (i.addresses !== undefined) {
      if (!Array.isArray(i.addresses)) return `Expected a list of items but got type "${typeName(i.addresses)}".`;
      addresses = [];
      for (const a of i.addresses as unknown[]) {
        const aa = a as { subnet?: unknown; address?: unknown };
        if (typeof aa !== "object" || aa === null) return "Each address must be an object.";
        if (aa.subnet !== undefined && (typeof aa.subnet !== "string" || !catalog.findSubnet(aa.subnet))) {
          return `Invalid pk "${String(aa.subnet)}" - object does not exist.`;
        }
        if (aa.address !== undefined && typeof aa.address !== "string") return "Enter a valid IPv4 or IPv6 address.";
        addresses.push({ subnet: aa.subnet as string | undefined, address: aa.address as string | undefined });
      }
    }
    out.push({ network: i.network === "public" ? "public" : i.network.toLowerCase(), addresses });
  }
  return out;
}

/** A POST /v1/servers body that passed every field check. */
export interface CreateRequest {
  name: string;
  zone: string;
  flavor: Flavor;
  image: ImageStub;
  rootSize: number;
  bulkSize: number;
  extraVolumes: { size_gb: number; type: "ssd" | "bulk" }[];
  sshKeys: string[];
  usePublic: boolean;
  usePrivate: boolean;
  useIpv6: boolean;
  /** Explicit interfaces, or null for the use_*_network booleans. */
  interfaces: InterfaceRequest[] | null;
  serverGroups: string[];
  userData: string | null;
  tags: Record<string, string>;
}

/** POST /v1/servers: every field error at once (a 400 {"<field>": …}). */
export function parseCreateServer(
  body: unknown,
  catalog: Catalog,
  serverGroups: ReadonlyMap<string, ServerGroupRecord>,
  defaultZone: string,
): Result<CreateRequest> {
  const notDict = notADict(body);
  if (notDict) return notDict;
  const b = body as Record<string, unknown>;
  const errs: Record<string, string> = {};

  // name
  if (b.name === undefined) errs.name = REQUIRED;
  else if (b.name === null) errs.name = NULL;
  else if (typeof b.name !== "string") errs.name = "Not a valid string.";
  else {
    const e = hostnameError(b.name);
    if (e) errs.name = e;
  }

  // zone
  let zone = defaultZone;
  if (b.zone !== undefined && b.zone !== null) {
    if (typeof b.zone !== "string") errs.zone = "Not a valid string.";
    else if (!catalog.isZone(b.zone)) errs.zone = `Object with slug=${b.zone} does not exist.`;
    else zone = b.zone;
  }
  const zoneOk = errs.zone === undefined;

  // flavor
  let flv: Flavor | undefined;
  if (b.flavor === undefined) errs.flavor = REQUIRED;
  else if (b.flavor === null) errs.flavor = NULL;
  else if (typeof b.flavor !== "string") errs.flavor = "Not a valid string.";
  else if (b.flavor.trim() === "") errs.flavor = "This field may not be blank.";
  else {
    flv = catalog.flavors.get(b.flavor);
    if (!flv) errs.flavor = `Object with slug=${b.flavor} does not exist.`;
    else if (zoneOk && !flv.zones.some((z) => z.slug === zone)) {
      // The real answer is not documented; reported as a field error on "flavor".
      errs.flavor = `Flavor ${flv.slug} is not available in zone ${zone}.`;
    }
  }

  // image
  let image: ReturnType<Catalog["resolveImage"]> = null;
  if (b.image === undefined) errs.image = REQUIRED;
  else if (b.image === null) errs.image = NULL;
  else if (typeof b.image !== "string") errs.image = "Not a valid string.";
  else if (b.image.trim() === "") errs.image = "This field may not be blank.";
  else {
    image = catalog.resolveImage(b.image);
    if (!image) errs.image = `Object with slug=${b.image} does not exist.`;
    else if (zoneOk && !image.zones.includes(zone)) errs.image = `Image ${b.image} is not available in zone ${zone}.`;
  }

  // volume_size_gb
  let rootSize = 10;
  if (b.volume_size_gb !== undefined && b.volume_size_gb !== null) {
    const v = b.volume_size_gb;
    if (typeof v !== "number" || !Number.isInteger(v)) errs.volume_size_gb = "A valid integer is required.";
    else if (v < 10) errs.volume_size_gb = "Ensure this value is greater than or equal to 10.";
    else rootSize = v;
  }
  let bulkSize = 0;
  if (b.bulk_volume_size_gb !== undefined && b.bulk_volume_size_gb !== null) {
    const v = b.bulk_volume_size_gb;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) errs.bulk_volume_size_gb = "A valid integer is required.";
    else bulkSize = v;
  }
  const extraVolumes: CreateRequest["extraVolumes"] = [];
  if (b.volumes !== undefined && b.volumes !== null) {
    if (!Array.isArray(b.volumes)) errs.volumes = `Expected a list of items but got type "${typeName(b.volumes)}".`;
    else {
      for (const v of b.volumes as unknown[]) {
        const o = v as { size_gb?: unknown; type?: unknown };
        if (typeof o !== "object" || o === null || typeof o.size_gb !== "number" || !Number.isInteger(o.size_gb) || o.size_gb < 1) {
          errs.volumes = "Each volume needs an integer size_gb of at least 1.";
          break;
        }
        const t = o.type ?? "ssd";
        if (t !== "ssd" && t !== "bulk") {
          errs.volumes = `"${String(t)}" is not a valid choice.`;
          break;
        }
        extraVolumes.push({ size_gb: o.size_gb, type: t });
      }
    }
  }

  // ssh_keys
  let sshKeys: string[] = [];
  // Clients must send [] rather than null (capcs), so null is refused like DRF's allow_null=False.
  if (b.ssh_keys === null) errs.ssh_keys = NULL;
  else if (b.ssh_keys !== undefined) {
    if (!Array.isArray(b.ssh_keys)) errs.ssh_keys = `Expected a list of items but got type "${typeName(b.ssh_keys)}".`;
    else if (!b.ssh_keys.every((k) => typeof k === "string")) errs.ssh_keys = "Not a valid string.";
    else sshKeys = b.ssh_keys as string[];
  }

  // password (accepted, never shown)
  if (b.password !== undefined && b.password !== null && typeof b.password !== "string") errs.password = "Not a valid string.";

  // booleans
  const bool = (k: string, dflt: boolean): boolean => {
    const v = b[k];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== "boolean") {
      errs[k] = "Must be a valid boolean.";
      return dflt;
    }
    return v;
  };
  const usePublic = bool("use_public_network", true);
  const usePrivate = bool("use_private_network", false);
  const useIpv6 = bool("use_ipv6", true);

  // interfaces
  let interfaces: InterfaceRequest[] | null = null;
  if (b.interfaces !== undefined && b.interfaces !== null) {
    const r = checkInterfaces(catalog, b.interfaces, zoneOk ? zone : null);
    if (typeof r === "string") errs.interfaces = r;
    else interfaces = r;
  }

  // server_groups
  const groups: string[] = [];
  if (b.server_groups !== undefined && b.server_groups !== null) {
    if (!Array.isArray(b.server_groups)) errs.server_groups = `Expected a list of items but got type "${typeName(b.server_groups)}".`;
    else {
      for (const g of b.server_groups as unknown[]) {
        if (typeof g !== "string" || !isUuid(g)) {
          errs.server_groups = `"${String(g)}" is not a valid UUID.`;
          break;
        }
        const grp = serverGroups.get(g.toLowerCase());
        if (!grp) {
          errs.server_groups = `Invalid pk "${g}" - object does not exist.`;
          break;
        }
        if (zoneOk && grp.zone !== zone) {
          errs.server_groups = `Server group ${g} is in zone ${grp.zone}, not in zone ${zone}.`;
          break;
        }
        // An anti-affinity server group holds at most SERVER_GROUP_CAPACITY servers; the API refuses
        // one more. The message is ours: the real one is not known.
        if (grp.servers.size >= SERVER_GROUP_CAPACITY) {
          errs.server_groups = `Server group ${g} already has ${grp.servers.size} servers; an anti-affinity server group holds at most ${SERVER_GROUP_CAPACITY}.`;
          break;
        }
        groups.push(grp.uuid);
      }
    }
  }

  // user_data
  let userData: string | null = null;
  if (b.user_data !== undefined && b.user_data !== null) {
    if (typeof b.user_data !== "string") errs.user_data = "Not a valid string.";
    else userData = b.user_data;
  }

  const tags = optionalTags(b, errs);

  if (Object.keys(errs).length > 0) return fail(400, errs);
  return ok({
    name: b.name as string,
    zone,
    flavor: flv!,
    image: image!.stub,
    rootSize,
    bulkSize,
    extraVolumes,
    sshKeys,
    usePublic,
    usePrivate,
    useIpv6,
    interfaces,
    serverGroups: groups,
    userData,
    tags,
  });
}

/** The one change a PATCH /v1/servers/<uuid> asks for; null when it names none. */
export type PatchRequest =
  | { kind: "name"; name: string }
  | { kind: "tags"; tags: Record<string, string> }
  | { kind: "flavor"; flavor: Flavor }
  | { kind: "interfaces"; interfaces: InterfaceRequest[] }
  | null;

/** PATCH /v1/servers/<uuid> of a server in `zone`: one of name, flavor, interfaces, tags per request. */
export function parsePatchServer(body: unknown, catalog: Catalog, zone: string): Result<PatchRequest> {
  const notDict = notADict(body);
  if (notDict) return notDict;
  const b = body as Record<string, unknown>;
  const keys = ["name", "flavor", "interfaces", "tags"].filter((k) => b[k] !== undefined);
  if (keys.length > 1) return fail(400, { detail: "Only one attribute can be changed per request." });
  if (keys.length === 0) return ok(null);
  const k = keys[0]!;
  if (k === "name") {
    if (typeof b.name !== "string") return fail(400, { name: "Not a valid string." });
    const e = hostnameError(b.name);
    if (e) return fail(400, { name: e });
    return ok({ kind: "name", name: b.name });
  }
  if (k === "tags") {
    const e = b.tags === null ? null : tagsError(b.tags);
    if (e) return fail(400, { tags: e });
    return ok({ kind: "tags", tags: { ...((b.tags ?? {}) as Record<string, string>) } });
  }
  if (k === "flavor") {
    if (typeof b.flavor !== "string") return fail(400, { flavor: "Not a valid string." });
    const f = catalog.flavors.get(b.flavor);
    if (!f) return fail(400, { flavor: `Object with slug=${b.flavor} does not exist.` });
    if (!f.zones.some((z) => z.slug === zone)) return fail(400, { flavor: `Flavor ${f.slug} is not available in zone ${zone}.` });
    return ok({ kind: "flavor", flavor: f });
  }
  const r = checkInterfaces(catalog, b.interfaces, zone);
  if (typeof r === "string") return fail(400, { interfaces: r });
  return ok({ kind: "interfaces", interfaces: r });
}

/** POST /v1/server-groups. */
export function parseCreateServerGroup(body: unknown, catalog: Catalog, defaultZone: string): Result<{ name: string; zone: string; tags: Record<string, string> }> {
  const notDict = notADict(body);
  if (notDict) return notDict;
  const b = body as Record<string, unknown>;
  const errs: Record<string, string> = {};
  if (b.name === undefined) errs.name = REQUIRED;
  else if (typeof b.name !== "string") errs.name = "Not a valid string.";
  else if (b.name.trim() === "") errs.name = "This field may not be blank.";
  const type = b.type ?? "anti-affinity";
  if (type !== "anti-affinity") errs.type = `"${String(type)}" is not a valid choice.`;
  let zone = defaultZone;
  if (b.zone !== undefined && b.zone !== null) {
    if (typeof b.zone !== "string" || !catalog.isZone(b.zone)) errs.zone = `Object with slug=${String(b.zone)} does not exist.`;
    else zone = b.zone;
  }
  const tags = optionalTags(b, errs);
  if (Object.keys(errs).length > 0) return fail(400, errs);
  return ok({ name: b.name as string, zone, tags });
}
