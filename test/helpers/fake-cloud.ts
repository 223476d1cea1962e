// A cloudscale client for unit tests: the calls the provider makes, answered from
// an in-memory cloud. A test can hold every call of a kind until it answers it
// (so it decides which call ends first), or script how the next call of a kind
// ends: with an error, or with an error after it took effect (a lost response).
import { CloudscaleError } from "../../src/cloudscale";
import type { Clock } from "../../src/clock";
import { CLUSTER_TAG, GROUP_TAG, type CreateServerRequest, type Flavor, type Server, type ServerStatus } from "../../src/types";

export type CallKind = "list" | "create" | "get" | "delete" | "flavors";

export class FakeCall {
  done = false;
  /** For lists: the servers as they were when the call was made. */
  readonly snapshot: Server[] | undefined;
  constructor(
    readonly kind: CallKind,
    readonly arg: unknown,
    readonly startedAt: number,
    snapshot: Server[] | undefined,
    private readonly finish: (how: { value?: unknown; error?: Error; commit?: boolean }) => void,
  ) {
    this.snapshot = snapshot;
  }
  /** Answers with `value`, or with what the cloud says now (taking effect now). */
  answer(value?: unknown): void {
    this.finish({ value });
  }
  /** Answers a list with the servers as they were when it was made. */
  answerFromStart(): void {
    this.finish({ value: this.snapshot });
  }
  /** Fails; with commit the call takes effect first (the answer is lost). */
  fail(error: Error, commit = false): void {
    this.finish({ error, commit });
  }
}

/** The tags that make a server ours: cluster and group. */
export const ourTags = (cluster: string, group: string) => ({ [CLUSTER_TAG]: cluster, [GROUP_TAG]: group });

/** A 502 from a proxy: the request may or may not have taken effect. */
export const lost = () => new CloudscaleError("server", "HTTP 502: Bad Gateway", 502);

export class FakeCloud {
  readonly servers = new Map<string, Server>();
  readonly calls: FakeCall[] = [];
  flavors: Flavor[] = [];
  /** Status of a server right after its create (a real one is `changing` while it boots). */
  bootStatus: ServerStatus = "running";
  private readonly holds = new Set<CallKind>();
  private readonly scripted = new Map<CallKind, { error: Error; commit: boolean }[]>();
  private nextUuid = 1;

  constructor(private readonly clock: Clock) {}

  /** Every call of this kind waits until the test answers it (see waiting()). */
  hold(kind: CallKind): void {
    this.holds.add(kind);
  }

  release(kind: CallKind): void {
    this.holds.delete(kind);
  }

  /** The next call of this kind fails with `error`; with commit it takes effect first. */
  next(kind: CallKind, error: Error, commit = false): void {
    this.scripted.set(kind, [...(this.scripted.get(kind) ?? []), { error, commit }]);
  }

  /** Calls of a kind not answered yet, oldest first. */
  waiting(kind: CallKind): FakeCall[] {
    return this.calls.filter((c) => c.kind === kind && !c.done);
  }

  count(kind: CallKind): number {
    return this.calls.filter((c) => c.kind === kind).length;
  }

  /** A server that exists in the cloud, as if created before. */
  add(name: string, tags: Record<string, string>, status: ServerStatus = "running"): Server {
    const s = this.server(name, tags, status);
    this.servers.set(s.uuid, s);
    return s;
  }

  private server(name: string, tags: Record<string, string>, status: ServerStatus): Server {
    const uuid = `00000000-0000-4000-8000-${String(this.nextUuid++).padStart(12, "0")}`;
    return {
      href: `https://api.example/v1/servers/${uuid}`,
      uuid,
      name,
      status,
      flavor: { slug: "flex-4-2", name: "Flex-4-2", vcpu_count: 2, memory_gb: 4 },
      image: { slug: "debian-13" },
      zone: { slug: "lpg1" },
      volumes: [],
      interfaces: [],
      server_groups: [],
      tags: { ...tags },
      created_at: new Date(this.clock.now()).toISOString().replace("Z", `${String(this.nextUuid).padStart(3, "0")}Z`),
    };
  }

  private run<T>(kind: CallKind, arg: unknown, effect: () => T): Promise<T> {
    const snapshot = kind === "list" ? (effect() as Server[]) : undefined;
    const scripted = this.scripted.get(kind)?.shift();
    return new Promise<T>((resolve, reject) => {
      const call = new FakeCall(kind, arg, this.clock.now(), snapshot, (how) => {
        if (call.done) throw new Error(`${kind} call answered twice`);
        call.done = true;
        try {
          if (how.error) {
            if (how.commit) effect();
            reject(how.error);
          } else resolve(how.value !== undefined ? (structuredClone(how.value) as T) : effect());
        } catch (e) {
          reject(e); // the cloud refused it (see deleteServer)
        }
      });
      this.calls.push(call);
      if (this.holds.has(kind)) return;
      if (scripted) call.fail(scripted.error, scripted.commit);
      else call.answer();
    });
  }

  listServers(tags: Record<string, string>, _signal?: AbortSignal): Promise<Server[]> {
    return this.run("list", tags, () =>
      [...this.servers.values()].filter((s) => Object.entries(tags).every(([k, v]) => s.tags[k] === v)).map((s) => structuredClone(s)),
    );
  }

  createServer(body: CreateServerRequest, _signal?: AbortSignal): Promise<Server> {
    return this.run("create", body, () => {
      const s = this.server(body.name, body.tags, this.bootStatus);
      this.servers.set(s.uuid, s);
      return structuredClone(s);
    });
  }

  getServer(uuid: string, _signal?: AbortSignal): Promise<Server | null> {
    return this.run("get", uuid, () => {
      const s = this.servers.get(uuid);
      return s ? structuredClone(s) : null;
    });
  }

  /** Like the real API (and the client's reading of its 400), a server still `changing` cannot be deleted yet. */
  deleteServer(uuid: string, _signal?: AbortSignal): Promise<"deleted" | "gone"> {
    return this.run("delete", uuid, () => {
      if (this.servers.get(uuid)?.status === "changing") throw new CloudscaleError("busy", `deleting server ${uuid}: HTTP 400: The server is currently changing its state`, 400);
      return this.servers.delete(uuid) ? "deleted" : "gone";
    });
  }

  listFlavors(_signal?: AbortSignal): Promise<Flavor[]> {
    return this.run("flavors", undefined, () => structuredClone(this.flavors));
  }
}
