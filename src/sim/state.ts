// The simulated cloudscale.ch account: catalog (flavors, images, custom images, regions/zones), servers,
// server groups, networks/subnets, quota. No HTTP here; server.ts maps these results onto the wire.
//
// Status is computed lazily from the clock: a server carries its base status plus an optional pending
// transition ("becomes running at t"), settled when it is read. 5,000 booting servers cost no timers.
//
// Error bodies follow the real API's shape (cloudscale-api.md): 400 field errors are {"<field>": "<msg>"}
// with plain-string values; state errors are {"detail": "<msg>"}. Field messages reuse Django REST
// framework's default wording where the real API is known to do so ("This field may not be blank.",
// "Not found."); where the real text is unknown we wrote our own.

import { SERVER_GROUP_CAPACITY, type Flavor, type ServerStatus } from "../types.ts";
import { Faults } from "./faults.ts";

// ---------------------------------------------------------------------------------------------------------
// Catalog

export const ZONES = ["rma1", "lpg1"] as const;
export const REGIONS: { slug: string; zones: { slug: string }[] }[] = [
  { slug: "rma", zones: [{ slug: "rma1" }] },
  { slug: "lpg", zones: [{ slug: "lpg1" }] },
];

function flavor(family: "flex" | "plus", mem: number, vcpu: number): Flavor {
  const cap = family === "flex" ? "Flex" : "Plus";
  return {
    slug: `${family}-${mem}-${vcpu}`,
    name: `${cap}-${mem}-${vcpu}`,
    vcpu_count: vcpu,
    memory_gb: mem,
    gpu: null,
    zones: [{ slug: "rma1" }, { slug: "lpg1" }],
  };
}

/** The built-in flavor table (slug = <family>-<memory GB>-<vCPUs>). */
export const DEFAULT_FLAVORS: Flavor[] = [
  flavor("flex", 4, 1),
  flavor("flex", 4, 2),
  flavor("flex", 8, 2),
  flavor("flex", 8, 4),
  flavor("flex", 16, 4),
  flavor("flex", 16, 8),
  flavor("flex", 32, 8),
  flavor("flex", 32, 16),
  flavor("plus", 8, 2),
  flavor("plus", 16, 4),
  flavor("plus", 32, 8),
  flavor("plus", 64, 16),
  flavor("plus", 128, 32),
  // GPU flavors: `gpu` is {name, count, vram_per_gpu_gb, total_vram_gb} (go-sdk flavors.go). Only
  // gpu2-128-16-1-200 is a verified slug (16 vCPUs, 128 GiB, one 96 GB RTX PRO 6000 Max-Q); the
  // two- and four-GPU flavors below are made up on its pattern, so tests can see GPU counts above
  // one. Zones differ on purpose: a flavor may be offered in one zone only.
  gpuFlavor(128, 16, 1, 200, ["rma1"]),
  gpuFlavor(256, 32, 2, 400, ["rma1", "lpg1"]),
  gpuFlavor(512, 64, 4, 800, ["lpg1"]),
];

function gpuFlavor(mem: number, vcpu: number, gpus: number, disk: number, zones: string[]): Flavor {
  const slug = `gpu2-${mem}-${vcpu}-${gpus}-${disk}`;
  return {
    slug,
    name: slug.toUpperCase(),
    vcpu_count: vcpu,
    memory_gb: mem,
    gpu: { name: "NVIDIA RTX PRO 6000 Max-Q", count: gpus, vram_per_gpu_gb: 96, total_vram_gb: 96 * gpus },
    zones: zones.map((slug) => ({ slug })),
  };
}

export interface PublicImage {
  slug: string;
  name: string;
  operating_system: string;
  default_username: string;
  zones: { slug: string }[];
}

export const DEFAULT_IMAGES: PublicImage[] = [
  {
    slug: "debian-13",
    name: "Debian 13",
    operating_system: "Debian",
    default_username: "debian",
    zones: [{ slug: "rma1" }, { slug: "lpg1" }],
  },
  {
    slug: "ubuntu-24.04",
    name: "Ubuntu 24.04",
    operating_system: "Ubuntu",
    default_username: "ubuntu",
    zones: [{ slug: "rma1" }, { slug: "lpg1" }],
  },
];

export interface CustomImage {
  uuid: string;
  name: string;
  slug: string;
  size_gb: number;
  checksums: Record<string, string>;
  user_data_handling: "pass-through" | "extend-cloud-config";
  firmware_type: "bios" | "uefi";
  zones: { slug: string }[];
  tags: Record<string, string>;
  created_at: string;
}

export const TALOS_IMAGE_UUID = "7a7a1050-1132-4d2b-9a11-5a1051300132";

