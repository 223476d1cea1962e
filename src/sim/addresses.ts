// Addresses for new servers' interfaces. Public IPv4 comes from the RFC 5737 documentation ranges (then
// RFC 2544's benchmarking range), IPv6 from 2001:db8::/32 with one /64 per zone; private addresses are
// taken in order from the network's subnet.

import { ZONES, type Network } from "./catalog.ts";
import type { InterfaceAddress, ServerInterface } from "./records.ts";

const PUBLIC_V4_BLOCKS = ["192.0.2", "198.51.100", "203.0.113"]; // RFC 5737 documentation ranges

export interface AddressRequest {
  subnet?: string;
  address?: string;
}

export class AddressPool {
  private addrSeq = 0;
  private privSeq = new Map<string, number>();
  private subnetUuids = new Map<string, string>();

  /** `href(kind, uuid)` builds the API link of an object. */
  constructor(private readonly href: (kind: string, uuid: string) => string) {}

  /** Start handing out addresses from the beginning again (subnet uuids are kept). */
  reset(): void {
    this.addrSeq = 0;
    this.privSeq.clear();
  }

  private subnetUuid(cidr: string): string {
    let u = this.subnetUuids.get(cidr);
    if (!u) {
      u = crypto.randomUUID();
      this.subnetUuids.set(cidr, u);
    }
    return u;
  }

  publicInterface(name: string, zone: string, ipv6: boolean): ServerInterface {
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

  privateInterface(net: Network, addrs?: AddressRequest[]): ServerInterface {
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
}
