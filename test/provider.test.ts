// The compiled binary, driven over mTLS by @grpc/grpc-js against the simulator
// over real HTTP: every RPC and every rule of the provider's contract.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import protobuf from "protobufjs";
import { join } from "node:path";
import { connect, expectCode, grpc, instances as instancesOf, targetSize as targetSizeOf, type Client } from "./helpers/grpc";
import { makePki, type Pki } from "./helpers/certs";
import { sleep, startServe, startSim, until, writeConfig, type ServeProc, type SimProc } from "./helpers/procs";
import { TALOS_WORKER } from "./helpers/provider";
import { SERVICE, grpcFrame, h2Session, rawCall } from "./faults/lib";

const root = new protobuf.Root();
root.resolvePath = (_origin, target) => join(import.meta.dir, "../proto", target);
root.loadSync("k8s.io/api/core/v1/generated.proto", { keepCase: true });
const NodeType = root.lookupType("k8s.io.api.core.v1.Node");
const PodType = root.lookupType("k8s.io.api.core.v1.Pod");

const TALOS = `${TALOS_WORKER}---
apiVersion: v1alpha1
kind: HostnameConfig
auto: stable
`;

const CONFIG = `clusterName: it
startupGrace: 0s
createConcurrency: 4
createVerifyDelay: 300ms
nodeGroups:
  - name: workers
    flavor: flex-8-2
    image: custom:talos-1.13.2
    zone: lpg1
    min: 0
    max: 6
    volumeSizeGb: 50
    labels: {team: blue}
    taints: [{key: dedicated, value: batch, effect: NoSchedule}]
    userData: |
${TALOS.split("\n").map((l) => `      ${l}`).join("\n")}
  - name: tuned
    flavor: plus-16-4
    image: debian-13
    zone: rma1
    min: 1
    max: 3
    pricePerHour: 0.25
    options:
      scaleDownUtilizationThreshold: 0.3
      scaleDownUnneededTime: 5m
      maxNodeProvisionTime: 20m
  - name: gpu
    flavor: gpu2-128-16-1-200
    image: debian-13
    zone: rma1
    min: 0
    max: 2
`;

let pki: Pki;
let sim: SimProc;
let serve: ServeProc;
let ca: Client;

const ours = (group?: string) => sim.ours("it", group);
const instances = (group: string) => instancesOf(ca, group);
const targetSize = (group: string) => targetSizeOf(ca, group);

async function settle() {
  await ca.call("Refresh");
}

/** Deletes every node of a group and waits until the cloud has none (servers still booting are deleted once they have booted). */
async function deleteAll(group: string) {
  await settle();
  const inst = await instances(group);
  if (inst.length) await ca.call("NodeGroupDeleteNodes", { id: group, nodes: inst.map((i) => ({ providerID: i.id, name: i.id })) });
  await until(`no server of ${group} left`, async () => (await ours(group)).length === 0, 20_000, 200);
  await settle();
}

beforeAll(async () => {
  pki = makePki();
  sim = await startSim(["--boot-seconds", "1"]);
  serve = await startServe({ configPath: writeConfig(CONFIG), apiUrl: sim.apiUrl, tls: { cert: pki.serverCert, key: pki.serverKey, clientCa: pki.caCert } });
  ca = connect(serve.port, pki);
});

afterAll(async () => {
  ca?.close();
  await serve?.stop();
  await sim?.stop();
});