export const DEFAULT_CUSTOM_IMAGES: CustomImage[] = [
  {
    uuid: TALOS_IMAGE_UUID,
    name: "Talos 1.13.2",
    slug: "talos-1.13.2",
    size_gb: 1,
    checksums: { sha256: "5d41402abc4b2a76b9719d911017c5925d41402abc4b2a76b9719d911017c592" },
    user_data_handling: "pass-through",
    firmware_type: "uefi",
    zones: [{ slug: "rma1" }, { slug: "lpg1" }],
    tags: {},
    created_at: "2026-11-01T09:00:00.000000Z",
  },
];

export interface Network {
  uuid: string;
  name: string;
  mtu: number;
  zone: string;
  tags: Record<string, string>;
  created_at: string;
  subnets: Subnet[];
}

export interface Subnet {
  uuid: string;
  cidr: string;
  gateway_address: string | null;
  dns_servers: string[];
}

export const NETWORK_RMA1_UUID = "3c8f4e2a-6b1d-4f7e-9a2c-0d5e8b7f1a01";
export const NETWORK_LPG1_UUID = "3c8f4e2a-6b1d-4f7e-9a2c-0d5e8b7f1a02";

function defaultNetworks(): Network[] {
  return [
    {
      uuid: NETWORK_RMA1_UUID,
      name: "private-rma1",
      mtu: 9000,
      zone: "rma1",
      tags: {},
      created_at: "2026-11-01T09:00:00.000000Z",
      subnets: [{ uuid: "3c8f4e2a-6b1d-4f7e-9a2c-0d5e8b7f1b01", cidr: "10.11.0.0/16", gateway_address: null, dns_servers: [] }],
    },
    {
      uuid: NETWORK_LPG1_UUID,
      name: "private-lpg1",
      mtu: 9000,
      zone: "lpg1",
      tags: {},
      created_at: "2026-11-01T09:00:00.000000Z",
      subnets: [{ uuid: "3c8f4e2a-6b1d-4f7e-9a2c-0d5e8b7f1b02", cidr: "10.12.0.0/16", gateway_address: null, dns_servers: [] }],
    },
  ];
}

// ---------------------------------------------------------------------------------------------------------
// Clock

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

/** A clock that can be pushed forward (POST /_sim/clock) on top of a base clock (default: Date.now). */
export class SimClock implements Clock {
  offsetMs = 0;
  constructor(private readonly base: Clock = { now: () => Date.now() }) {}
  now(): number {
    return this.base.now() + this.offsetMs;
  }
  advance(ms: number): void {
    this.offsetMs += ms;
  }
}

/** RFC 3339 with microseconds, UTC: 2019-05-27T16:45:32.241824Z. */
export function rfc3339Micro(ms: number, micros = 0): string {
  const iso = new Date(ms).toISOString(); // ...SS.mmmZ
  return `${iso.slice(0, -1)}${String(Math.floor(micros) % 1000).padStart(3, "0")}Z`;
}

// ---------------------------------------------------------------------------------------------------------
// Records

export interface InterfaceAddress {
  version: 4 | 6;
  address: string;
  prefix_length: number;
  gateway: string | null;
  reverse_ptr: string;
  subnet: { href: string; uuid: string; cidr: string };
}

export interface ServerInterface {
  type: "public" | "private";
  network?: { href: string; uuid: string; name: string };
  addresses: InterfaceAddress[];
}

export interface ServerRecord {
  uuid: string;
  name: string;
  flavor: Flavor;
  image: { slug: string; name: string; operating_system: string; default_username: string };
  zone: string;
  volumes: { uuid: string; name: string; type: "ssd" | "bulk"; size_gb: number }[];
  interfaces: ServerInterface[];
  sshKeys: string[];
  sshHostKeys: string[];
  sshFingerprints: string[];
  serverGroups: string[];
  tags: Record<string, string>;
  createdAt: string;
  userData: string | null;
  /** Base status; the effective status also depends on `pending`. */
  status: ServerStatus;
  /** A transition that happens at `at` (clock ms). */
  pending: { at: number; to: ServerStatus } | null;
  /** Whether the server has ever finished booting (host keys are only known after that). */
  booted: boolean;
  /** Cached API JSON; cleared on every change. */
  json: string | null;
}

export interface ServerGroupRecord {
  uuid: string;
  name: string;
  type: "anti-affinity";
  zone: string;
  tags: Record<string, string>;
  servers: Set<string>;
}

export interface Quota {
  /** Max number of servers in the account (all servers, ours or not); null = unlimited. */
  servers: number | null;
  vcpus: number | null;
  memoryGb: number | null;
}

