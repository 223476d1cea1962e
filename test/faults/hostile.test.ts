// Hostile input: 10,000 generated requests over mTLS, as a broken or malicious
// caller would send them. Each request's gRPC code is decided here from the
// provider's contract and asserted; the process stays up; and the simulator's
// state afterwards differs only in the one group the requests were allowed to
// grow. Structured requests go through @grpc/grpc-js; wire-level ones (random
// bytes, wrong content-type, missing te, HTTP/1.1) through node:http2, tls, net.
//
//   FAULT_HOSTILE_REQUESTS  how many (default 10000)   FAULT_HOSTILE_SEED  replay one run
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create, fromBinary, toBinary, type DescMessage } from "@bufbuild/protobuf";
import tls from "node:tls";
import net from "node:net";
import { readFileSync } from "node:fs";
import { CloudProvider, NodeGroupTargetSizeRequestSchema } from "../../src/gen/clusterautoscaler/cloudprovider/v1/externalgrpc/externalgrpc_pb";
import { connect, details, grpc, type Client } from "../helpers/grpc";
import { makePki, type Pki } from "../helpers/certs";
import { startServe, startSim, writeConfig, type ServeProc, type SimApi, type SimProc } from "../helpers/procs";
import { CLUSTER_TAG, GROUP_TAG } from "../../src/types";
import { SERVICE, changed, checkNoSecretsAtEnd, grpcFrame, h2Session, makeRng, pool, rawCall, seedFrom, snapshot, type Rng } from "./lib";

checkNoSecretsAtEnd();

const TOTAL = Number(process.env.FAULT_HOSTILE_REQUESTS ?? 10_000);
const CLUSTER = "ho";
const MiB = 1024 * 1024;
const S = grpc.status;

// pool: 2 servers at min 2, so any delete of one is refused (FAILED_PRECONDITION) and nothing changes.
// other: 1 server; requests never name it for deletion in its own group. scratch: the one group
// requests may grow (IncreaseSize with a small delta succeeds there).
const CONFIG = `clusterName: ${CLUSTER}
startupGrace: 0s
createConcurrency: 10
nodeGroups:
  - {name: pool, flavor: flex-4-2, image: debian-13, zone: lpg1, min: 2, max: 5}
  - {name: other, flavor: flex-4-1, image: debian-13, zone: lpg1, min: 0, max: 3, options: {scaleDownUtilizationThreshold: 0.4}}
  - {name: scratch, flavor: flex-4-1, image: debian-13, zone: lpg1, min: 0, max: 1000}
`;
const KNOWN = ["pool", "other", "scratch"] as const;
const MAX: Record<string, number> = { pool: 5, other: 3, scratch: 1000 };
const TARGET: Record<string, number> = { pool: 2, other: 1 }; // scratch only grows; never asked in a way that depends on it

let pki: Pki;
let sim: SimProc;
let api: SimApi;
let serve: ServeProc;
let c: Client;

interface Refs {
  pool: { uuid: string; name: string }[];
  other: { uuid: string; name: string };
  untagged: { uuid: string; name: string };
  otherCluster: { uuid: string; name: string };
  retired: { uuid: string; name: string };
}
let refs: Refs;

beforeAll(async () => {
  pki = makePki();
  sim = await startSim(["--boot-seconds", "0"]);
  api = sim;
  const t = (g: string) => ({ [CLUSTER_TAG]: CLUSTER, [GROUP_TAG]: g });
  const [p1, p2, o1, u1, c1, r1] = await api.seed([
    { name: "ho-pool-aaaaaaaa", zone: "lpg1", tags: t("pool") },
    { name: "ho-pool-bbbbbbbb", zone: "lpg1", tags: t("pool") },
    { name: "ho-other-cccccccc", zone: "lpg1", tags: t("other") },
    { name: "ho-pool-untagged", zone: "lpg1" },
    { name: "prod-pool-dddddddd", zone: "lpg1", tags: { [CLUSTER_TAG]: "prod", [GROUP_TAG]: "pool" } },
    { name: "ho-retired-eeeeeeee", zone: "lpg1", tags: t("retired") },
  ]);
  refs = {
    pool: [{ uuid: p1!, name: "ho-pool-aaaaaaaa" }, { uuid: p2!, name: "ho-pool-bbbbbbbb" }],
    other: { uuid: o1!, name: "ho-other-cccccccc" },
    untagged: { uuid: u1!, name: "ho-pool-untagged" },
    otherCluster: { uuid: c1!, name: "prod-pool-dddddddd" },
    retired: { uuid: r1!, name: "ho-retired-eeeeeeee" },
  };
  serve = await startServe({ configPath: writeConfig(CONFIG), apiUrl: sim.apiUrl, tls: { cert: pki.serverCert, key: pki.serverKey, clientCa: pki.caCert } });
  c = connect(serve.port, pki);
  await c.call("Refresh");
});

