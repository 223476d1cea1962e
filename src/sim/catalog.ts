// The simulated account's catalog: regions and zones, flavors, public and custom images, networks and
// their subnets. What a create request may refer to; never changed by the cloud API, only by seeding.

import type { Flavor } from "../types.ts";


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

/** How a server shows its image. */
export interface ImageStub {
  slug: string;
  name: string;
  operating_system: string;
  default_username: string;
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

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (s: string): boolean => UUID_RE.test(s);

/** Catalog additions of a --seed file; entries replace the built-in ones with the same slug or uuid. */
export interface CatalogSeed {
  flavors?: Flavor[];
  images?: PublicImage[];
  customImages?: CustomImage[];
  networks?: Network[];
}

export class Catalog {
  readonly flavors = new Map<string, Flavor>();
  readonly images = new Map<string, PublicImage>();
  /** By uuid. */
  readonly customImages = new Map<string, CustomImage>();
  readonly networks = new Map<string, Network>();

  constructor() {
    this.reset();
  }

  /** Back to the built-in catalog. */
  reset(): void {
    this.flavors.clear();
    this.images.clear();
    this.customImages.clear();
    this.networks.clear();
    for (const f of DEFAULT_FLAVORS) this.flavors.set(f.slug, structuredClone(f));
    for (const i of DEFAULT_IMAGES) this.images.set(i.slug, structuredClone(i));
    for (const c of DEFAULT_CUSTOM_IMAGES) this.customImages.set(c.uuid, structuredClone(c));
    for (const n of defaultNetworks()) this.networks.set(n.uuid, n);
  }

  /** Resolve an image reference: public slug, "custom:<slug>" or a custom image UUID. */
  resolveImage(ref: string): { stub: ImageStub; zones: string[] } | null {
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

  findSubnet(uuid: string): { network: Network; subnet: Subnet } | null {
    for (const n of this.networks.values()) for (const s of n.subnets) if (s.uuid === uuid) return { network: n, subnet: s };
    return null;
  }

  /** Add or replace seeded entries (missing fields get the built-in defaults). Throws on a flavor without
   *  slug, vcpu_count or memory_gb. */
  addSeed(d: CatalogSeed, createdAt: string): void {
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
        created_at: c.created_at ?? createdAt,
      });
    }
    for (const n of d.networks ?? []) {
      this.networks.set(n.uuid, { ...n, mtu: n.mtu ?? 9000, tags: n.tags ?? {}, created_at: n.created_at ?? createdAt, subnets: n.subnets ?? [] });
    }
  }
}
