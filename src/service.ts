// The CloudProvider gRPC service: a plain object of async functions, one per
// RPC, each translating CA's request into a Provider call and the answer back
// into the wire shape both CA 1.35+ and CA <= 1.34 read. This is the edge: the
// provider's errors (errors.ts) become gRPC status codes here, and nowhere else.
import { create, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { anyPack, type Any } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  CloudProvider,
  InstanceStatus_InstanceState as State,
  NodeGroupAutoscalingOptionsSchema,
  NodeGroupForNodeResponseSchema,
  NodeGroupNodesResponseSchema,
  NodeGroupsResponseSchema,
  NodeGroupTargetSizeResponseSchema,
  NodeGroupTemplateNodeInfoResponseSchema,
  type ExternalGrpcNode,
} from "./gen/clusterautoscaler/cloudprovider/v1/externalgrpc/externalgrpc_pb";
import type { Node, Pod } from "./gen/k8s.io/api/core/v1/generated_pb";
import { StringValueSchema } from "@bufbuild/protobuf/wkt";
import { ProviderError, type ProviderErrorKind } from "./errors";
import type { GroupOptions, NodeGroupConfig } from "./types";
import type { InstanceView } from "./view";

/** What the service needs from the provider; provider.ts implements it. */
export interface ProviderApi {
  groups(): NodeGroupConfig[];
  groupForNode(node: { providerID: string; name: string }): NodeGroupConfig | undefined;
  refresh(signal: AbortSignal, deadlineMs?: number): Promise<void>;
  /** Moves whenever targetSize() or nodes() may answer differently. */
  generation(): number;
  targetSize(group: string): number;
  increaseSize(group: string, delta: number): void;
  deleteNodes(group: string, nodes: { providerID: string; name: string }[], signal: AbortSignal): Promise<void>;
  decreaseTargetSize(group: string, delta: number): void;
  nodes(group: string): InstanceView[];
  templateNode(group: string, signal: AbortSignal): Promise<{ node: Node; bytes: Uint8Array }>;
  nodePrice(node: { providerID: string; name: string; labels: Record<string, string> }, startSec: number, endSec: number): number;
  podPrice(pod: { bytes?: Uint8Array; message?: Pod }, startSec: number, endSec: number): number;
  gpuLabel(): string;
  gpuTypes(): string[];
  cleanup(): Promise<void>;
  /** CA made a call (any RPC): the provider tracks when it serves (reconciler.ts, rule 14). */
  noteCall(): void;
}

const CODES: Record<ProviderErrorKind, Code> = {
  "not-found": Code.NotFound,
  "invalid-argument": Code.InvalidArgument,
  "out-of-range": Code.OutOfRange,
  "failed-precondition": Code.FailedPrecondition,
  "not-ours": Code.PermissionDenied,
  unavailable: Code.Unavailable,
  "cloud-auth": Code.PermissionDenied,
  "deadline-exceeded": Code.DeadlineExceeded,
  unimplemented: Code.Unimplemented,
};

/** The gRPC status for an error thrown while answering: a ProviderError's by its kind; anything else stays as it is (INTERNAL at the server). */
export function toConnectError(e: unknown): unknown {
  return e instanceof ProviderError ? new ConnectError(e.message, CODES[e.kind]) : e;
}

const MAX_ID = 256;

function groupId(id: string): string {
  if (!id) throw new ProviderError("invalid-argument", "node group id is empty");
  if (id.length > MAX_ID) throw new ProviderError("invalid-argument", `node group id is ${id.length} characters long; ids are at most ${MAX_ID}`);
  return id;
}

function nodeRef(n: ExternalGrpcNode | undefined): { providerID: string; name: string } {
  return { providerID: (n?.providerID ?? "").slice(0, 1024), name: (n?.name ?? "").slice(0, 1024) };
}

const stateOf: Record<InstanceView["state"], State> = {
  running: State.instanceRunning,
  creating: State.instanceCreating,
  deleting: State.instanceDeleting,
};

/** Seconds of a Timestamp, a legacy meta.v1.Time, or undefined. */
function seconds(...candidates: ({ seconds?: bigint } | undefined)[]): number | undefined {
  for (const c of candidates) if (c && c.seconds !== undefined) return Number(c.seconds);
  return undefined;
}