/** Input for seeding servers directly (control API, --seed file); no validation beyond catalog lookups. */
export interface SeedServer {
  /** Create this many copies; "{i}" in name and tag values is replaced by 1..count. */
  count?: number;
  uuid?: string;
  name?: string;
  flavor?: string;
  image?: string;
  zone?: string;
  status?: ServerStatus;
  tags?: Record<string, string>;
  user_data?: string | null;
  volume_size_gb?: number;
  server_groups?: string[];
  created_at?: string;
}

export interface SeedData {
  flavors?: Flavor[];
  images?: PublicImage[];
  customImages?: CustomImage[];
  networks?: Network[];
  servers?: SeedServer[];
  quota?: Partial<Quota>;
}

export type Fail = { ok: false; status: number; body: Record<string, string> };
export type Result<T> = { ok: true; value: T } | Fail;

const fail = (status: number, body: Record<string, string>): Fail => ({ ok: false, status, body });
export const NOT_FOUND: Fail = fail(404, { detail: "Not found." });

export interface TagFilter {
  key: string;
  /** undefined = "has key". */
  value?: string;
}

export interface StateOptions {
  clock?: Clock;
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

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const LABEL_RE = /^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$/;
export const isUuid = (s: string): boolean => UUID_RE.test(s);

const PUBLIC_V4_BLOCKS = ["192.0.2", "198.51.100", "203.0.113"]; // RFC 5737 documentation ranges

function typeName(v: unknown): string {
  if (v === null) return "NoneType";
  if (Array.isArray(v)) return "list";
  if (typeof v === "string") return "str";
  if (typeof v === "number") return Number.isInteger(v) ? "int" : "float";
  if (typeof v === "boolean") return "bool";
  return "dict";
}

function randomB64(bytes: number): string {
  const b = new Uint8Array(bytes);
  crypto.getRandomValues(b);
  return Buffer.from(b).toString("base64");
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

function tagsError(v: unknown): string | null {
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    return `Expected a dictionary of items but got type "${typeName(v)}".`;
  }
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== "string") return `Tag values must be strings (tag "${k}").`;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------------------
// State

export class SimState {
  readonly clock: SimClock;
  readonly faults: Faults;
  bootSeconds: number;
  actionSeconds: number;
  defaultZone: string;
  apiUrl: string;
  quota: Quota;

  flavors = new Map<string, Flavor>();
  images = new Map<string, PublicImage>();
  customImages = new Map<string, CustomImage>(); // by uuid
  networks = new Map<string, Network>();
  servers = new Map<string, ServerRecord>();
  serverGroups = new Map<string, ServerGroupRecord>();

  private usage = { servers: 0, vcpus: 0, memoryGb: 0 };
  private addrSeq = 0;
  private privSeq = new Map<string, number>();
  private subnetUuids = new Map<string, string>();

  constructor(opts: StateOptions = {}) {
    this.clock = opts.clock instanceof SimClock ? opts.clock : new SimClock(opts.clock);
    this.faults = opts.faults ?? new Faults();
    this.bootSeconds = opts.bootSeconds ?? 5;
    this.actionSeconds = opts.actionSeconds ?? 2;
    this.defaultZone = opts.defaultZone ?? "rma1";
    this.apiUrl = opts.apiUrl ?? "http://127.0.0.1/v1";
    this.quota = { servers: null, vcpus: null, memoryGb: null, ...opts.quota };
    this.loadCatalog();
  }

  private loadCatalog(): void {
    for (const f of DEFAULT_FLAVORS) this.flavors.set(f.slug, structuredClone(f));
    for (const i of DEFAULT_IMAGES) this.images.set(i.slug, structuredClone(i));
    for (const c of DEFAULT_CUSTOM_IMAGES) this.customImages.set(c.uuid, structuredClone(c));
    for (const n of defaultNetworks()) this.networks.set(n.uuid, n);
  }