afterAll(async () => {
  c?.close();
  await serve?.stop();
  await sim?.stop();
});

// ---------------------------------------------------------------------------------------- the generator

/** What a request must be answered with: a gRPC code, or something below gRPC. */
type Expect = { grpc: number } | { http415: true } | { refused: true };
interface Case {
  kind: string;
  expect: Expect;
  run: () => Promise<Got>;
  /** Short description for a mismatch report. */
  what: string;
}
type Got = { grpc?: number; http?: number; refused?: boolean; message?: string };

const methodsByName = new Map(CloudProvider.methods.map((m) => [m.name, m]));

function unknownId(rng: Rng): string {
  const pick = rng.int(0, 9);
  const s = [
    () => "pool ",
    () => "POOL",
    () => "pool\u0000",
    () => "../pool",
    () => "%70ool",
    () => "pööl",
    () => "scratch\n",
    () => "🙂",
    () => Array.from({ length: rng.int(1, 40) }, () => String.fromCharCode(rng.int(33, 126))).join(""),
    () => Array.from({ length: rng.int(1, 256) }, () => String.fromCharCode(rng.int(0x20, 0x7e))).join(""),
  ][pick]!();
  return (KNOWN as readonly string[]).includes(s) || s.length === 0 ? "nope" : s;
}

/** An id and the code every id-taking method answers for it before looking at anything else. */
function genId(rng: Rng): { id: string; pre?: number; known?: (typeof KNOWN)[number] } {
  const r = rng.next();
  if (r < 0.4) {
    const known = rng.pick(KNOWN);
    return { id: known, known };
  }
  if (r < 0.75) return { id: unknownId(rng), pre: S.NOT_FOUND };
  if (r < 0.85) return { id: "", pre: S.INVALID_ARGUMENT };
  return { id: "g".repeat(rng.int(257, 20_000)), pre: S.INVALID_ARGUMENT };
}

