// docs/operating.md, "3. Talos extension service", the blocks that can run
// here, as they are and in order, in a podman container whose root is a
// copy-on-write view of this machine (so the clone, its tools and caches are
// there and what the blocks write stays out of the checkout). Then what they
// produced is checked against what Talos and Cluster Autoscaler read:
//   - the ExtensionServiceConfig document: the kind, name and mountPaths of
//     packaging/talos/extension-service-config.example.yaml, the files it was
//     made from, the token; the server certificate's IP SAN is the host of the
//     cloud-config address and CA's client certificate verifies against the
//     client CA the service gets;
//   - `kustomize build` of the walk-through's kustomization (deploy/ with the
//     component deploy/talos): CA's objects only, CA on the control-plane
//     nodes with hostNetwork, the cloud-config's address where the extension
//     listens (its service definition's default), the client certificate's
//     paths in the Secret `kubectl create secret --from-file=pki/cluster-autoscaler/` makes.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "./lib";
import { cloneMount, podman, podmanEnv, podmanOk, removeContainers, track, uniqueName } from "./podman";
import { walkthrough } from "./walkthrough";

const blocks = walkthrough("## 3. Talos extension service");
const TOKEN = "walkthrough-talos-token";
const KUSTOMIZE = "sigs.k8s.io/kustomize/kustomize/v5@v5.7.1";
let ctr = "";
const report: string[] = [];

async function sh(script: string, timeoutMs = 300000) {
  const r = await podman(["exec", "-w", REPO_ROOT, "-e", `CLOUDSCALE_API_TOKEN=${TOKEN}`, ctr, "bash", "-euo", "pipefail", "-c", script], { timeoutMs });
  if (r.code !== 0) throw new Error(`in the container: ${script}\nexit ${r.code}\n${r.out}\n${r.err}`);
  return r.out;
}

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error("this proof needs root (podman)");
  podmanEnv();
  ctr = track(uniqueName("acs-talos-walk"));
  await podmanOk(["run", "-d", "--name", ctr, "--network", "host", "--tmpfs", "/run:rw,notmpcopyup", "--tmpfs", "/tmp:rw,notmpcopyup", ...cloneMount(), "--rootfs", "/:O", "sleep", "infinity"]);
  // What the operator brings: the worker machine configuration (talosctl gen config).
  await sh("mkdir -p userdata && cp deploy/talos-worker.example.yaml userdata/workers.yaml");
  for (const b of blocks.filter((x) => x.run)) {
    const t0 = performance.now();
    await sh(b.script);
    report.push(`docs/operating.md:${b.line} ran in ${((performance.now() - t0) / 1000).toFixed(1)}s: ${b.script.split("\n")[0]}`);
  }
}, 900000);

afterAll(async () => {
  await removeContainers();
  if (report.length) console.log(["Talos walk-through:", ...report.map((l) => "  " + l)].join("\n"));
}, 180000);

