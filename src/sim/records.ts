// What the simulated account stores about servers and server groups, what seeding accepts, and the
// result type every state change returns (a value, or an error status with a body in the API's shape).

import type { Flavor, ServerStatus } from "../types.ts";
import type { CatalogSeed, ImageStub } from "./catalog.ts";

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
  image: ImageStub;
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

export interface SeedData extends CatalogSeed {
  servers?: SeedServer[];
  quota?: Partial<Quota>;
}

export interface TagFilter {
  key: string;
  /** undefined = "has key". */
  value?: string;
}

export type Fail = { ok: false; status: number; body: Record<string, string> };
export type Result<T> = { ok: true; value: T } | Fail;

export const fail = (status: number, body: Record<string, string>): Fail => ({ ok: false, status, body });
export const ok = <T>(value: T): Result<T> => ({ ok: true, value });
export const NOT_FOUND: Fail = fail(404, { detail: "Not found." });