type NodeRef = { providerID: string; name: string };
type NodeClass = "pool" | "other" | "foreign" | "gone" | "bad";
function genNode(rng: Rng, group: string, only?: number[]): { ref: NodeRef; cls: NodeClass } {
  const byId = (u: string) => {
    const v = rng.int(0, 3);
    return v === 0 ? `cloudscale://${u.toUpperCase()}` : v === 1 ? `cloudscale:///${u}` : `cloudscale://${u}`;
  };
  const r = only ? rng.pick(only) : rng.int(0, 15);
  switch (r) {
    case 0:
    case 1: {
      const s = rng.pick(refs.pool);
      return { ref: rng.chance(0.3) ? { providerID: "", name: s.name } : { providerID: byId(s.uuid), name: s.name }, cls: group === "pool" ? "pool" : "other" };
    }
    case 2: {
      if (group === "other") return { ref: { providerID: "", name: `unknown-${rng.int(0, 1e6)}` }, cls: "bad" }; // never name other's own server in its own group
      const s = refs.other;
      return { ref: rng.chance(0.3) ? { providerID: "", name: s.name } : { providerID: byId(s.uuid), name: s.name }, cls: "other" };
    }
    case 3:
    case 4: {
      const s = rng.pick([refs.untagged, refs.otherCluster, refs.retired]);
      // By providerID the cloud is asked and says "not ours"; by name alone it is unknown to the view.
      return rng.chance(0.75) ? { ref: { providerID: byId(s.uuid), name: s.name }, cls: "foreign" } : { ref: { providerID: "", name: s.name }, cls: "bad" };
    }
    case 5:
      return { ref: { providerID: `cloudscale://${crypto.randomUUID()}`, name: `gone-${rng.int(0, 1e6)}` }, cls: "gone" }; // a server that does not exist (already gone)
    case 6:
      return { ref: { providerID: `cloudscale://pending/ho-${group}-${rng.int(0, 1e6)}`, name: "" }, cls: "gone" }; // a creation this provider does not know
    case 7:
      return { ref: { providerID: `cloudscale://${"-".repeat(36)}`, name: "dashes" }, cls: "gone" }; // parses as a UUID; the cloud has no such server
    case 8:
      return { ref: { providerID: "", name: "" }, cls: "bad" };
    case 9:
      return { ref: { providerID: "", name: `ho-${group}-${rng.int(0, 1e6)}` }, cls: "bad" };
    default: {
      const bad = rng.pick([
        "aws:///eu-west-1a/i-0123456789",
        "gce://project/zone/name",
        "cloudscale://",
        "cloudscale://not-a-uuid",
        `cloudscale://${crypto.randomUUID()}x`,
        `CLOUDSCALE://${crypto.randomUUID()}`,
        "cloudscale://../../etc/passwd",
        `cloudscale://${crypto.randomUUID()}/${crypto.randomUUID()}`,
        "x".repeat(rng.int(1, 5000)),
        `cloudscale://${"a".repeat(rng.int(37, 3000))}`,
        "\u0000\u0001\u0002",
        " cloudscale://00000000-0000-0000-0000-000000000000",
      ]);
      return { ref: { providerID: bad, name: `n${rng.int(0, 1e6)}` }, cls: "bad" };
    }
  }
}

/** DeleteNodes' answer for a known group: parse problems, then ownership, then min size. */
function deleteExpect(group: string, classes: NodeClass[]): number {
  if (classes.length === 0) return S.OK;
  if (classes.some((k) => k === "bad" || k === "other")) return S.INVALID_ARGUMENT;
  if (classes.includes("foreign")) return S.PERMISSION_DENIED;
  if (group === "pool" && classes.includes("pool")) return S.FAILED_PRECONDITION; // 2 servers at min 2
  return S.OK;
}

const call = (method: string, req: object, deadlineMs = 15_000) => (): Promise<Got> =>
  c.call(method, req, { deadlineMs }).then(
    () => ({ grpc: S.OK }),
    (e: grpc.ServiceError) => ({ grpc: e.code, message: e.details }),
  );

const rawGrpcJs = (path: string, bytes: Buffer) => (): Promise<Got> =>
  new Promise((resolve) =>
    c.raw.makeUnaryRequest(path, (x: Buffer) => x, (x: Buffer) => x, bytes, { deadline: new Date(Date.now() + 15_000) }, (e) =>
      resolve(e ? { grpc: e.code, message: (e as grpc.ServiceError).details } : { grpc: S.OK }),
    ),
  );

let scratchGrowth = 0;