describe("docs/operating.md, way 3", () => {
  test("every sh block says whether a test runs it; the ones run here build, configure and render", () => {
    expect(blocks.filter((b) => b.run).map((b) => b.script.split("\n")[0])).toEqual([
      expect.stringContaining("release.sh"),
      expect.stringContaining("config.yaml"),
      expect.stringContaining("make-certs.sh"),
      expect.stringContaining("validate"),
      expect.stringContaining("cluster/kustomization.yaml"),
    ]);
  });

  test("the ExtensionServiceConfig: the example's shape, the operator's files, the token; certificates for CA's address", async () => {
    const doc = Bun.YAML.parse(await sh("cat autoscaler-cloudscale.patch.yaml")) as any;
    const example = Bun.YAML.parse(readFileSync(join(REPO_ROOT, "packaging/talos/extension-service-config.example.yaml"), "utf8")) as any;
    expect({ apiVersion: doc.apiVersion, kind: doc.kind, name: doc.name }).toEqual({ apiVersion: example.apiVersion, kind: example.kind, name: example.name });
    expect(doc.configFiles.map((f: any) => f.mountPath)).toEqual(example.configFiles.map((f: any) => f.mountPath));
    expect(doc.environment).toEqual([`CLOUDSCALE_API_TOKEN=${TOKEN}`]);
    const content = (p: string) => doc.configFiles.find((f: any) => f.mountPath === p).content;
    expect(content("/etc/autoscaler-cloudscale/config.yaml")).toBe(await sh("cat config.yaml"));
    expect(content("/etc/autoscaler-cloudscale/userdata/workers.yaml")).toBe(await sh("cat userdata/workers.yaml"));
    expect(content("/etc/autoscaler-cloudscale/tls/tls.key")).toBe(await sh("cat pki/provider/tls.key"));
    // The server certificate the service gets names the host of CA's address; CA's client certificate verifies against its client CA.
    const crt = content("/etc/autoscaler-cloudscale/tls/tls.crt");
    const ca = content("/etc/autoscaler-cloudscale/tls/client-ca.crt");
    await sh(`cat >/tmp/served.crt <<'EOF'\n${crt}EOF\ncat >/tmp/client-ca.crt <<'EOF'\n${ca}EOF`);
    expect(await sh("openssl x509 -noout -ext subjectAltName -in /tmp/served.crt")).toContain("IP Address:127.0.0.1");
    expect(await sh("openssl verify -CAfile /tmp/client-ca.crt pki/cluster-autoscaler/tls.crt")).toContain("OK");
    expect(await sh("openssl verify -CAfile pki/cluster-autoscaler/ca.crt /tmp/served.crt")).toContain("OK");
  });

  test("the kustomization of step 5 renders CA alone, on the control-plane nodes' host network, pointed at the extension", async () => {
    const t0 = performance.now();
    const go = Bun.which("go") ?? "/usr/local/go/bin/go";
    const out = await sh(`GOFLAGS=-mod=mod ${go} run ${KUSTOMIZE} build cluster`, 600000);
    report.push(`kustomize build cluster (deploy/ + component deploy/talos) in ${((performance.now() - t0) / 1000).toFixed(1)}s`);
    const objs = (Bun.YAML.parse(out) as any[]).filter(Boolean);
    const names = objs.map((o) => `${o.kind}/${o.metadata.name}`);
    expect(names.filter((n) => n.includes("autoscaler-cloudscale") && !n.startsWith("Secret/autoscaler-cloudscale-token"))).toEqual([]);
    expect(objs.filter((o) => String(o.apiVersion).startsWith("cert-manager.io"))).toEqual([]);
    const dep = objs.find((o) => o.kind === "Deployment" && o.metadata.name === "cluster-autoscaler");
    const pod = dep.spec.template.spec;
    expect({ hostNetwork: pod.hostNetwork, dnsPolicy: pod.dnsPolicy }).toEqual({ hostNetwork: true, dnsPolicy: "ClusterFirstWithHostNet" });
    expect(pod.nodeSelector).toEqual({ "node-role.kubernetes.io/control-plane": "" });
    expect(pod.tolerations).toContainEqual(expect.objectContaining({ key: "node-role.kubernetes.io/control-plane", effect: "NoSchedule" }));
    const cc = objs.find((o) => o.kind === "ConfigMap" && o.metadata.name === "cluster-autoscaler-cloud-config");
    const cloud = Bun.YAML.parse(cc.data["cloud-config.yaml"]) as any;
    // The extension listens where its service definition says by default.
    const service = Bun.YAML.parse(readFileSync(join(REPO_ROOT, "packaging/talos/autoscaler-cloudscale.yaml"), "utf8")) as any;
    expect(service.container.environment).toContain(`AUTOSCALER_CLOUDSCALE_LISTEN=${cloud.address}`);
    expect(cloud.address).toBe("127.0.0.1:8086");
    // key, cert and cacert are files of the client-tls Secret, whose keys are the files of pki/cluster-autoscaler/.
    const c = pod.containers[0];
    const mount = c.volumeMounts.find((m: any) => m.name === pod.volumes.find((v: any) => v.secret?.secretName === "cluster-autoscaler-client-tls").name);
    const files = (await sh("ls pki/cluster-autoscaler")).trim().split("\n").sort();
    expect(files).toEqual(["ca.crt", "tls.crt", "tls.key"]);
    for (const k of ["key", "cert", "cacert"]) expect(files.map((f) => `${mount.mountPath}/${f}`)).toContain(cloud[k]);
    report.push(`rendered: ${names.join(", ")}`);
  }, 600000);
});