function timeRange(startTs?: { seconds?: bigint }, endTs?: { seconds?: bigint }, startLegacy?: { seconds?: bigint }, endLegacy?: { seconds?: bigint }) {
  const nowSec = Math.floor(Date.now() / 1000);
  const start = seconds(startTs, startLegacy) ?? nowSec;
  const end = seconds(endTs, endLegacy) ?? start + 3600;
  if (end < start) throw new ProviderError("invalid-argument", `the price interval ends (${end}) before it starts (${start})`);
  return { start, end };
}

/** Both the google Duration (CA 1.35+) and the legacy nanosecond Duration (CA <= 1.34). */
function durations(secs: number) {
  const whole = Math.floor(secs);
  return {
    modern: { seconds: BigInt(whole), nanos: Math.round((secs - whole) * 1e9) },
    legacy: { duration: BigInt(Math.round(secs * 1e9)) },
  };
}

function optionsMessage(o: GroupOptions, defaults: MessageInitShape<typeof NodeGroupAutoscalingOptionsSchema> | undefined) {
  // Every field is answered: ours where configured, else CA's own default from the request
  // (CA sends all of its defaults, so a 0 there is the operator's 0), else CA's documented
  // default when the request carries no defaults at all. A duration is taken from the first
  // shape the request carries, the google Duration (CA 1.35+) or the legacy one, zero or not.
  const d = defaults ?? {};
  const given = defaults !== undefined;
  const dur = (mine: number | undefined, modern: { seconds?: bigint; nanos?: number } | undefined, legacy: { duration?: bigint } | undefined, fallback: number) => {
    if (mine !== undefined) return durations(mine);
    if (modern) return durations(Number(modern.seconds ?? 0n) + (modern.nanos ?? 0) / 1e9);
    if (legacy) return durations(Number(legacy.duration ?? 0n) / 1e9);
    return durations(fallback);
  };
  const ratio = (mine: number | undefined, theirs: number | undefined) => mine ?? (given ? (theirs ?? 0) : 0.5);
  const unneeded = dur(o.scaleDownUnneededSeconds, d.scaleDownUnneededDuration, d.scaleDownUnneededTime, 600);
  const unready = dur(o.scaleDownUnreadySeconds, d.scaleDownUnreadyDuration, d.scaleDownUnreadyTime, 1200);
  const provision = dur(o.maxNodeProvisionSeconds, d.MaxNodeProvisionDuration, d.MaxNodeProvisionTime, 900);
  return create(NodeGroupAutoscalingOptionsSchema, {
    scaleDownUtilizationThreshold: ratio(o.scaleDownUtilizationThreshold, d.scaleDownUtilizationThreshold),
    scaleDownGpuUtilizationThreshold: ratio(o.scaleDownGpuUtilizationThreshold, d.scaleDownGpuUtilizationThreshold),
    zeroOrMaxNodeScaling: o.zeroOrMaxNodeScaling ?? d.zeroOrMaxNodeScaling ?? false,
    ignoreDaemonSetsUtilization: o.ignoreDaemonSetsUtilization ?? d.ignoreDaemonSetsUtilization ?? false,
    scaleDownUnneededDuration: unneeded.modern,
    scaleDownUnreadyDuration: unready.modern,
    MaxNodeProvisionDuration: provision.modern,
    scaleDownUnneededTime: unneeded.legacy,
    scaleDownUnreadyTime: unready.legacy,
    MaxNodeProvisionTime: provision.legacy,
  });
}

/**
 * An answer encoded once, for the RPCs CA asks over and over with the same answer until the view
 * changes. `binary` carries the encoded bytes as a single unknown field: protobuf-es writes an
 * unknown field as its tag followed by its data, so the first field's tag with all the bytes after
 * it is the whole encoding again, copied instead of rebuilt field by field. JSON skips unknown
 * fields, so `typed` stays beside it for application/grpc+json callers.
 */
interface Answer<T> {
  typed: T;
  binary: T;
}