function genStructured(rng: Rng): Case {
  const r = rng.next();
  const idBased = (method: string, okCode = (_g: string) => S.OK as number): Case => {
    const { id, pre, known } = genId(rng);
    return { kind: method, what: `${method} id=${JSON.stringify(id.slice(0, 40))}${id.length > 40 ? `…(${id.length})` : ""}`, expect: { grpc: pre ?? okCode(known!) }, run: call(method, { id }) };
  };
  if (r < 0.08) return idBased("NodeGroupTargetSize");
  if (r < 0.14) return idBased("NodeGroupNodes");
  if (r < 0.18) return idBased("NodeGroupTemplateNodeInfo");
  if (r < 0.22) return idBased("NodeGroupGetOptions", (g) => (g === "other" ? S.OK : S.UNIMPLEMENTED)); // only "other" has options of its own
  if (r < 0.42) {
    // IncreaseSize: zero, negative, int32 min/max, just over max, and (scratch only) small valid deltas.
    const { id, pre, known } = genId(rng);
    let delta: number;
    let code: number;
    const d = rng.int(0, 6);
    if (d === 0) delta = 0;
    else if (d === 1) delta = -rng.int(1, 1000);
    else if (d === 2) delta = -2147483648;
    else if (d === 3) delta = 2147483647;
    else if (d === 4 && known) delta = MAX[known]! + rng.int(1, 1000); // above max whatever the target
    else if (d === 5 && known === "scratch" && scratchGrowth < 150) delta = rng.int(1, 3);
    else delta = known === "pool" ? rng.int(4, 100) : known === "other" ? rng.int(3, 100) : -1;
    if (pre !== undefined) code = pre;
    else if (delta <= 0) code = S.INVALID_ARGUMENT;
    else if (known === "scratch" && delta <= 3) {
      code = S.OK;
      scratchGrowth += delta;
    } else code = S.OUT_OF_RANGE;
    return { kind: "NodeGroupIncreaseSize", what: `IncreaseSize id=${JSON.stringify(id.slice(0, 40))} delta=${delta}`, expect: { grpc: code }, run: call("NodeGroupIncreaseSize", { id, delta }) };
  }
  if (r < 0.5) {
    const { id, pre, known } = genId(rng);
    const d = rng.int(0, 4);
    const delta = d === 0 ? 0 : d === 1 ? rng.int(1, 1e6) : d === 2 ? 2147483647 : d === 3 ? -2147483648 : -rng.int(1, 10);
    const code = pre ?? (delta >= 0 ? S.INVALID_ARGUMENT : S.FAILED_PRECONDITION);
    if (known === "scratch" && delta < 0) return genStructured(rng); // depends on creations in flight: not generated
    return { kind: "NodeGroupDecreaseTargetSize", what: `DecreaseTargetSize id=${JSON.stringify(id.slice(0, 40))} delta=${delta}`, expect: { grpc: code }, run: call("NodeGroupDecreaseTargetSize", { id, delta }) };
  }
  if (r < 0.72) {
    const { id, pre, known } = genId(rng);
    const many = rng.chance(0.01);
    const n = many ? 1001 : rng.int(0, 4);
    // Often only well-formed nodes (ours, foreign by providerID, gone), so ownership and min size decide, not parsing.
    const only = rng.chance(0.4) ? [0, 1, 3, 4, 5, 6, 7] : undefined;
    const gen = Array.from({ length: n }, () => genNode(rng, known ?? "pool", only));
    let code: number;
    if (pre === S.INVALID_ARGUMENT) code = pre; // the id is checked first
    else if (n > 1000) code = S.INVALID_ARGUMENT; // then the count, before the group is looked up
    else if (pre !== undefined) code = pre;
    else code = deleteExpect(known!, gen.map((g) => g.cls));
    return { kind: "NodeGroupDeleteNodes", what: `DeleteNodes id=${JSON.stringify(id.slice(0, 40))} nodes=${JSON.stringify(gen.slice(0, 4).map((g) => [g.cls, g.ref.providerID.slice(0, 60), g.ref.name.slice(0, 30)]))}`, expect: { grpc: code }, run: call("NodeGroupDeleteNodes", { id, nodes: gen.map((g) => g.ref) }) };
  }
  if (r < 0.8) {
    const g = rng.chance(0.5) ? genNode(rng, "pool").ref : { providerID: "x".repeat(rng.int(0, 100_000)), name: "y".repeat(rng.int(0, 100_000)) };
    return { kind: "NodeGroupForNode", what: `NodeGroupForNode ${JSON.stringify(g).slice(0, 120)}`, expect: { grpc: S.OK }, run: call("NodeGroupForNode", { node: g }) };
  }
  if (r < 0.86) {
    const v = rng.int(0, 4);
    const labels: Record<string, string> = v === 0 ? { "node.kubernetes.io/instance-type": "flex-8-2" } : v === 1 ? { "node.kubernetes.io/instance-type": `nope-${rng.int(0, 99)}` } : {};
    const node = v === 3 ? { providerID: `cloudscale://${refs.pool[0]!.uuid}`, name: "n" } : { name: `n${rng.int(0, 99)}`, labels };
    const reversed = v === 4;
    const code = reversed ? S.INVALID_ARGUMENT : v === 0 || v === 3 ? S.OK : S.NOT_FOUND;
    const req = reversed ? { node: { name: "n", labels: { "node.kubernetes.io/instance-type": "flex-8-2" } }, startTimestamp: { seconds: 100 }, endTimestamp: { seconds: 10 } } : { node };
    return { kind: "PricingNodePrice", what: `PricingNodePrice v${v}`, expect: { grpc: code }, run: call("PricingNodePrice", req) };
  }
  if (r < 0.88) return { kind: "PricingPodPrice", what: "PricingPodPrice without a pod", expect: { grpc: S.INVALID_ARGUMENT }, run: call("PricingPodPrice", {}) };
  if (r < 0.92) {
    const m = rng.pick(["NodeGroups", "GPULabel", "GetAvailableGPUTypes", "Refresh"]);
    return { kind: m, what: m, expect: { grpc: S.OK }, run: call(m, {}) };
  }
  if (r < 0.96) {
    // Random bytes as the message: must not parse (checked with the same protobuf runtime), answered INTERNAL as grpc-go does.
    const m = rng.pick(CloudProvider.methods);
    let bytes = Buffer.from(rng.bytes(rng.int(1, 64)));
    for (let i = 0; i < 50 && parses(m.input, bytes); i++) bytes = Buffer.from(rng.bytes(rng.int(1, 64)));
    if (parses(m.input, bytes)) bytes = Buffer.concat([Buffer.from([0x0f]), bytes]); // wire type 7: never valid
    return { kind: "random bytes", what: `${m.name} with ${bytes.length} random bytes ${bytes.toString("hex").slice(0, 40)}`, expect: { grpc: S.INTERNAL }, run: rawGrpcJs(`${SERVICE}/${m.name}`, bytes) };
  }
  // Unknown methods.
  const path = rng.pick([
    `${SERVICE}/Nope${rng.int(0, 999)}`,
    `${SERVICE}/nodegroups`,
    `${SERVICE}/NodeGroups/extra`,
    `/clusterautoscaler.cloudprovider.v1.externalgrpc.CloudProviderX/NodeGroups`,
    `/grpc.health.v1.Health/Check`,
    `/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo`,
    `/${"a".repeat(rng.int(1, 2000))}/b`,
  ]);
  return { kind: "unknown method", what: `unknown method ${path.slice(0, 80)}`, expect: { grpc: S.UNIMPLEMENTED }, run: rawGrpcJs(path, Buffer.alloc(0)) };
}