  /** Drop all servers and server groups, restore the built-in catalog (quota and config are kept). */
  reset(): void {
    this.servers.clear();
    this.serverGroups.clear();
    this.flavors.clear();
    this.images.clear();
    this.customImages.clear();
    this.networks.clear();
    this.usage = { servers: 0, vcpus: 0, memoryGb: 0 };
    this.addrSeq = 0;
    this.privSeq.clear();
    this.loadCatalog();
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

  // ---- catalog lookups

  /** Resolve an image reference: public slug, "custom:<slug>" or a custom image UUID. */
  resolveImage(ref: string): { stub: ServerRecord["image"]; zones: string[] } | null {
    const pub = this.images.get(ref);
    if (pub) {
      const { slug, name, operating_system, default_username } = pub;
      return { stub: { slug, name, operating_system, default_username }, zones: pub.zones.map((z) => z.slug) };
    }
    let custom: CustomImage | undefined;
    if (ref.startsWith("custom:")) {
      const slug = ref.slice("custom:".length);
      for (const c of this.customImages.values()) if (c.slug === slug) custom = c;
    } else if (isUuid(ref)) {
      custom = this.customImages.get(ref.toLowerCase());
    }
    if (!custom) return null;
    return {
      // Shown back as custom:<slug> (go-sdk custom image integration test). OS/username are our choice.
      stub: { slug: `custom:${custom.slug}`, name: custom.name, operating_system: custom.name, default_username: "" },
      zones: custom.zones.map((z) => z.slug),
    };
  }

  isZone(z: string): boolean {
    return REGIONS.some((r) => r.zones.some((zz) => zz.slug === z));
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

  // ---- views

  private href(kind: string, uuid: string): string {
    return `${this.apiUrl}/${kind}/${uuid}`;
  }

  /** The API representation (a plain object shaped like the real Server). */
  serverView(s: ServerRecord): Record<string, unknown> {
    const status = this.statusOf(s);
    return {
      href: this.href("servers", s.uuid),
      uuid: s.uuid,
      name: s.name,
      status,
      flavor: { slug: s.flavor.slug, name: s.flavor.name, vcpu_count: s.flavor.vcpu_count, memory_gb: s.flavor.memory_gb },
      image: { ...s.image },
      zone: { slug: s.zone },
      volumes: s.volumes.map((v) => ({ href: this.href("volumes", v.uuid), uuid: v.uuid, name: v.name, type: v.type, size_gb: v.size_gb })),
      interfaces: s.interfaces,
      ssh_fingerprints: s.sshFingerprints,
      ssh_host_keys: s.sshHostKeys,
      anti_affinity_with: [],
      server_groups: s.serverGroups.map((g) => ({ href: this.href("server-groups", g), uuid: g, name: this.serverGroups.get(g)?.name ?? "" })),
      tags: s.tags,
      created_at: s.createdAt,
    };
  }

  /** The API JSON of one server, cached until the server changes. */
  serverJson(s: ServerRecord): string {
    this.statusOf(s);
    if (s.json === null) s.json = JSON.stringify(this.serverView(s));
    return s.json;
  }

  /** The control-API view: API object plus what the API does not show. */
  serverFullView(s: ServerRecord): Record<string, unknown> {
    return {
      ...this.serverView(s),
      user_data: s.userData,
      ssh_keys: s.sshKeys,
      pending: s.pending ? { at: new Date(s.pending.at).toISOString(), to: s.pending.to } : null,
    };
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

  flavorList(): Flavor[] {
    return [...this.flavors.values()];
  }

  imageList(): PublicImage[] {
    return [...this.images.values()];
  }

  customImageView(c: CustomImage): Record<string, unknown> {
    return { href: this.href("custom-images", c.uuid), ...c };
  }

  serverGroupView(g: ServerGroupRecord): Record<string, unknown> {
    return {
      href: this.href("server-groups", g.uuid),
      uuid: g.uuid,
      name: g.name,
      type: g.type,
      zone: { slug: g.zone },
      servers: [...g.servers].map((u) => ({ href: this.href("servers", u), uuid: u })),
      tags: g.tags,
    };
  }

  networkView(n: Network): Record<string, unknown> {
    return {
      href: this.href("networks", n.uuid),
      uuid: n.uuid,
      name: n.name,
      mtu: n.mtu,
      zone: { slug: n.zone },
      subnets: n.subnets.map((s) => ({ href: this.href("subnets", s.uuid), uuid: s.uuid, cidr: s.cidr })),
      tags: n.tags,
      created_at: n.created_at,
    };
  }

  subnetView(n: Network, s: Subnet): Record<string, unknown> {
    return {
      href: this.href("subnets", s.uuid),
      uuid: s.uuid,
      cidr: s.cidr,
      network: { href: this.href("networks", n.uuid), uuid: n.uuid, name: n.name },
      gateway_address: s.gateway_address,
      dns_servers: s.dns_servers,
      tags: {},
    };
  }

  findSubnet(uuid: string): { network: Network; subnet: Subnet } | null {
    for (const n of this.networks.values()) for (const s of n.subnets) if (s.uuid === uuid) return { network: n, subnet: s };
    return null;
  }

  // ---- quota

  getUsage(): { servers: number; vcpus: number; memoryGb: number } {
    return { ...this.usage };
  }

  setQuota(q: Partial<Quota>): void {
    this.quota = { ...this.quota, ...q };
  }

  /** The real quota answer is unknown (cloudscale-api.md: *verify*). We answer 400 {"detail": "Quota
   *  exceeded: ..."} — a state error in the API's usual shape — and keep the words "Quota exceeded" so a
   *  client can classify it. */
  private quotaCheck(addServers: number, addVcpus: number, addMem: number): Fail | null {
    const q = this.quota;
    const u = this.usage;
    if (q.servers !== null && u.servers + addServers > q.servers) {
      return fail(400, { detail: `Quota exceeded: your account is limited to ${q.servers} servers (currently ${u.servers}).` });
    }
    if (q.vcpus !== null && u.vcpus + addVcpus > q.vcpus) {
      return fail(400, { detail: `Quota exceeded: your account is limited to ${q.vcpus} vCPUs (currently ${u.vcpus} in use, ${addVcpus} requested).` });
    }
    if (q.memoryGb !== null && u.memoryGb + addMem > q.memoryGb) {
      return fail(400, { detail: `Quota exceeded: your account is limited to ${q.memoryGb} GB of memory (currently ${u.memoryGb} GB in use, ${addMem} GB requested).` });
    }
    return null;
  }

  private account(f: Flavor, sign: 1 | -1): void {
    this.usage.servers += sign;
    this.usage.vcpus += sign * f.vcpu_count;
    this.usage.memoryGb += sign * f.memory_gb;
  }

  // ---- addresses

  private subnetUuid(cidr: string): string {
    let u = this.subnetUuids.get(cidr);
    if (!u) {
      u = crypto.randomUUID();
      this.subnetUuids.set(cidr, u);
    }
    return u;
  }

  private publicInterface(name: string, zone: string, ipv6: boolean): ServerInterface {
    const n = this.addrSeq++;
    let v4: string;
    let net24: string;
    if (n < 253 * PUBLIC_V4_BLOCKS.length) {
      net24 = PUBLIC_V4_BLOCKS[Math.floor(n / 253)]!;
      v4 = `${net24}.${(n % 253) + 2}`;
    } else {
      // Past the documentation ranges: 198.18.0.0/15 (RFC 2544 benchmarking), 512 × /24.
      const m = (n - 253 * PUBLIC_V4_BLOCKS.length) % (512 * 253);
      const third = Math.floor(m / 253);
      net24 = `198.${18 + Math.floor(third / 256)}.${third % 256}`;
      v4 = `${net24}.${(m % 253) + 2}`;
    }
    const cidr4 = `${net24}.0/24`;
    const zoneIdx = Math.max(0, ZONES.indexOf(zone as (typeof ZONES)[number])) + 1;
    const cidr6 = `2001:db8:${zoneIdx}::/64`;
    const addresses: InterfaceAddress[] = [
      {
        version: 4,
        address: v4,
        prefix_length: 24,
        gateway: `${net24}.1`,
        reverse_ptr: name,
        subnet: { href: this.href("subnets", this.subnetUuid(cidr4)), uuid: this.subnetUuid(cidr4), cidr: cidr4 },
      },
    ];
    if (ipv6) {
      addresses.push({
        version: 6,
        address: `2001:db8:${zoneIdx}::${(n + 2).toString(16)}`,
        prefix_length: 64,
        gateway: "fe80::1",
        reverse_ptr: name,
        subnet: { href: this.href("subnets", this.subnetUuid(cidr6)), uuid: this.subnetUuid(cidr6), cidr: cidr6 },
      });
    }
    // Whether the real API shows a `network` on public interfaces is not confirmed; we leave it out.
    return { type: "public", addresses };
  }

  private privateInterface(net: Network, addrs?: { subnet?: string; address?: string }[]): ServerInterface {
    const addresses: InterfaceAddress[] = [];
    const wanted = addrs ?? [{}];
    for (const a of wanted) {
      const sub = (a.subnet && net.subnets.find((s) => s.uuid === a.subnet)) || net.subnets[0];
      if (!sub) continue;
      let address = a.address;
      const [base, lenStr] = sub.cidr.split("/");
      if (!address) {
        const k = (this.privSeq.get(sub.uuid) ?? 0) + 1;
        this.privSeq.set(sub.uuid, k);
        const o = base!.split(".").map(Number);
        const host = (o[2]! << 8) + o[3]! + 10 + k; // skip a few low addresses
        address = `${o[0]}.${o[1]}.${(host >> 8) & 255}.${host & 255}`;
      }
      addresses.push({
        version: 4,
        address,
        prefix_length: Number(lenStr),
        gateway: sub.gateway_address,
        reverse_ptr: "",
        subnet: { href: this.href("subnets", sub.uuid), uuid: sub.uuid, cidr: sub.cidr },
      });
    }
    return { type: "private", network: { href: this.href("networks", net.uuid), uuid: net.uuid, name: net.name }, addresses };
  }

  // ---- create

  /** POST /v1/servers. Field errors first (all at once), then quota, then capacity. */
  createServer(body: unknown): Result<ServerRecord> {
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      return fail(400, { detail: `Invalid data. Expected a dictionary, but got ${typeName(body)}.` });
    }
    const b = body as Record<string, unknown>;
    const errs: Record<string, string> = {};
    const REQUIRED = "This field is required.";

    // name
    const NULL = "This field may not be null.";
    if (b.name === undefined) errs.name = REQUIRED;
    else if (b.name === null) errs.name = NULL;
    else if (typeof b.name !== "string") errs.name = "Not a valid string.";
    else {
      const e = hostnameError(b.name);
      if (e) errs.name = e;
    }

    // zone
    let zone = this.defaultZone;
    if (b.zone !== undefined && b.zone !== null) {
      if (typeof b.zone !== "string") errs.zone = "Not a valid string.";
      else if (!this.isZone(b.zone)) errs.zone = `Object with slug=${b.zone} does not exist.`;
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
      flv = this.flavors.get(b.flavor);
      if (!flv) errs.flavor = `Object with slug=${b.flavor} does not exist.`;
      else if (zoneOk && !flv.zones.some((z) => z.slug === zone)) {
        // Real answer unknown (cloudscale-api.md *verify*); reported as a field error on "flavor".
        errs.flavor = `Flavor ${flv.slug} is not available in zone ${zone}.`;
      }
    }

    // image
    let image: ReturnType<SimState["resolveImage"]> = null;
    if (b.image === undefined) errs.image = REQUIRED;
    else if (b.image === null) errs.image = NULL;
    else if (typeof b.image !== "string") errs.image = "Not a valid string.";
    else if (b.image.trim() === "") errs.image = "This field may not be blank.";
    else {
      image = this.resolveImage(b.image);
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
    const extraVolumes: { size_gb: number; type: "ssd" | "bulk" }[] = [];
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
    let ifaceReq: { network: string; addresses?: { subnet?: string; address?: string }[] }[] | null = null;
    if (b.interfaces !== undefined && b.interfaces !== null) {
      const r = this.checkInterfaces(b.interfaces, zoneOk ? zone : null);
      if (typeof r === "string") errs.interfaces = r;
      else ifaceReq = r;
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
          const grp = this.serverGroups.get(g.toLowerCase());
          if (!grp) {
            errs.server_groups = `Invalid pk "${g}" - object does not exist.`;
            break;
          }
          if (zoneOk && grp.zone !== zone) {
            errs.server_groups = `Server group ${g} is in zone ${grp.zone}, not in zone ${zone}.`;
            break;
          }
          // An anti-affinity server group holds at most 4 servers; the API refuses a 5th
          // (cloudscale-api.md). The message is ours: the real one is not known.
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

    // tags
    let tags: Record<string, string> = {};
    if (b.tags !== undefined && b.tags !== null) {
      const e = tagsError(b.tags);
      if (e) errs.tags = e;
      else tags = { ...(b.tags as Record<string, string>) };
    }

    if (Object.keys(errs).length > 0) return fail(400, errs);

    const f = flv!;
    const q = this.quotaCheck(1, f.vcpu_count, f.memory_gb);
    if (q) return q;
    if (this.faults.isOutOfCapacity(f.slug, zone)) {
      // Real answer unknown; a state error that carries the word "capacity".
      return fail(400, { detail: `Insufficient capacity for flavor ${f.slug} in zone ${zone}.` });
    }

    const name = b.name as string;
    const uuid = crypto.randomUUID();
    const volumes: ServerRecord["volumes"] = [{ uuid: crypto.randomUUID(), name: "root", type: "ssd", size_gb: rootSize }];
    if (bulkSize > 0) volumes.push({ uuid: crypto.randomUUID(), name: `${name}-bulk`, type: "bulk", size_gb: bulkSize });
    extraVolumes.forEach((v, i) => volumes.push({ uuid: crypto.randomUUID(), name: `${name}-volume-${i + 1}`, ...v }));

    let interfaces: ServerInterface[];
    if (ifaceReq) {
      interfaces = ifaceReq.map((i) =>
        i.network === "public" ? this.publicInterface(name, zone, useIpv6) : this.privateInterface(this.networks.get(i.network)!, i.addresses),
      );
    } else {
      interfaces = [];
      if (usePublic) interfaces.push(this.publicInterface(name, zone, useIpv6));
      if (usePrivate) {
        const net = [...this.networks.values()].find((n) => n.zone === zone);
        if (net) interfaces.push(this.privateInterface(net));
      }
    }

    const outcome = this.faults.bootOutcome;
    const rec: ServerRecord = {
      uuid,
      name,
      flavor: f,
      image: image!.stub,
      zone,
      volumes,
      interfaces,
      sshKeys,
      sshHostKeys: [],
      sshFingerprints: [],
      serverGroups: groups,
      tags,
      createdAt: this.createdAtNow(),
      userData,
      status: "changing",
      pending: outcome === "changing" ? null : { at: this.now() + this.bootSeconds * 1000, to: outcome },
      booted: false,
      json: null,
    };
    this.insert(rec);
    return { ok: true, value: rec };
  }

  private insert(rec: ServerRecord): void {
    this.servers.set(rec.uuid, rec);
    this.account(rec.flavor, 1);
    for (const g of rec.serverGroups) this.serverGroups.get(g)?.servers.add(rec.uuid);
  }

  /** Validates an interfaces list; returns the normalized list or an error message. */
  private checkInterfaces(v: unknown, zone: string | null): { network: string; addresses?: { subnet?: string; address?: string }[] }[] | string {
    if (!Array.isArray(v)) return `Expected a list of items but got type "${typeName(v)}".`;
    const out: { network: string; addresses?: { subnet?: string; address?: string }[] }[] = [];
    for (const item of v as unknown[]) {
      const i = item as { network?: unknown; addresses?: unknown };
      if (typeof i !== "object" || i === null || typeof i.network !== "string") return 'Each interface needs a "network": "public" or a network UUID.';
      if (i.network !== "public") {
        const net = this.networks.get(i.network.toLowerCase());
        if (!net) return `Invalid pk "${i.network}" - object does not exist.`;
        if (zone && net.zone !== zone) return `Network ${net.uuid} is in zone ${net.zone}, not in zone ${zone}.`;
      }
      let addresses: { subnet?: string; address?: string }[] | undefined;
      if (i.addresses !== undefined) {
        if (!Array.isArray(i.addresses)) return `Expected a list of items but got type "${typeName(i.addresses)}".`;
        addresses = [];
        for (const a of i.addresses as unknown[]) {
          const aa = a as { subnet?: unknown; address?: unknown };
          if (typeof aa !== "object" || aa === null) return "Each address must be an object.";
          if (aa.subnet !== undefined && (typeof aa.subnet !== "string" || !this.findSubnet(aa.subnet))) {
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

  // ---- update / actions / delete

  getServer(uuid: string): ServerRecord | undefined {
    return this.servers.get(uuid.toLowerCase());
  }

  /** PATCH /v1/servers/<uuid>: one of name, flavor, interfaces, tags per request. */
  patchServer(uuid: string, body: unknown): Result<null> {
    const s = this.getServer(uuid);
    if (!s) return NOT_FOUND;
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      return fail(400, { detail: `Invalid data. Expected a dictionary, but got ${typeName(body)}.` });
    }
    const b = body as Record<string, unknown>;
    const keys = ["name", "flavor", "interfaces", "tags"].filter((k) => b[k] !== undefined);
    if (keys.length > 1) return fail(400, { detail: "Only one attribute can be changed per request." });
    if (keys.length === 0) return { ok: true, value: null };
    const k = keys[0]!;
    if (k === "name") {
      if (typeof b.name !== "string") return fail(400, { name: "Not a valid string." });
      const e = hostnameError(b.name);
      if (e) return fail(400, { name: e });
      s.name = b.name;
    } else if (k === "tags") {
      const e = b.tags === null ? null : tagsError(b.tags);
      if (e) return fail(400, { tags: e });
      s.tags = { ...((b.tags ?? {}) as Record<string, string>) };
    } else if (k === "flavor") {
      if (typeof b.flavor !== "string") return fail(400, { flavor: "Not a valid string." });
      const f = this.flavors.get(b.flavor);
      if (!f) return fail(400, { flavor: `Object with slug=${b.flavor} does not exist.` });
      if (!f.zones.some((z) => z.slug === s.zone)) return fail(400, { flavor: `Flavor ${f.slug} is not available in zone ${s.zone}.` });
      if (this.statusOf(s) !== "stopped") return fail(400, { detail: "The server must be stopped to change its flavor." });
      const q = this.quotaCheck(0, f.vcpu_count - s.flavor.vcpu_count, f.memory_gb - s.flavor.memory_gb);
      if (q) return q;
      this.account(s.flavor, -1);
      s.flavor = f;
      this.account(f, 1);
      s.status = "changing";
      s.pending = { at: this.now() + this.actionSeconds * 1000, to: "stopped" };
    } else {
      const r = this.checkInterfaces(b.interfaces, s.zone);
      if (typeof r === "string") return fail(400, { interfaces: r });
      s.interfaces = r.map((i) =>
        i.network === "public" ? this.publicInterface(s.name, s.zone, true) : this.privateInterface(this.networks.get(i.network)!, i.addresses),
      );
    }
    s.json = null;
    return { ok: true, value: null };
  }

  /** POST /v1/servers/<uuid>/start|stop|reboot: `changing`, then settles after actionSeconds. */
  serverAction(uuid: string, action: "start" | "stop" | "reboot"): Result<null> {
    const s = this.getServer(uuid);
    if (!s) return NOT_FOUND;
    const to: ServerStatus = action === "stop" ? "stopped" : "running";
    const now = this.statusOf(s);
    if (now === to && action !== "reboot") return { ok: true, value: null };
    s.status = "changing";
    s.pending = { at: this.now() + this.actionSeconds * 1000, to };
    s.json = null;
    return { ok: true, value: null };
  }

  /** DELETE /v1/servers/<uuid>. */
  deleteServer(uuid: string): Result<null> {
    const s = this.getServer(uuid);
    if (!s) return NOT_FOUND;
    if (this.faults.rejectDeleteWhileChanging && this.statusOf(s) === "changing") {
      return fail(400, { detail: "The server is currently changing its state; try again later." });
    }
    this.remove(s);
    return { ok: true, value: null };
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
    this.account(s.flavor, -1);
    for (const g of s.serverGroups) this.serverGroups.get(g)?.servers.delete(s.uuid);
  }

  // ---- server groups

  createServerGroup(body: unknown): Result<ServerGroupRecord> {
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      return fail(400, { detail: `Invalid data. Expected a dictionary, but got ${typeName(body)}.` });
    }
    const b = body as Record<string, unknown>;
    const errs: Record<string, string> = {};
    if (b.name === undefined) errs.name = "This field is required.";
    else if (typeof b.name !== "string") errs.name = "Not a valid string.";
    else if (b.name.trim() === "") errs.name = "This field may not be blank.";
    const type = b.type ?? "anti-affinity";
    if (type !== "anti-affinity") errs.type = `"${String(type)}" is not a valid choice.`;
    let zone = this.defaultZone;
    if (b.zone !== undefined && b.zone !== null) {
      if (typeof b.zone !== "string" || !this.isZone(b.zone)) errs.zone = `Object with slug=${String(b.zone)} does not exist.`;
      else zone = b.zone;
    }
    let tags: Record<string, string> = {};
    if (b.tags !== undefined && b.tags !== null) {
      const e = tagsError(b.tags);
      if (e) errs.tags = e;
      else tags = { ...(b.tags as Record<string, string>) };
    }
    if (Object.keys(errs).length > 0) return fail(400, errs);
    const g: ServerGroupRecord = { uuid: crypto.randomUUID(), name: b.name as string, type: "anti-affinity", zone, tags, servers: new Set() };
    this.serverGroups.set(g.uuid, g);
    return { ok: true, value: g };
  }

  deleteServerGroup(uuid: string): Result<null> {
    const g = this.serverGroups.get(uuid.toLowerCase());
    if (!g) return NOT_FOUND;
    if (g.servers.size > 0) return fail(400, { detail: "The server group still has servers." });
    this.serverGroups.delete(g.uuid);
    return { ok: true, value: null };
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
      if (!this.resolveImage(img)) throw new Error(`unknown image ${img}`);
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
      const img = this.resolveImage(s.image ?? "debian-13")!;
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
          interfaces: [this.publicInterface(name, zone, true)],
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
    for (const f of d.flavors ?? []) {
      if (typeof f?.slug !== "string" || typeof f.vcpu_count !== "number" || typeof f.memory_gb !== "number") {
        throw new Error("a seed flavor needs slug, vcpu_count and memory_gb");
      }
      this.flavors.set(f.slug, {
        slug: f.slug,
        name: f.name ?? f.slug,
        vcpu_count: f.vcpu_count,
        memory_gb: f.memory_gb,
        gpu: f.gpu ?? null,
        zones: f.zones ?? ZONES.map((slug) => ({ slug })),
      });
    }
    for (const i of d.images ?? []) this.images.set(i.slug, { ...i, zones: i.zones ?? ZONES.map((slug) => ({ slug })) });
    for (const c of d.customImages ?? []) {
      this.customImages.set(c.uuid, {
        ...c,
        size_gb: c.size_gb ?? 1,
        checksums: c.checksums ?? {},
        user_data_handling: c.user_data_handling ?? "pass-through",
        firmware_type: c.firmware_type ?? "uefi",
        zones: c.zones ?? ZONES.map((slug) => ({ slug })),
        tags: c.tags ?? {},
        created_at: c.created_at ?? this.createdAtNow(),
      });
    }
    for (const n of d.networks ?? []) {
      this.networks.set(n.uuid, { ...n, mtu: n.mtu ?? 9000, tags: n.tags ?? {}, created_at: n.created_at ?? this.createdAtNow(), subnets: n.subnets ?? [] });
    }
    if (d.quota) this.setQuota(d.quota);
    return d.servers ? this.seedServers(d.servers) : [];
  }
}
