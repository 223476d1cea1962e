// The simulated cloudscale.ch account's store: servers and server groups, and the changes the API makes
// to them. The catalog, request validation, rendering, addresses and quota live in their own modules;
// no HTTP here (server.ts maps these results onto the wire).
//
// Status is computed lazily from the clock: a server carries its base status plus an optional pending
// transition ("becomes running at t"), settled when it is read. 5,000 booting servers cost no timers.

import type { Flavor, ServerStatus } from "../types.ts";
import { AddressPool } from "./addresses.ts";
import { Catalog, isUuid, type CustomImage, type Network, type PublicImage } from "./catalog.ts";
import { SimClock, rfc3339Micro, type SimTime } from "./clock.ts";
import { Faults } from "./faults.ts";
import { ImageImports } from "./image-imports.ts";
import { QuotaLedger, type Usage } from "./quota.ts";
import {
  fail,
  NOT_FOUND,
  ok,
  type Quota,
  type Result,
  type SeedData,
  type SeedServer,
  type ServerGroupRecord,
  type ServerInterface,
  type ServerRecord,
  type TagFilter,
} from "./records.ts";
import { href, renderServer, renderServerFull } from "./render.ts";
import { parseCreateServer, parseCreateServerGroup, parsePatchServer, tagsError, type InterfaceRequest } from "./requests.ts";

export interface StateOptions {
  clock?: SimTime;
  faults?: Faults;
  /** changing → running delay for new servers, seconds (default 5). */
  bootSeconds?: number;
  /** changing → settled delay for start/stop/reboot/flavor change, seconds (default 2). */
  actionSeconds?: number;
  quota?: Partial<Quota>;
  /** Zone used when a create request has none (default rma1). */
  defaultZone?: string;
  /** Base for hrefs, e.g. http://127.0.0.1:8088/v1 (set by the HTTP server once it listens). */
  apiUrl?: string;
}

function randomB64(bytes: number): string {
  const b = new Uint8Array(bytes);
  crypto.getRandomValues(b);
  return Buffer.from(b).toString("base64");
}

export class SimState {
  readonly clock: SimClock;
  readonly faults: Faults;
  readonly catalog = new Catalog();
  readonly imageImports = new ImageImports(this.catalog);
  bootSeconds: number;
  actionSeconds: number;
  defaultZone: string;
  apiUrl: string;

  servers = new Map<string, ServerRecord>();
  serverGroups = new Map<string, ServerGroupRecord>();

  private readonly ledger: QuotaLedger;
  private readonly addresses = new AddressPool((kind, uuid) => href(this.apiUrl, kind, uuid));
  private readonly groupName = (uuid: string): string => this.serverGroups.get(uuid)?.name ?? "";

  constructor(opts: StateOptions = {}) {
    this.clock = opts.clock instanceof SimClock ? opts.clock : new SimClock(opts.clock);
    this.faults = opts.faults ?? new Faults();
    this.bootSeconds = opts.bootSeconds ?? 5;
    this.actionSeconds = opts.actionSeconds ?? 2;
    this.defaultZone = opts.defaultZone ?? "rma1";
    this.apiUrl = opts.apiUrl ?? "http://127.0.0.1/v1";
    this.ledger = new QuotaLedger(opts.quota);
  }

  get flavors(): Map<string, Flavor> {
    return this.catalog.flavors;
  }
  get images(): Map<string, PublicImage> {
    return this.catalog.images;
  }
  get customImages(): Map<string, CustomImage> {
    return this.catalog.customImages;
  }
  get networks(): Map<string, Network> {
    return this.catalog.networks;
  }
  get quota(): Quota {
    return this.ledger.quota;
  }
  set quota(q: Quota) {
    this.ledger.quota = q;
  }

  /** Drop all servers and server groups, restore the built-in catalog (quota and config are kept). */
  reset(): void {
    this.servers.clear();
    this.serverGroups.clear();
    this.catalog.reset();
    this.imageImports.reset();
    this.ledger.clearUsage();
    this.addresses.reset();
  }

  now(): number {
    return this.clock.now();
  }

  /** Set the href base (e.g. http://127.0.0.1:8088/v1); drops cached server JSON. */
  setApiUrl(url: string): void {
    this.apiUrl = url.replace(/\/+$/, "");
    for (const s of this.servers.values()) s.json = null;
  }

  private createdAtNow(): string {
    return rfc3339Micro(this.now(), (performance.now() * 1000) % 1000);
  }

  isZone(z: string): boolean {
    return this.catalog.isZone(z);
  }

  // ---- status