function parses(schema: DescMessage, bytes: Uint8Array): boolean {
  try {
    fromBinary(schema, bytes);
    return true;
  } catch {
    return false;
  }
}

/** Oversized strings: just under and over the 4 MiB message limit. */
function genOversized(rng: Rng, i: number): Case {
  const over = i % 2 === 1;
  const n = over ? 4 * MiB + rng.int(1, 2 * MiB) : rng.int(1 * MiB, 4 * MiB - 1024);
  const m = rng.pick(["NodeGroupTargetSize", "NodeGroupForNode", "NodeGroupDeleteNodes"]);
  const req = m === "NodeGroupTargetSize" ? { id: "x".repeat(n) } : m === "NodeGroupForNode" ? { node: { providerID: "p".repeat(n), name: "n" } } : { id: "pool", nodes: [{ providerID: "p".repeat(n), name: "n" }] };
  const code = over ? S.RESOURCE_EXHAUSTED : m === "NodeGroupTargetSize" ? S.INVALID_ARGUMENT : m === "NodeGroupForNode" ? S.OK : S.INVALID_ARGUMENT;
  return { kind: over ? "over 4 MiB" : "under 4 MiB", what: `${m} with a ${(n / MiB).toFixed(2)} MiB string`, expect: { grpc: code }, run: call(m, req, 30_000) };
}