describe("node groups and scale-up", () => {
  test("NodeGroups lists every configured group with min and max", async () => {
    const { nodeGroups } = await ca.call("NodeGroups");
    expect(nodeGroups.map((g: any) => [g.id, g.minSize, g.maxSize])).toEqual([["workers", 0, 6], ["tuned", 1, 3], ["gpu", 0, 2]]);
  });

  test("IncreaseSize refuses bad input with the right codes and creates nothing", async () => {
    await settle();
    await expectCode(ca.call("NodeGroupIncreaseSize", { id: "workers", delta: 0 }), grpc.status.INVALID_ARGUMENT);
    await expectCode(ca.call("NodeGroupIncreaseSize", { id: "workers", delta: -2 }), grpc.status.INVALID_ARGUMENT);
    const over = await expectCode(ca.call("NodeGroupIncreaseSize", { id: "workers", delta: 7 }), grpc.status.OUT_OF_RANGE);
    expect(over.details).toContain("max size 6");
    await expectCode(ca.call("NodeGroupIncreaseSize", { id: "nope", delta: 1 }), grpc.status.NOT_FOUND);
    await expectCode(ca.call("NodeGroupIncreaseSize", { id: "", delta: 1 }), grpc.status.INVALID_ARGUMENT);
    await expectCode(ca.call("NodeGroupTargetSize", { id: "nope" }), grpc.status.NOT_FOUND);
    await expectCode(ca.call("NodeGroupNodes", { id: "nope" }), grpc.status.NOT_FOUND);
    expect(await targetSize("workers")).toBe(0);
    expect(await ours()).toHaveLength(0);
  });

  test("IncreaseSize is acknowledged at once, target size counts accepted creates, servers carry our tags and patched user-data", async () => {
    const t0 = performance.now();
    await ca.call("NodeGroupIncreaseSize", { id: "workers", delta: 3 });
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(await targetSize("workers")).toBe(3);
    const servers = await until("3 servers in the simulator", async () => {
      const s = await ours("workers");
      return s.length === 3 && s;
    });
    for (const s of servers) {
      expect(s.name).toMatch(/^it-workers-[a-z0-9]{8}$/);
      expect(s.flavor.slug).toBe("flex-8-2");
      expect(s.zone.slug).toBe("lpg1");
      expect(s.user_data).toContain(`hostname: ${s.name}`);
      expect(s.user_data).toContain("team: blue");
      expect(s.user_data).toContain("autoscaler-cloudscale/node-group: workers");
      expect(s.user_data).toContain("dedicated");
      expect(s.user_data).not.toContain("auto: stable");
    }
    await settle();
    expect(await targetSize("workers")).toBe(3);
    const inst = await instances("workers");
    expect(inst.map((i) => i.id).sort()).toEqual(servers.map((s) => `cloudscale://${s.uuid}`).sort());
    await until("all running", async () => {
      await settle();
      return (await instances("workers")).every((i) => i.status.instanceState === "instanceRunning");
    });
  });

  test("NodeGroupForNode: by providerID, by name only; foreign and control-plane nodes get an empty id", async () => {
    const [s] = await ours("workers");
    const byId = await ca.call("NodeGroupForNode", { node: { providerID: `cloudscale://${s!.uuid}`, name: "whatever" } });
    expect(byId.nodeGroup).toMatchObject({ id: "workers", minSize: 0, maxSize: 6 });
    const byName = await ca.call("NodeGroupForNode", { node: { providerID: "", name: s!.name } });
    expect(byName.nodeGroup.id).toBe("workers");
    const { uuids } = { uuids: await sim.seed({ name: "foreign-{i}", count: 2, flavor: "flex-4-1", zone: "lpg1", tags: { owner: "someone-else" } }) };
    for (const node of [
      { providerID: `cloudscale://${uuids[0]}`, name: "foreign-1" },
      { providerID: "", name: "control-plane-1", labels: { "node-role.kubernetes.io/control-plane": "" } },
      { providerID: "aws:///eu-west-1a/i-123", name: "x" },
      { providerID: "cloudscale://not-a-uuid", name: "y" },
      { providerID: "", name: "" },
    ]) {
      const r = await ca.call("NodeGroupForNode", { node });
      expect(r.nodeGroup.id).toBe("");
    }
  });
});