  /** Effective status now, settling a due transition. */
  statusOf(s: ServerRecord): ServerStatus {
    const p = s.pending;
    if (p && this.now() >= p.at) {
      s.status = p.to;
      s.pending = null;
      if (p.to === "running" || p.to === "stopped") this.markBooted(s);
      s.json = null;
    }
    return s.status;
  }

  private markBooted(s: ServerRecord): void {
    if (s.booted) return;
    s.booted = true;
    const ed = randomB64(32);
    const ec = randomB64(65);
    s.sshHostKeys = [
      `ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABB${ec} root@${s.name}`,
      `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI${ed} root@${s.name}`,
    ];
    s.sshFingerprints = [
      `ecdsa-sha2-nistp256 SHA256:${randomB64(32).replace(/=+$/, "")}`,
      `ssh-ed25519 SHA256:${randomB64(32).replace(/=+$/, "")}`,
    ];
  }

  /** Force a status (control API). With `afterSeconds`/`then`, the server becomes `then` later;
   *  `changing` without `then` stays changing for good (a stuck server). */
  forceStatus(uuid: string, status: ServerStatus, then?: ServerStatus, afterSeconds = 0): boolean {
    const s = this.servers.get(uuid);
    if (!s) return false;
    s.status = status;
    s.pending = then ? { at: this.now() + afterSeconds * 1000, to: then } : null;
    if (status === "running" || status === "stopped") this.markBooted(s);
    s.json = null;
    return true;
  }

  // ---- views (with the status settled first)

  /** The API representation (a plain object shaped like the real Server). */
  serverView(s: ServerRecord): Record<string, unknown> {
    this.statusOf(s);
    return renderServer(this.apiUrl, s, this.groupName);
  }

  /** The API JSON of one server, cached until the server changes. */
  serverJson(s: ServerRecord): string {
    this.statusOf(s);
    if (s.json === null) s.json = JSON.stringify(renderServer(this.apiUrl, s, this.groupName));
    return s.json;
  }

  /** The control-API view: API object plus what the API does not show. */
  serverFullView(s: ServerRecord): Record<string, unknown> {
    this.statusOf(s);
    return renderServerFull(this.apiUrl, s, this.groupName);
  }

  listServers(filters: TagFilter[] = []): ServerRecord[] {
    const out: ServerRecord[] = [];
    outer: for (const s of this.servers.values()) {
      for (const f of filters) {
        const v = s.tags[f.key];
        if (v === undefined || (f.value !== undefined && v !== f.value)) continue outer;
      }
      out.push(s);
    }
    return out;
  }

  /** JSON array of the matching servers (one string build, cached per server). */
  listServersJson(filters: TagFilter[] = []): string {
    const parts = this.listServers(filters).map((s) => this.serverJson(s));
    return `[${parts.join(",")}]`;
  }

  // ---- quota

  getUsage(): Usage {
    return this.ledger.getUsage();
  }

  setQuota(q: Partial<Quota>): void {
    this.ledger.set(q);
  }

  // ---- create

  private interfaceFor(i: InterfaceRequest, name: string, zone: string, ipv6: boolean): ServerInterface {
    return i.network === "public" ? this.addresses.publicInterface(name, zone, ipv6) : this.addresses.privateInterface(this.networks.get(i.network)!, i.addresses);
  }

  /** POST /v1/servers. Field errors first (all at once), then quota, then capacity. */
  createServer(body: unknown): Result<ServerRecord> {
    const parsed = parseCreateServer(body, this.catalog, this.serverGroups, this.defaultZone);
    if (!parsed.ok) return parsed;
    const r = parsed.value;
    const f = r.flavor;
    const q = this.ledger.check(1, f.vcpu_count, f.memory_gb);
    if (q) return q;
    if (this.faults.isOutOfCapacity(f.slug, r.zone)) {
      // The real answer is not documented; a state error that carries the word "capacity".
      return fail(400, { detail: `Insufficient capacity for flavor ${f.slug} in zone ${r.zone}.` });
    }

    const { name, zone } = r;
    const volumes: ServerRecord["volumes"] = [{ uuid: crypto.randomUUID(), name: "root", type: "ssd", size_gb: r.rootSize }];
    if (r.bulkSize > 0) volumes.push({ uuid: crypto.randomUUID(), name: `${name}-bulk`, type: "bulk", size_gb: r.bulkSize });
    r.extraVolumes.forEach((v, i) => volumes.push({ uuid: crypto.randomUUID(), name: `${name}-volume-${i + 1}`, ...v }));

    let interfaces: ServerInterface[];
    if (r.interfaces) {
      interfaces = r.interfaces.map((i) => this.interfaceFor(i, name, zone, r.useIpv6));
    } else {
      interfaces = [];
      if (r.usePublic) interfaces.push(this.addresses.publicInterface(name, zone, r.useIpv6));
      if (r.usePrivate) {
        const net = [...this.networks.values()].find((n) => n.zone === zone);
        if (net) interfaces.push(this.addresses.privateInterface(net));
      }
    }

    const outcome = this.faults.bootOutcome;
    const rec: ServerRecord = {
      uuid: crypto.randomUUID(),
      name,
      flavor: f,
      image: r.image,
      zone,
      volumes,
      interfaces,
      sshKeys: r.sshKeys,
      sshHostKeys: [],
      sshFingerprints: [],
      serverGroups: r.serverGroups,
      tags: r.tags,
      createdAt: this.createdAtNow(),
      userData: r.userData,
      status: "changing",
      pending: outcome === "changing" ? null : { at: this.now() + this.bootSeconds * 1000, to: outcome },
      booted: false,
      json: null,
    };
    this.insert(rec);
    return ok(rec);
  }