/** Wire-level requests over a raw HTTP/2 session: wrong content-type, missing te, bad framing. */
function genWire(rng: Rng, session: () => ReturnType<typeof h2Session>): Case {
  const known = rng.chance(0.5);
  const body = grpcFrame(toBinary(NodeGroupTargetSizeRequestSchema, create(NodeGroupTargetSizeRequestSchema, { id: known ? "pool" : "nope" })));
  const path = `${SERVICE}/NodeGroupTargetSize`;
  const v = rng.int(0, 5);
  const h2 = (headers: Record<string, string | undefined>, b = body) => async (): Promise<Got> => {
    const a = await rawCall(session(), { path, headers, body: b });
    return { grpc: a.grpcStatus, http: a.httpStatus, refused: a.error !== undefined && a.httpStatus === undefined, message: a.grpcMessage ?? a.error };
  };
  if (v <= 2) {
    const ct = rng.pick(["application/json", "text/plain", "application/grpc-web", "application/x-protobuf", "application/octet-stream", "multipart/form-data", "applicationgrpc", ""]);
    return { kind: "wrong content-type", what: `content-type ${JSON.stringify(ct)}`, expect: { http415: true }, run: h2({ "content-type": ct === "" ? undefined : ct }) };
  }
  if (v === 3) return { kind: "missing te", what: `no te header, id ${known ? "pool" : "nope"}`, expect: { grpc: known ? S.OK : S.NOT_FOUND }, run: h2({ te: undefined }) };
  if (v === 4) {
    // Compressed flag without a grpc-encoding: grpc-go answers INTERNAL.
    const b = Buffer.from(body);
    b[0] = 1;
    return { kind: "compressed flag, no encoding", what: "compressed flag set, no grpc-encoding", expect: { grpc: S.INTERNAL }, run: h2({}, b) };
  }
  // An encoding nobody registered: grpc-go answers UNIMPLEMENTED.
  const b = Buffer.from(body);
  b[0] = 1;
  return { kind: "unknown grpc-encoding", what: "grpc-encoding: snappy", expect: { grpc: S.UNIMPLEMENTED }, run: h2({ "grpc-encoding": "snappy" }, b) };
}

/** HTTP/1.1 in its three shapes; each must be refused without a gRPC answer. */
function genHttp1(rng: Rng, port: number): Case {
  const v = rng.int(0, 2);
  const request = "POST /clusterautoscaler.cloudprovider.v1.externalgrpc.CloudProvider/NodeGroups HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/grpc\r\nTE: trailers\r\nContent-Length: 5\r\n\r\n\0\0\0\0\0";
  const run = (): Promise<Got> =>
    new Promise((resolve) => {
      let data = "";
      let secured = false;
      const sock: net.Socket =
        v === 2
          ? net.connect(port, "127.0.0.1", () => sock.write(request))
          : tls.connect({ host: "127.0.0.1", port, servername: "localhost", ca: readFileSync(pki.caCert), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey), ALPNProtocols: v === 0 ? ["http/1.1"] : undefined }, () => {
              secured = true;
              sock.write(request);
            });
      const timer = setTimeout(() => sock.destroy(), 5000);
      sock.on("data", (d) => (data += d.toString("latin1")));
      sock.on("error", () => {});
      sock.on("close", () => {
        clearTimeout(timer);
        // A gRPC answer over HTTP/1.1 would carry grpc-status; a refusal carries none.
        resolve({ refused: !/grpc-status/i.test(data), message: `${secured ? "TLS up, " : ""}${JSON.stringify(data.slice(0, 80))}` });
      });
    });
  return { kind: "HTTP/1.1", what: ["HTTP/1.1 over TLS (ALPN http/1.1)", "HTTP/1.1 over TLS without ALPN", "HTTP/1.1 in plaintext to the TLS port"][v]!, expect: { refused: true }, run };
}

function matches(e: Expect, g: Got): boolean {
  if ("grpc" in e) return g.grpc === e.grpc;
  if ("http415" in e) return g.http === 415 && (g.grpc === undefined || g.grpc === S.INVALID_ARGUMENT);
  return g.refused === true;
}

