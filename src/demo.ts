// `demo`: the embedded default. Starts the cloudscale.ch simulator, the
// provider (gRPC on loopback) and a scripted autoscaler that behaves like CA:
// 50 pending pods of 500m / 128Mi, scale a node group up from zero until they
// fit, wait for the servers to run, then scale back to zero when the pods go.
import { parseArgs } from "node:util";
import { parseAllDocuments } from "yaml";
import { fromBinary } from "@bufbuild/protobuf";
import { createClient as createRpcClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { CloudProvider, InstanceStatus_InstanceState as State } from "./gen/clusterautoscaler/cloudprovider/v1/externalgrpc/externalgrpc_pb";
import { NodeSchema } from "./gen/k8s.io/api/core/v1/generated_pb";
import { sleep } from "./clock";
import { parseConfig } from "./config";
import { configureLog, registerSecret } from "./log";
import { createClient } from "./cloudscale";
import { createProvider } from "./provider";
import { startGrpcServer } from "./server";
import { routes } from "./service";
import { startSimulator } from "./sim/server";
import { parseQuantity } from "./quantity";

const DEMO_USAGE = `Usage: autoscaler-cloudscale demo [--pods N] [--flavor SLUG] [--boot-seconds S] [--verbose]

Runs everything on loopback, no account needed: the built-in cloudscale.ch simulator, the provider
serving gRPC, and a scripted autoscaler that asks it to fit N pending pods (500m CPU, 128Mi each)
into node group "workers" from zero, waits until the servers run, then scales back to zero.
`;

const TALOS_WORKER = `version: v1alpha1
machine:
  type: worker
  token: demo.token0000000000
  ca:
    crt: ""
  kubelet:
    image: ghcr.io/siderolabs/kubelet:v1.36.0
cluster:
  controlPlane:
    endpoint: https://demo-control-plane:6443
  clusterName: demo
  token: demo00.0000000000000000
---
apiVersion: v1alpha1
kind: HostnameConfig
auto: stable
`;

const say = (line: string) => process.stdout.write(`${line}\n`);

export async function runDemo(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      pods: { type: "string", default: "50" },
      flavor: { type: "string", default: "flex-8-2" },
      "boot-seconds": { type: "string", default: "3" },
      verbose: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(DEMO_USAGE);
    return 0;
  }
  const pods = Number(values.pods);
  const bootSeconds = Number(values["boot-seconds"]);
  if (!Number.isInteger(pods) || pods < 1 || pods > 2000) throw new Error("--pods must be a whole number from 1 to 2000");
  if (!Number.isFinite(bootSeconds) || bootSeconds < 0 || bootSeconds > 60) throw new Error("--boot-seconds must be from 0 to 60");
  configureLog({ level: values.verbose ? "info" : "warn" });
  const started = performance.now();
  const t = () => `[${((performance.now() - started) / 1000).toFixed(1).padStart(5)}s]`;

  const sim = await startSimulator({ listen: "127.0.0.1:0", bootSeconds });
  const token = "demo-token-not-secret";
  registerSecret(token);
  say(`${t()} cloudscale.ch simulator on ${sim.apiUrl} (servers boot in ${bootSeconds}s)`);

  const config = parseConfig(`clusterName: demo
startupGrace: 0s
nodeGroups:
  - name: workers
    flavor: ${values.flavor}
    image: custom:talos-1.13.2
    zone: lpg1
    min: 0
    max: 40
    volumeSizeGb: 50
    labels: {workload: demo}
`);
  config.nodeGroups[0]!.userData = TALOS_WORKER;
  config.nodeGroups[0]!.userDataFormat = "talos";
  const provider = createProvider({ config, cloud: createClient({ url: sim.apiUrl, token }), verifyDelayMs: 500 });
  await provider.start();
  const server = await startGrpcServer({ host: "127.0.0.1", port: 0, routes: routes(provider) });
  say(`${t()} provider serving gRPC (h2c) on 127.0.0.1:${server.port}, cluster "demo", node group "workers" (${values.flavor}, 0..40)`);

  const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${server.port}` });
  const ca = createRpcClient(CloudProvider, transport);
  let exit = 0;
  try {
    await ca.refresh({});
    const { nodeGroups } = await ca.nodeGroups({});
    say(`${t()} autoscaler sees node groups: ${nodeGroups.map((g) => `${g.id} [${g.minSize}..${g.maxSize}]`).join(", ")}`);
    const group = "workers";
    say(`${t()} ${pods} pods pending (500m CPU, 128Mi each); node group "${group}" has ${(await ca.nodeGroupTargetSize({ id: group })).targetSize} nodes`);

    const { nodeBytes } = await ca.nodeGroupTemplateNodeInfo({ id: group });
    const template = fromBinary(NodeSchema, nodeBytes);
    const alloc = template.status!.allocatable;
    const cpuMillis = parseQuantity(alloc.cpu!.string) * 1000;
    const memory = parseQuantity(alloc.memory!.string);
    const maxPods = parseQuantity(alloc.pods!.string);
    const perNode = Math.min(Math.floor(cpuMillis / 500), Math.floor(memory / (128 * 1024 * 1024)), maxPods);
    if (perNode < 1) throw new Error(`a ${values.flavor} node cannot fit one pod (allocatable cpu ${alloc.cpu!.string}, memory ${alloc.memory!.string})`);
    const needed = Math.ceil(pods / perNode);
    say(`${t()} template node: capacity cpu=${template.status!.capacity.cpu!.string} memory=${template.status!.capacity.memory!.string}, allocatable cpu=${alloc.cpu!.string} memory=${alloc.memory!.string} pods=${alloc.pods!.string}`);
    say(`${t()} estimate: ${perNode} pods fit on one node → ${needed} node(s) needed`);

    const ack = performance.now();
    await ca.nodeGroupIncreaseSize({ id: group, delta: needed });
    say(`${t()} IncreaseSize(${group}, +${needed}) acknowledged in ${(performance.now() - ack).toFixed(0)} ms; target size now ${(await ca.nodeGroupTargetSize({ id: group })).targetSize}`);

    let lastLine = "";
    const deadline = performance.now() + (bootSeconds + 60) * 1000;
    for (;;) {
      await ca.refresh({});
      const { instances } = await ca.nodeGroupNodes({ id: group });
      const running = instances.filter((i) => i.status?.instanceState === State.instanceRunning).length;
      const creating = instances.filter((i) => i.status?.instanceState === State.instanceCreating).length;
      const failed = instances.filter((i) => i.status?.errorInfo?.errorCode).length;
      const line = `${running} running, ${creating} creating, ${failed} failed`;
      if (line !== lastLine) say(`${t()} node group "${group}": ${line}`);
      lastLine = line;
      if (failed) throw new Error(`${failed} server(s) failed to create`);
      if (running === needed) break;
      if (performance.now() > deadline) throw new Error(`servers did not all run in time (${line})`);
      await sleep(500);
    }
    const state = (await (await fetch(`${sim.origin}/_sim/state`)).json()) as { servers: { name: string; status: string; tags: Record<string, string>; user_data?: string }[] };
    const ours = state.servers.filter((s) => s.tags["autoscaler-cloudscale-cluster"] === "demo");
    say(`${t()} all ${pods} pods can run: ${ours.length} servers in the cloud, e.g. ${ours.slice(0, 3).map((s) => s.name).join(", ")}`);
    const sample = ours[0];
    if (sample?.user_data) {
      const docs = parseAllDocuments(sample.user_data).map((d) => d.toJS() as Record<string, any>);
      const host = docs.find((d) => d?.kind === "HostnameConfig")?.hostname ?? docs[0]?.machine?.network?.hostname;
      const labels = Object.entries(docs[0]?.machine?.nodeLabels ?? {}).map(([k, v]) => `${k}=${v}`).join(", ");
      say(`${t()} ${sample.name}'s Talos config was patched: hostname ${host}, node labels ${labels}`);
    }

    say(`${t()} the pods are gone; the autoscaler removes the now-empty nodes`);
    const { instances } = await ca.nodeGroupNodes({ id: group });
    for (let i = 0; i < instances.length; i += 10) {
      const batch = instances.slice(i, i + 10).map((x) => ({ providerID: x.id, name: ours.find((s) => x.id.endsWith(s.name))?.name ?? "" }));
      await ca.nodeGroupDeleteNodes({ id: group, nodes: batch });
    }
    await ca.refresh({});
    const after = (await ca.nodeGroupTargetSize({ id: group })).targetSize;
    const left = ((await (await fetch(`${sim.origin}/_sim/state`)).json()) as typeof state).servers.filter((s) => s.tags["autoscaler-cloudscale-group"] === group).length;
    say(`${t()} node group "${group}" target size ${after}; servers of the group left in the cloud: ${left}`);
    if (after !== 0 || left !== 0) throw new Error("scale-down did not reach zero");
    say(`${t()} demo finished: scaled 0 → ${needed} → 0`);
  } catch (e) {
    say(`${t()} demo failed: ${(e as Error).message}`);
    exit = 1;
  } finally {
    await server.shutdown(1000);
    provider.stop();
    await sim.stop();
  }
  return exit;
}