function encodedOnce<Desc extends DescMessage>(schema: Desc, init: MessageInitShape<Desc>): Answer<MessageShape<Desc>> {
  const typed = create(schema, init);
  const bytes = toBinary(schema, typed);
  if (bytes.length === 0) return { typed, binary: typed };
  const reader = new BinaryReader(bytes);
  const [no, wireType] = reader.tag();
  const binary = create(schema);
  binary.$unknown = [{ no, wireType, data: bytes.subarray(reader.pos) }];
  // Should the runtime ever write unknown fields otherwise, the typed message is answered.
  const again = toBinary(schema, binary);
  const same = again.length === bytes.length && again.every((b, i) => b === bytes[i]);
  return { typed, binary: same ? binary : typed };
}

const JSON_CODEC = /json/i;
/** The answer in the codec the caller asked for (protobuf unless application/grpc+json). */
function answer<T>(a: Answer<T>, ctx: HandlerContext): T {
  return JSON_CODEC.test(ctx.requestHeader.get("content-type") ?? "") ? a.typed : a.binary;
}

/** Answers kept per key until the provider's view moves to another generation. */
function perGeneration<T>(p: ProviderApi) {
  const kept = new Map<string, { generation: number; answer: T }>();
  return (key: string, make: () => T): T => {
    const generation = p.generation();
    const hit = kept.get(key);
    if (hit && hit.generation === generation) return hit.answer;
    const made = make(); // throws for an unknown group: nothing is kept for it
    kept.set(key, { generation, answer: made });
    return made;
  };
}

/**
 * Every handler notes the call (rule 14 of reconciler.ts) and answers a ProviderError with its
 * status code. connect-es calls each handler on the object, so wrapping them keeps its plain shape.
 */
function atTheEdge(p: ProviderApi, impl: ServiceImpl<typeof CloudProvider>): ServiceImpl<typeof CloudProvider> {
  const out: Record<string, unknown> = {};
  for (const [name, handler] of Object.entries(impl) as [string, (req: unknown, ctx: HandlerContext) => Promise<unknown>][]) {
    out[name] = async (req: unknown, ctx: HandlerContext) => {
      p.noteCall();
      try {
        return await handler(req, ctx);
      } catch (e) {
        throw toConnectError(e);
      }
    };
  }
  return out as ServiceImpl<typeof CloudProvider>;
}

function cloudProviderService(p: ProviderApi): ServiceImpl<typeof CloudProvider> {
  return atTheEdge(p, handlers(p));
}