  private insert(rec: ServerRecord): void {
    this.servers.set(rec.uuid, rec);
    this.ledger.account(rec.flavor, 1);
    for (const g of rec.serverGroups) this.serverGroups.get(g)?.servers.add(rec.uuid);
  }

  // ---- update / actions / delete

  getServer(uuid: string): ServerRecord | undefined {
    return this.servers.get(uuid.toLowerCase());
  }

  /** PATCH /v1/servers/<uuid>: one of name, flavor, interfaces, tags per request. */
  patchServer(uuid: string, body: unknown): Result<null> {
    const s = this.getServer(uuid);
    if (!s) return NOT_FOUND;
    const parsed = parsePatchServer(body, this.catalog, s.zone);
    if (!parsed.ok) return parsed;
    const p = parsed.value;
    if (p === null) return ok(null);
    if (p.kind === "name") {
      s.name = p.name;
    } else if (p.kind === "tags") {
      s.tags = p.tags;
    } else if (p.kind === "flavor") {
      const f = p.flavor;
      if (this.statusOf(s) !== "stopped") return fail(400, { detail: "The server must be stopped to change its flavor." });
      const q = this.ledger.check(0, f.vcpu_count - s.flavor.vcpu_count, f.memory_gb - s.flavor.memory_gb);
      if (q) return q;
      this.ledger.account(s.flavor, -1);
      s.flavor = f;
      this.ledger.account(f, 1);
      s.status = "changing";
      s.pending = { at: this.now() + this.actionSeconds * 1000, to: "stopped" };
    } else {
      s.interfaces = p.interfaces.map((i) => this.interfaceFor(i, s.name, s.zone, true));
    }
    s.json = null;
    return ok(null);
  }

  /** POST /v1/servers/<uuid>/start|stop|reboot: `changing`, then settles after actionSeconds. */
  serverAction(uuid: string, action: "start" | "stop" | "reboot"): Result<null> {
    const s = this.getServer(uuid);
    if (!s) return NOT_FOUND;
    const to: ServerStatus = action === "stop" ? "stopped" : "running";
    const now = this.statusOf(s);
    if (now === to && action !== "reboot") return ok(null);
    s.status = "changing";
    s.pending = { at: this.now() + this.actionSeconds * 1000, to };
    s.json = null;
    return ok(null);
  }

  /** DELETE /v1/servers/<uuid>. */
  deleteServer(uuid: string): Result<null> {
    const s = this.getServer(uuid);
    if (!s) return NOT_FOUND;
    if (this.faults.rejectDeleteWhileChanging && this.statusOf(s) === "changing") {
      return fail(400, { detail: "The server is currently changing its state; try again later." });
    }
    this.remove(s);
    return ok(null);
  }

  /** Remove a server behind the API's back (control API "vanish"). */
  vanish(uuid: string): boolean {
    const s = this.getServer(uuid);
    if (!s) return false;
    this.remove(s);
    return true;
  }

  private remove(s: ServerRecord): void {
    this.servers.delete(s.uuid);
    this.ledger.account(s.flavor, -1);
    for (const g of s.serverGroups) this.serverGroups.get(g)?.servers.delete(s.uuid);
  }

  // ---- server groups