describe("deleting nodes", () => {
  test("a foreign server is never deleted, alone or mixed with ours", async () => {
    await settle();
    const foreign = (await sim.state()).servers.find((s) => s.name === "foreign-1")!;
    const [mine] = await ours("workers");
    const before = (await sim.state()).servers.length;
    const e1 = await expectCode(ca.call("NodeGroupDeleteNodes", { id: "workers", nodes: [{ providerID: `cloudscale://${foreign.uuid}`, name: "foreign-1" }] }), grpc.status.PERMISSION_DENIED);
    expect(e1.details).toContain("nothing deleted");
    await expectCode(
      ca.call("NodeGroupDeleteNodes", { id: "workers", nodes: [{ providerID: `cloudscale://${mine!.uuid}`, name: mine!.name }, { providerID: `cloudscale://${foreign.uuid}`, name: "foreign-1" }] }),
      grpc.status.PERMISSION_DENIED,
    );
    await expectCode(ca.call("NodeGroupDeleteNodes", { id: "workers", nodes: [{ providerID: "", name: "control-plane-1" }] }), grpc.status.INVALID_ARGUMENT);
    await expectCode(ca.call("NodeGroupDeleteNodes", { id: "workers", nodes: [{ providerID: "gce://p/z/n", name: "n" }] }), grpc.status.INVALID_ARGUMENT);
    expect((await sim.state()).servers.length).toBe(before);
    expect(await targetSize("workers")).toBe(3);
  });

  test("a node of another group is refused; a group never goes below min", async () => {
    await ca.call("NodeGroupIncreaseSize", { id: "tuned", delta: 1 });
    const [t] = await until("tuned server", async () => {
      const s = await ours("tuned");
      return s.length === 1 && s;
    });
    await settle();
    await expectCode(ca.call("NodeGroupDeleteNodes", { id: "workers", nodes: [{ providerID: `cloudscale://${t!.uuid}`, name: t!.name }] }), grpc.status.INVALID_ARGUMENT);
    const e = await expectCode(ca.call("NodeGroupDeleteNodes", { id: "tuned", nodes: [{ providerID: `cloudscale://${t!.uuid}`, name: t!.name }] }), grpc.status.FAILED_PRECONDITION);
    expect(e.details).toContain("below its min size 1");
    expect(await ours("tuned")).toHaveLength(1);
  });

  test("our nodes are deleted (by providerID and by name); an already-gone server counts as deleted", async () => {
    await settle();
    const [a, b, c] = await ours("workers");
    await ca.call("NodeGroupDeleteNodes", { id: "workers", nodes: [{ providerID: `cloudscale://${a!.uuid}`, name: a!.name }, { providerID: "", name: b!.name }] });
    expect(await targetSize("workers")).toBe(1);
    expect((await ours("workers")).map((s) => s.uuid)).toEqual([c!.uuid]);
    // Deleted behind our back: DeleteNodes for it succeeds and nothing else is touched.
    await sim.vanish(c!.uuid);
    await ca.call("NodeGroupDeleteNodes", { id: "workers", nodes: [{ providerID: `cloudscale://${c!.uuid}`, name: c!.name }] });
    await settle();
    expect(await targetSize("workers")).toBe(0);
    expect((await sim.state()).servers.filter((s) => s.name.startsWith("foreign-"))).toHaveLength(2);
  });

  test("a server still booting (the API refuses to delete it while it is changing) is deleted once it can be", async () => {
    await sim.control("/_sim/config", { bootSeconds: 3 });
    try {
      await ca.call("NodeGroupIncreaseSize", { id: "workers", delta: 1 });
      const [booting] = await until("a booting server", async () => {
        const s = (await ours("workers")).filter((x) => x.status === "changing");
        return s.length === 1 && s;
      });
      await settle();
      const before = (await sim.counters())["DELETE /v1/servers/:uuid"] ?? 0;
      await ca.call("NodeGroupDeleteNodes", { id: "workers", nodes: [{ providerID: `cloudscale://${booting!.uuid}`, name: booting!.name }] });
      expect((await sim.counters())["DELETE /v1/servers/:uuid"]).toBe(before + 1); // refused with 400, as the real API does
      expect(await targetSize("workers")).toBe(0);
      expect((await instances("workers")).find((i) => i.id === `cloudscale://${booting!.uuid}`)?.status.instanceState).toBe("instanceDeleting");
      await until("the server is deleted once it has booted", async () => !(await ours("workers")).some((x) => x.uuid === booting!.uuid), 20_000, 200);
      await settle();
      expect(await instances("workers")).toEqual([]);
      expect(await targetSize("workers")).toBe(0);
    } finally {
      await sim.control("/_sim/config", { bootSeconds: 1 });
    }
  }, 30_000);

  test("DecreaseTargetSize cancels only creations that have not reached the cloud", async () => {
    await expectCode(ca.call("NodeGroupDecreaseTargetSize", { id: "workers", delta: 1 }), grpc.status.INVALID_ARGUMENT);
    await expectCode(ca.call("NodeGroupDecreaseTargetSize", { id: "workers", delta: -1 }), grpc.status.FAILED_PRECONDITION);
    // Slow creates: 4 run at once, the other 2 wait in the queue.
    await sim.faults({ rules: [{ method: "POST", path: "/v1/servers", latencyMs: 1500 }] });
    try {
      await ca.call("NodeGroupIncreaseSize", { id: "workers", delta: 6 });
      expect(await targetSize("workers")).toBe(6);
      await expectCode(ca.call("NodeGroupDecreaseTargetSize", { id: "workers", delta: -3 }), grpc.status.FAILED_PRECONDITION);
      await ca.call("NodeGroupDecreaseTargetSize", { id: "workers", delta: -2 });
      expect(await targetSize("workers")).toBe(4);
      await until("4 servers", async () => (await ours("workers")).length === 4);
      await sleep(500);
      expect(await ours("workers")).toHaveLength(4);
      await settle();
      expect(await targetSize("workers")).toBe(4);
    } finally {
      await sim.resetFaults();
    }
    await deleteAll("workers");
    expect(await ours("workers")).toHaveLength(0);
  });
});