describe("hostile input", () => {
  test(`${TOTAL} generated requests: the right code for each, the process stays up, only the named group changes`, async () => {
    const seed = seedFrom("FAULT_HOSTILE_SEED", "hostile requests");
    const rng = makeRng(seed);
    const before = await snapshot(api);
    let session = h2Session(serve.port, pki);
    const sessionFor = () => {
      if (session.closed || session.destroyed) session = h2Session(serve.port, pki);
      return session;
    };
    const cases: Case[] = [];
    const oversized = Math.min(16, Math.floor(TOTAL / 500));
    const http1 = Math.min(60, Math.floor(TOTAL / 150));
    const wire = Math.floor(TOTAL * 0.04);
    for (let i = 0; i < oversized; i++) cases.push(genOversized(rng, i));
    for (let i = 0; i < http1; i++) cases.push(genHttp1(rng, serve.port));
    for (let i = 0; i < wire; i++) cases.push(genWire(rng, sessionFor));
    while (cases.length < TOTAL) cases.push(genStructured(rng));
    // Shuffle, keeping it reproducible.
    for (let i = cases.length - 1; i > 0; i--) {
      const j = rng.int(0, i);
      [cases[i], cases[j]] = [cases[j]!, cases[i]!];
    }

    const t0 = performance.now();
    const mismatches: string[] = [];
    const byKind = new Map<string, number>();
    const byExpected = new Map<string, number>();
    await pool(cases, 16, async (k) => {
      const got = await k.run();
      byKind.set(k.kind, (byKind.get(k.kind) ?? 0) + 1);
      const e = "grpc" in k.expect ? S[k.expect.grpc]! : "http415" in k.expect ? "HTTP_415" : "REFUSED";
      byExpected.set(e, (byExpected.get(e) ?? 0) + 1);
      if (!matches(k.expect, got)) {
        const exp = "grpc" in k.expect ? S[k.expect.grpc] : "http415" in k.expect ? "HTTP 415" : "refused";
        mismatches.push(`${k.what}: expected ${exp}, got ${got.grpc !== undefined ? S[got.grpc] : "no grpc-status"}${got.http ? ` (HTTP ${got.http})` : ""}${got.refused ? " (refused)" : ""} ${details({ details: got.message }).slice(0, 160)}`);
      }
    });
    session.close();
    const secs = (performance.now() - t0) / 1000;
    console.log(`hostile: ${cases.length} requests in ${secs.toFixed(1)} s; ${mismatches.length} mismatches\n  by kind: ${[...byKind].map(([k, n]) => `${k}=${n}`).join(" ")}\n  by expected answer: ${[...byExpected].map(([k, n]) => `${k}=${n}`).join(" ")}`);
    if (mismatches.length) console.log(`first mismatches:\n  ${mismatches.slice(0, 30).join("\n  ")}`);

    // Still up and answering.
    expect(serve.proc.exitCode).toBeNull();
    await c.call("Refresh");
    expect((await c.call("NodeGroups")).nodeGroups.map((g: { id: string }) => g.id)).toEqual([...KNOWN]);

    // Only scratch changed: its new servers appeared; everything else is exactly as before.
    let after = await snapshot(api);
    for (let i = 0; i < 100 && (await api.servers(`?tag:${GROUP_TAG}=scratch`)).length < scratchGrowth; i++) await Bun.sleep(100);
    after = await snapshot(api);
    const scratch = await api.servers(`?tag:${GROUP_TAG}=scratch`);
    const touched = changed(before, after).filter((u) => !scratch.some((s) => s.uuid === u));
    expect(touched).toEqual([]);
    expect(scratch.length).toBe(scratchGrowth);
    for (const s of scratch) expect(s.tags).toMatchObject({ [CLUSTER_TAG]: CLUSTER, [GROUP_TAG]: "scratch" });
    expect((await c.call("NodeGroupTargetSize", { id: "pool" })).targetSize).toBe(TARGET.pool);
    expect((await c.call("NodeGroupTargetSize", { id: "other" })).targetSize).toBe(TARGET.other);
    expect(mismatches).toEqual([]);
  }, 600_000);
});