  createServerGroup(body: unknown): Result<ServerGroupRecord> {
    const parsed = parseCreateServerGroup(body, this.catalog, this.defaultZone);
    if (!parsed.ok) return parsed;
    const { name, zone, tags } = parsed.value;
    const g: ServerGroupRecord = { uuid: crypto.randomUUID(), name, type: "anti-affinity", zone, tags, servers: new Set() };
    this.serverGroups.set(g.uuid, g);
    return ok(g);
  }

  deleteServerGroup(uuid: string): Result<null> {
    const g = this.serverGroups.get(uuid.toLowerCase());
    if (!g) return NOT_FOUND;
    if (g.servers.size > 0) return fail(400, { detail: "The server group still has servers." });
    this.serverGroups.delete(g.uuid);
    return ok(null);
  }

  // ---- seeding (control API / --seed)

  /** Insert servers directly: no validation beyond catalog lookups, no quota, no latency. Throws Error on an
   *  unknown flavor/image/zone/server group. Returns the new UUIDs. */
  seedServers(input: SeedServer | SeedServer[]): string[] {
    const list = Array.isArray(input) ? input : [input];
    // Check everything first so a bad entry inserts nothing.
    for (const s of list) {
      if (typeof s !== "object" || s === null) throw new Error("each seed server must be an object");
      const f = s.flavor ?? "flex-4-1";
      if (!this.flavors.has(f)) throw new Error(`unknown flavor ${f}`);
      const img = s.image ?? "debian-13";
      if (!this.catalog.resolveImage(img)) throw new Error(`unknown image ${img}`);
      const z = s.zone ?? this.defaultZone;
      if (!this.isZone(z)) throw new Error(`unknown zone ${z}`);
      for (const g of s.server_groups ?? []) if (!this.serverGroups.has(g)) throw new Error(`unknown server group ${g}`);
      if (s.tags !== undefined && tagsError(s.tags)) throw new Error("tags must be an object of strings");
      if (s.count !== undefined && !(Number.isInteger(s.count) && s.count >= 0 && s.count <= 100_000)) throw new Error("count must be 0..100000");
      if (s.uuid !== undefined && (!isUuid(s.uuid) || this.servers.has(s.uuid.toLowerCase()))) throw new Error(`bad or duplicate uuid ${s.uuid}`);
      if (s.uuid !== undefined && (s.count ?? 1) !== 1) throw new Error("uuid cannot be combined with count");
    }
    const out: string[] = [];
    for (const s of list) {
      const count = s.count ?? 1;
      const f = this.flavors.get(s.flavor ?? "flex-4-1")!;
      const img = this.catalog.resolveImage(s.image ?? "debian-13")!;
      const zone = s.zone ?? this.defaultZone;
      const status: ServerStatus = s.status ?? "running";
      for (let i = 1; i <= count; i++) {
        const sub = (t: string) => t.replaceAll("{i}", String(i));
        const uuid = s.uuid?.toLowerCase() ?? crypto.randomUUID();
        const name = sub(s.name ?? (count > 1 ? "seed-{i}" : `seed-${uuid.slice(0, 8)}`));
        const tags: Record<string, string> = {};
        for (const [k, v] of Object.entries(s.tags ?? {})) tags[k] = sub(v);
        const rec: ServerRecord = {
          uuid,
          name,
          flavor: f,
          image: img.stub,
          zone,
          volumes: [{ uuid: crypto.randomUUID(), name: "root", type: "ssd", size_gb: Math.max(10, s.volume_size_gb ?? 10) }],
          interfaces: [this.addresses.publicInterface(name, zone, true)],
          sshKeys: [],
          sshHostKeys: [],
          sshFingerprints: [],
          serverGroups: [...(s.server_groups ?? [])],
          tags,
          createdAt: s.created_at ?? this.createdAtNow(),
          userData: s.user_data ?? null,
          status,
          // A seeded "changing" server boots like a new one (per bootOutcome); force a status to pin it.
          pending: status === "changing" && this.faults.bootOutcome !== "changing" ? { at: this.now() + this.bootSeconds * 1000, to: this.faults.bootOutcome } : null,
          booted: false,
          json: null,
        };
        if (status !== "changing") this.markBooted(rec);
        this.insert(rec);
        out.push(uuid);
      }
    }
    return out;
  }

  /** Apply a --seed file / SeedData: catalog additions (by slug/uuid, replacing), quota, servers. */
  applySeed(d: SeedData): string[] {
    if (typeof d !== "object" || d === null) throw new Error("seed data must be a JSON object");
    this.catalog.addSeed(d, this.createdAtNow());
    if (d.quota) this.setQuota(d.quota);
    return d.servers ? this.seedServers(d.servers) : [];
  }
}