describe("failed creations are reported, not forgotten", () => {
  test("quota exhausted: a creating instance with OutOfResources, cleared by DeleteNodes", async () => {
    const used = (await sim.state()).servers.length;
    await sim.control("/_sim/quota", { servers: used });
    try {
      await ca.call("NodeGroupIncreaseSize", { id: "workers", delta: 1 });
      const [failed] = await until("failed instance", async () => {
        const i = await instances("workers");
        return i.length === 1 && i[0]!.status.errorInfo?.errorCode ? i : undefined;
      });
      expect(failed!.status.instanceState).toBe("instanceCreating");
      expect(failed!.status.errorInfo).toMatchObject({ errorCode: "QUOTA_EXCEEDED", instanceErrorClass: 1 });
      expect(failed!.status.errorInfo!.errorMessage).toContain("Quota exceeded");
      await settle();
      expect(await instances("workers")).toHaveLength(1); // survives a Refresh
      // CA deletes the placeholder with a fake node whose name and providerID are the instance id.
      await ca.call("NodeGroupDeleteNodes", { id: "workers", nodes: [{ providerID: failed!.id, name: failed!.id, annotations: { "k8s.io/cluster-autoscaler/fake-node-reason": "create-error" } }] });
      expect(await instances("workers")).toHaveLength(0);
      expect(await targetSize("workers")).toBe(0);
    } finally {
      await sim.control("/_sim/quota", { servers: null });
    }
  });

  test("out of capacity is OutOfResources too; a rejected request is Other (99)", async () => {
    await sim.faults({ outOfCapacity: [{ flavor: "flex-8-2", zone: "lpg1" }] });
    await ca.call("NodeGroupIncreaseSize", { id: "workers", delta: 1 });
    const cap = await until("capacity failure", async () => (await instances("workers")).find((i) => i.status.errorInfo));
    expect(cap.status.errorInfo).toMatchObject({ errorCode: "OUT_OF_CAPACITY", instanceErrorClass: 1 });
    await sim.resetFaults();
    await ca.call("NodeGroupDecreaseTargetSize", { id: "workers", delta: -1 });
    expect(await targetSize("workers")).toBe(0);

    await sim.faults({ rules: [{ method: "POST", path: "/v1/servers", action: "error", status: 400, body: { image: "The image is broken." }, count: 1 }] });
    await ca.call("NodeGroupIncreaseSize", { id: "workers", delta: 1 });
    const other = await until("other failure", async () => (await instances("workers")).find((i) => i.status.errorInfo));
    expect(other.status.errorInfo).toMatchObject({ errorCode: "CREATE_FAILED", instanceErrorClass: 99 });
    expect(other.status.errorInfo!.errorMessage).toContain("The image is broken.");
    await ca.call("NodeGroupDeleteNodes", { id: "workers", nodes: [{ providerID: other.id, name: other.id }] });
    expect(await targetSize("workers")).toBe(0);
    expect(await ours("workers")).toHaveLength(0);
  });
});

