// The account's quota and what its servers use of it. Every server counts (ours or not), by number,
// vCPUs and memory.

import type { Flavor } from "../types.ts";
import { fail, type Fail, type Quota } from "./records.ts";

export interface Usage {
  servers: number;
  vcpus: number;
  memoryGb: number;
}

export class QuotaLedger {
  quota: Quota;
  private usage: Usage = { servers: 0, vcpus: 0, memoryGb: 0 };

  constructor(quota: Partial<Quota> = {}) {
    this.quota = { servers: null, vcpus: null, memoryGb: null, ...quota };
  }

  getUsage(): Usage {
    return { ...this.usage };
  }

  set(q: Partial<Quota>): void {
    this.quota = { ...this.quota, ...q };
  }

  /** Forget all usage (the servers are gone); the quota itself is kept. */
  clearUsage(): void {
    this.usage = { servers: 0, vcpus: 0, memoryGb: 0 };
  }

  /** The real API's answer to an exceeded quota is not documented. We answer 400 {"detail": "Quota
   *  exceeded: ..."}, a state error in the API's usual shape, and keep the words "Quota exceeded" so a
   *  client can classify it. */
  check(addServers: number, addVcpus: number, addMem: number): Fail | null {
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

  /** A server of flavor `f` appears (+1) or goes (-1). */
  account(f: Flavor, sign: 1 | -1): void {
    this.usage.servers += sign;
    this.usage.vcpus += sign * f.vcpu_count;
    this.usage.memoryGb += sign * f.memory_gb;
  }
}