function handlers(p: ProviderApi): ServiceImpl<typeof CloudProvider> {
  const describe = (g: NodeGroupConfig) => ({
    id: g.name,
    minSize: g.min,
    maxSize: g.max,
    debug: `${g.name} (${g.flavor} in ${g.zone}, ${g.min}..${g.max})`,
  });
  // The groups are the configuration's: their answers are encoded once (for the same objects).
  let groupsAnswer: { of: NodeGroupConfig[]; answer: Answer<MessageShape<typeof NodeGroupsResponseSchema>> } | undefined;
  const groupAnswers = new WeakMap<NodeGroupConfig, Answer<MessageShape<typeof NodeGroupForNodeResponseSchema>>>();
  const noGroup = encodedOnce(NodeGroupForNodeResponseSchema, { nodeGroup: { id: "" } });
  const noOptions = new WeakMap<NodeGroupConfig, ConnectError>();
  const targetSizes = perGeneration<Answer<MessageShape<typeof NodeGroupTargetSizeResponseSchema>>>(p);
  const nodeLists = perGeneration<Answer<MessageShape<typeof NodeGroupNodesResponseSchema>>>(p);
  const templates = new WeakMap<object, Answer<MessageShape<typeof NodeGroupTemplateNodeInfoResponseSchema>>>();
  return {
    async nodeGroups(_req, ctx) {
      const groups = p.groups();
      if (groupsAnswer?.of !== groups) groupsAnswer = { of: groups, answer: encodedOnce(NodeGroupsResponseSchema, { nodeGroups: groups.map(describe) }) };
      return answer(groupsAnswer.answer, ctx);
    },
    async nodeGroupForNode(req, ctx) {
      const g = p.groupForNode(nodeRef(req.node));
      if (!g) return answer(noGroup, ctx);
      let a = groupAnswers.get(g);
      if (!a) groupAnswers.set(g, (a = encodedOnce(NodeGroupForNodeResponseSchema, { nodeGroup: describe(g) })));
      return answer(a, ctx);
    },
    async pricingNodePrice(req) {
      const { start, end } = timeRange(req.startTimestamp, req.endTimestamp, req.startTime, req.endTime);
      const n = req.node;
      return { price: p.nodePrice({ ...nodeRef(n), labels: n?.labels ?? {} }, start, end) };
    },
    async pricingPodPrice(req) {
      const { start, end } = timeRange(req.startTimestamp, req.endTimestamp, req.startTime, req.endTime);
      const pod = req.podBytes.length > 0 ? { bytes: req.podBytes } : req.pod ? { message: req.pod } : undefined;
      if (!pod) throw new ProviderError("invalid-argument", "the request carries no pod (neither pod_bytes nor pod)");
      return { price: p.podPrice(pod, start, end) };
    },
    async gPULabel() {
      return { label: p.gpuLabel() };
    },
    async getAvailableGPUTypes() {
      const gpuTypes: Record<string, Any> = {};
      for (const t of p.gpuTypes()) gpuTypes[t] = anyPack(StringValueSchema, create(StringValueSchema, { value: t }));
      return { gpuTypes };
    },
    async cleanup() {
      await p.cleanup();
      return {};
    },
    async refresh(_req, ctx: HandlerContext) {
      await p.refresh(ctx.signal, ctx.timeoutMs());
      return {};
    },
    async nodeGroupTargetSize(req, ctx) {
      const id = groupId(req.id);
      return answer(
        targetSizes(id, () => encodedOnce(NodeGroupTargetSizeResponseSchema, { targetSize: p.targetSize(id) })),
        ctx,
      );
    },
    async nodeGroupIncreaseSize(req) {
      p.increaseSize(groupId(req.id), req.delta);
      return {};
    },
    async nodeGroupDeleteNodes(req, ctx) {
      const id = groupId(req.id);
      if (req.nodes.length > 1000) throw new ProviderError("invalid-argument", `${req.nodes.length} nodes in one call; at most 1000`);
      await p.deleteNodes(id, req.nodes.map(nodeRef), ctx.signal);
      return {};
    },
    async nodeGroupDecreaseTargetSize(req) {
      p.decreaseTargetSize(groupId(req.id), req.delta);
      return {};
    },
    async nodeGroupNodes(req, ctx) {
      const id = groupId(req.id);
      const make = () => {
        const instances = p.nodes(id).map((i) => ({
          id: i.id,
          status: {
            instanceState: stateOf[i.state],
            errorInfo: i.error ? { errorCode: i.error.code, errorMessage: i.error.message, instanceErrorClass: i.error.errorClass } : undefined,
          },
        }));
        return encodedOnce(NodeGroupNodesResponseSchema, { instances });
      };
      return answer(nodeLists(id, make), ctx);
    },
    async nodeGroupTemplateNodeInfo(req, ctx) {
      // The provider hands out the same template object until the flavor changes.
      const template = await p.templateNode(groupId(req.id), ctx.signal);
      let a = templates.get(template);
      // Field 2 for CA 1.35+, the same Node embedded in field 1 for CA <= 1.34.
      if (!a) templates.set(template, (a = encodedOnce(NodeGroupTemplateNodeInfoResponseSchema, { nodeBytes: template.bytes, nodeInfo: template.node })));
      return answer(a, ctx);
    },
    async nodeGroupGetOptions(req) {
      const g = p.groups().find((x) => x.name === groupId(req.id));
      if (!g) throw new ProviderError("not-found", `node group "${req.id.slice(0, 100)}" does not exist`);
      if (!g.options) {
        // CA asks this of each node's group twice a loop (10,000 times a loop at 5,000 nodes) and takes
        // UNIMPLEMENTED as "use my defaults": one error per group, thrown again each time.
        let e = noOptions.get(g);
        if (!e) noOptions.set(g, (e = new ConnectError(`node group "${g.name}" has no options of its own; CA's defaults apply`, Code.Unimplemented)));
        throw e;
      }
      return { nodeGroupAutoscalingOptions: optionsMessage(g.options, req.defaults) };
    },
  };
}

export function routes(p: ProviderApi) {
  return (router: ConnectRouter) => {
    router.service(CloudProvider, cloudProviderService(p));
  };
}