describe("the template node", () => {
  test("nodeBytes (CA 1.35+) and nodeInfo (CA <= 1.34) carry the same valid Node", async () => {
    const res = await ca.call("NodeGroupTemplateNodeInfo", { id: "workers" });
    const node = NodeType.toObject(NodeType.decode(res.nodeBytes), { defaults: false }) as any;
    expect(res.nodeInfo.metadata.name).toBe(node.metadata.name);
    // The embedded legacy message carries the very same Node.
    const legacy = res.nodeInfo;
    expect(legacy.metadata.labels).toEqual(node.metadata.labels);
    expect(legacy.spec.taints.map((t: any) => [t.key, t.value, t.effect])).toEqual(node.spec.taints.map((t: any) => [t.key, t.value, t.effect]));
    for (const k of ["capacity", "allocatable"]) {
      expect(Object.fromEntries(Object.entries(legacy.status[k]).map(([r, q]: [string, any]) => [r, q.string]))).toEqual(Object.fromEntries(Object.entries(node.status[k]).map(([r, q]: [string, any]) => [r, q.string])));
    }
    const labels = node.metadata.labels;
    expect(labels).toMatchObject({
      "kubernetes.io/os": "linux",
      "kubernetes.io/arch": "amd64",
      "node.kubernetes.io/instance-type": "flex-8-2",
      "topology.kubernetes.io/region": "lpg",
      "topology.kubernetes.io/zone": "lpg1",
      "autoscaler-cloudscale/node-group": "workers",
      team: "blue",
    });
    expect(node.spec.taints).toEqual([{ key: "dedicated", value: "batch", effect: "NoSchedule" }]);
    const cap = node.status.capacity;
    const alloc = node.status.allocatable;
    expect(cap.cpu.string).toBe("2");
    expect(Number(cap.pods.string)).toBeGreaterThan(0);
    expect(alloc.pods.string).toBe(cap.pods.string);
    for (const k of ["cpu", "memory", "ephemeral-storage"]) {
      expect(cap[k].string).toMatch(/^\d+(m|Ki|Mi|Gi)?$/);
      expect(alloc[k].string).toMatch(/^\d+(m|Ki|Mi|Gi)?$/);
    }
    expect(node.status.conditions.find((c: any) => c.type === "Ready").status).toBe("True");
    await expectCode(ca.call("NodeGroupTemplateNodeInfo", { id: "nope" }), grpc.status.NOT_FOUND);
  });

  test("a GPU flavor carries its GPU resource and label; GPULabel and GetAvailableGPUTypes agree", async () => {
    const res = await ca.call("NodeGroupTemplateNodeInfo", { id: "gpu" });
    const node = NodeType.toObject(NodeType.decode(res.nodeBytes)) as any;
    expect(node.status.capacity["nvidia.com/gpu"].string).toBe("1");
    expect(node.status.allocatable["nvidia.com/gpu"].string).toBe("1");
    const { label } = await ca.call("GPULabel");
    expect(label).toBeTruthy();
    const gpuType = node.metadata.labels[label];
    expect(gpuType).toBeTruthy();
    const { gpuTypes } = await ca.call("GetAvailableGPUTypes");
    expect(Object.keys(gpuTypes)).toEqual([gpuType]);
  });
});

describe("options and prices", () => {
  test("GetOptions: UNIMPLEMENTED without overrides; every field answered with them, in both wire shapes", async () => {
    await expectCode(ca.call("NodeGroupGetOptions", { id: "workers", defaults: {} }), grpc.status.UNIMPLEMENTED);
    await expectCode(ca.call("NodeGroupGetOptions", { id: "nope", defaults: {} }), grpc.status.NOT_FOUND);
    const defaults = {
      scaleDownUtilizationThreshold: 0.5,
      scaleDownGpuUtilizationThreshold: 0.6,
      zeroOrMaxNodeScaling: false,
      ignoreDaemonSetsUtilization: true,
      scaleDownUnneededDuration: { seconds: 600, nanos: 0 },
      scaleDownUnreadyDuration: { seconds: 1200, nanos: 0 },
      MaxNodeProvisionDuration: { seconds: 900, nanos: 0 },
    };
    const { nodeGroupAutoscalingOptions: o } = await ca.call("NodeGroupGetOptions", { id: "tuned", defaults });
    expect(o.scaleDownUtilizationThreshold).toBe(0.3);
    expect(o.scaleDownGpuUtilizationThreshold).toBe(0.6);
    expect(o.ignoreDaemonSetsUtilization).toBe(true);
    expect(o.scaleDownUnneededDuration.seconds).toBe("300");
    expect(o.scaleDownUnreadyDuration.seconds).toBe("1200");
    expect(o.MaxNodeProvisionDuration.seconds).toBe("1200");
    expect(o.scaleDownUnneededTime.duration).toBe(String(300e9));
    expect(o.scaleDownUnreadyTime.duration).toBe(String(1200e9));
    expect(o.MaxNodeProvisionTime.duration).toBe(String(1200e9));
    // An old CA sends only the legacy fields.
    const legacy = await ca.call("NodeGroupGetOptions", { id: "tuned", defaults: { scaleDownUtilizationThreshold: 0.5, scaleDownGpuUtilizationThreshold: 0.5, scaleDownUnreadyTime: { duration: String(1800e9) } } });
    expect(legacy.nodeGroupAutoscalingOptions.scaleDownUnreadyTime.duration).toBe(String(1800e9));
    expect(legacy.nodeGroupAutoscalingOptions.scaleDownGpuUtilizationThreshold).toBe(0.5);
    // An operator's explicit CA-wide 0 (CA sends all of its defaults) comes back as 0, in both shapes.
    const zeros = await ca.call("NodeGroupGetOptions", { id: "tuned", defaults: { ...defaults, scaleDownGpuUtilizationThreshold: 0, scaleDownUnreadyDuration: { seconds: 0, nanos: 0 } } });
    expect(zeros.nodeGroupAutoscalingOptions.scaleDownGpuUtilizationThreshold).toBe(0);
    expect(zeros.nodeGroupAutoscalingOptions.scaleDownUnreadyDuration.seconds).toBe("0");
    expect(zeros.nodeGroupAutoscalingOptions.scaleDownUnreadyTime.duration).toBe("0");
    const oldZeros = await ca.call("NodeGroupGetOptions", { id: "tuned", defaults: { scaleDownUtilizationThreshold: 0, scaleDownGpuUtilizationThreshold: 0, scaleDownUnreadyTime: { duration: "0" } } });
    expect(oldZeros.nodeGroupAutoscalingOptions.scaleDownGpuUtilizationThreshold).toBe(0);
    expect(oldZeros.nodeGroupAutoscalingOptions.scaleDownUnreadyDuration.seconds).toBe("0");
  });

  test("a failed call is answered Trailers-Only (status in the one HEADERS frame); a good one with trailers", async () => {
    // CA asks GetOptions twice per node per loop; a group without options answers UNIMPLEMENTED, in one frame
    // (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md). grpc-js read it above; CA's Go client
    // reads it in test/ca.
    const session = h2Session(serve.port, pki);
    try {
      const id = (name: string) => grpcFrame(Buffer.concat([Buffer.from([0x0a, name.length]), Buffer.from(name)]));
      for (let i = 0; i < 2; i++) {
        const failed = await rawCall(session, { path: `${SERVICE}/NodeGroupGetOptions`, body: id("workers") });
        expect(failed).toMatchObject({ httpStatus: 200, grpcStatus: grpc.status.UNIMPLEMENTED, trailersOnly: true });
        expect(failed.grpcMessage).toContain(`"workers" has no options of its own`);
        expect(failed.body.length).toBe(0);
      }
      const missing = await rawCall(session, { path: `${SERVICE}/NodeGroupGetOptions`, body: id("nope") });
      expect(missing).toMatchObject({ grpcStatus: grpc.status.NOT_FOUND, trailersOnly: true });
      const good = await rawCall(session, { path: `${SERVICE}/NodeGroups` });
      expect(good).toMatchObject({ httpStatus: 200, grpcStatus: 0 });
      expect(good.trailersOnly).toBeUndefined();
      expect(good.body.length).toBeGreaterThan(5);
    } finally {
      session.close();
    }
  });

  test("a client that accepts gzip (as CA's binary does) gets plain answers, as from grpc-go's server", async () => {
    const session = h2Session(serve.port, pki);
    try {
      const template = await rawCall(session, {
        path: `${SERVICE}/NodeGroupTemplateNodeInfo`,
        headers: { "grpc-accept-encoding": "gzip", "grpc-timeout": "5S" },
        body: grpcFrame(Buffer.concat([Buffer.from([0x0a, 7]), Buffer.from("workers")])),
      });
      expect(template).toMatchObject({ httpStatus: 200, grpcStatus: 0 });
      expect(template.body.length).toBeGreaterThan(1024); // connect-es compresses answers from 1 KiB on
      expect(template.body[0]).toBe(0); // the compressed-flag byte of the one message
      expect(template.body.readUInt32BE(1)).toBe(template.body.length - 5);
    } finally {
      session.close();
    }
  });

  test("NodePrice and PodPrice: positive, bigger flavors cost more, new and legacy time fields", async () => {
    const hour = { start: 1_700_000_000, end: 1_700_003_600 };
    const price = async (labels: Record<string, string>, legacy = false) =>
      (await ca.call("PricingNodePrice", legacy
        ? { node: { name: "t", labels }, startTime: { seconds: hour.start }, endTime: { seconds: hour.end } }
        : { node: { name: "t", labels }, startTimestamp: { seconds: hour.start }, endTimestamp: { seconds: hour.end } })).price;
    const small = await price({ "node.kubernetes.io/instance-type": "flex-8-2" });
    const big = await price({ "node.kubernetes.io/instance-type": "flex-32-8" });
    expect(small).toBeGreaterThan(0);
    expect(big).toBeGreaterThan(small);
    expect(await price({ "node.kubernetes.io/instance-type": "flex-8-2" }, true)).toBeCloseTo(small, 9);
    const [t] = await ours("tuned");
    const tuned = (await ca.call("PricingNodePrice", { node: { providerID: `cloudscale://${t!.uuid}`, name: t!.name }, startTimestamp: { seconds: hour.start }, endTimestamp: { seconds: hour.end } })).price;
    expect(tuned).toBeCloseTo(0.25, 9); // the configured pricePerHour for one hour
    // CA's price expander prices the template node, which has no providerID: the group label decides.
    const template = NodeType.toObject(NodeType.decode((await ca.call("NodeGroupTemplateNodeInfo", { id: "tuned" })).nodeBytes)) as any;
    expect(await price({ ...template.metadata.labels })).toBeCloseTo(0.25, 9);
    await expectCode(ca.call("PricingNodePrice", { node: { name: "unlabelled" } }), grpc.status.NOT_FOUND);
    await expectCode(ca.call("PricingNodePrice", { node: { name: "t", labels: { "node.kubernetes.io/instance-type": "flex-8-2" } }, startTimestamp: { seconds: 10 }, endTimestamp: { seconds: 5 } }), grpc.status.INVALID_ARGUMENT);

    const pod = (cpu: string, memory: string) => ({ metadata: { name: "p" }, spec: { containers: [{ name: "c", resources: { requests: { cpu: { string: cpu }, memory: { string: memory } } } }] } });
    const podBytes = (p: object) => Buffer.from(PodType.encode(PodType.fromObject(p)).finish());
    const smallPod = (await ca.call("PricingPodPrice", { pod_bytes: podBytes(pod("500m", "128Mi")), startTimestamp: { seconds: hour.start }, endTimestamp: { seconds: hour.end } })).price;
    const bigPod = (await ca.call("PricingPodPrice", { pod_bytes: podBytes(pod("2", "4Gi")), startTimestamp: { seconds: hour.start }, endTimestamp: { seconds: hour.end } })).price;
    expect(smallPod).toBeGreaterThan(0);
    expect(bigPod).toBeGreaterThan(smallPod);
    const legacyPod = (await ca.call("PricingPodPrice", { pod: pod("500m", "128Mi"), startTime: { seconds: hour.start }, endTime: { seconds: hour.end } })).price;
    expect(legacyPod).toBeCloseTo(smallPod, 9);
    await expectCode(ca.call("PricingPodPrice", {}), grpc.status.INVALID_ARGUMENT);
    await expectCode(ca.call("PricingPodPrice", { pod_bytes: Buffer.from([0xff, 0xff, 0xff]) }), grpc.status.INVALID_ARGUMENT);
    // A quantity that is not one: the caller's mistake, not ours (before: INTERNAL with a stack trace in the log).
    const bad = await expectCode(ca.call("PricingPodPrice", { pod_bytes: podBytes(pod("lots", "128Mi")) }), grpc.status.INVALID_ARGUMENT);
    expect(bad.details).toContain('invalid quantity "lots"');
    expect(serve.output()).not.toContain("unexpected error");
  });

  test("Cleanup answers", async () => {
    expect(await ca.call("Cleanup")).toEqual({});
  });
});

describe("the server", () => {
  test("an unknown method answers UNIMPLEMENTED", async () => {
    const err = await new Promise<grpc.ServiceError>((resolve) =>
      ca.raw.makeUnaryRequest("/clusterautoscaler.cloudprovider.v1.externalgrpc.CloudProvider/Nope", (x: Buffer) => x, (x: Buffer) => x, Buffer.alloc(0), (e) => resolve(e as grpc.ServiceError)),
    );
    expect(err.code).toBe(grpc.status.UNIMPLEMENTED);
  });

  test("oversized and malformed input: right codes, bounded messages, nothing touched", async () => {
    const before = (await sim.state()).servers.length;
    const e = await expectCode(ca.call("NodeGroupTargetSize", { id: "x".repeat(100_000) }), grpc.status.INVALID_ARGUMENT);
    expect(e.details.length).toBeLessThanOrEqual(1024);
    const nodes = Array.from({ length: 1001 }, (_, i) => ({ providerID: `cloudscale://00000000-0000-0000-0000-${String(i).padStart(12, "0")}`, name: `n${i}` }));
    await expectCode(ca.call("NodeGroupDeleteNodes", { id: "workers", nodes }), grpc.status.INVALID_ARGUMENT);
    const garbage = await new Promise<grpc.ServiceError>((resolve) =>
      ca.raw.makeUnaryRequest("/clusterautoscaler.cloudprovider.v1.externalgrpc.CloudProvider/NodeGroupIncreaseSize", (x: Buffer) => x, (x: Buffer) => x, Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01]), (err) => resolve(err as grpc.ServiceError)),
    );
    // As grpc-go does for a request it cannot unmarshal: INTERNAL, saying so.
    expect(garbage.code).toBe(grpc.status.INTERNAL);
    expect(garbage.details).toContain("parse binary");
    expect((await sim.state()).servers.length).toBe(before);
  });

  test("clients without our client certificate are refused", async () => {
    for (const which of ["none", "rogue"] as const) {
      const c = connect(serve.port, pki, { as: which });
      await expectCode(c.call("NodeGroups", {}, { deadlineMs: 3000 }), grpc.status.UNAVAILABLE);
      c.close();
    }
    const plain = connect(serve.port);
    const err = await plain.call("NodeGroups", {}, { deadlineMs: 3000 }).catch((e) => e);
    expect(err.code).toBeOneOf([grpc.status.UNAVAILABLE, grpc.status.INTERNAL, grpc.status.DEADLINE_EXCEEDED]);
    plain.close();
  });

  test("a restart loses nothing: target size comes back from the cloud", async () => {
    await ca.call("NodeGroupIncreaseSize", { id: "workers", delta: 2 });
    await until("2 servers", async () => (await ours("workers")).length === 2);
    await serve.stop("SIGKILL");
    ca.close();
    serve = await startServe({ configPath: serve.configPath, apiUrl: sim.apiUrl, tls: { cert: pki.serverCert, key: pki.serverKey, clientCa: pki.caCert } });
    ca = connect(serve.port, pki);
    await settle();
    expect(await targetSize("workers")).toBe(2);
    expect(await targetSize("tuned")).toBe(1);
    await deleteAll("workers");
    expect(await ours("workers")).toHaveLength(0);
  });
});

describe("deleting a creation CA saw on its way", () => {
  test("a pending instance id CA read while the create was on its way: DeleteNodes after the POST was answered deletes the server", async () => {
    await deleteAll("workers");
    await sim.faults({ rules: [{ method: "POST", path: "/v1/servers", latencyMs: 1500 }] });
    try {
      await ca.call("NodeGroupIncreaseSize", { id: "workers", delta: 1 });
      const [pending] = await instances("workers");
      expect(pending!.id).toStartWith("cloudscale://pending/"); // what CA holds on to
      // The POST is answered: the provider now knows the server's UUID.
      await until("the create answered", async () => (await instances("workers"))[0]?.id.startsWith("cloudscale://pending/") === false, 10_000, 100);
      expect(await ours("workers")).toHaveLength(1);
      await ca.call("NodeGroupDeleteNodes", { id: "workers", nodes: [{ providerID: pending!.id, name: "" }] }); // OK ...
      // ... means the server goes (before: OK, and the server kept running with target 1).
      await until("the server deleted", async () => (await ours("workers")).length === 0, 20_000, 200);
      await settle();
      expect(await targetSize("workers")).toBe(0);
    } finally {
      await sim.resetFaults();
    }
  });
});
