// Cross-references of the manifests under deploy/: every YAML parses, the
// kustomization lists what exists, and names, keys, mounted paths, ports and
// certificate SANs agree between the provider, its Service, cert-manager and
// Cluster Autoscaler's cloud-config and Deployment. The scrape configuration
// (pod annotations, monitoring/) must reach the metrics port, and the values
// for CA's Helm chart (helm/) must mount what the manifests provide. Both pods
// run on control-plane nodes, CA's ServiceAccount and RBAC are here, and the
// API token's Secret is not (the operator creates it; nothing here replaces it).
// Rendering uses the real kustomize inside kubectl (built by scripts/e2e-build.sh);
// test/e2e applies the renderings to the real kube-apiserver.
import { describe, expect, test } from "bun:test";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, posix } from "node:path";
import { parseYamlDocs, parseYamlStream, REPO_ROOT, readYamlTree, upstreamTool, WORK } from "./lib";

const KUBECTL = upstreamTool("kubectl");

const DEPLOY = join(REPO_ROOT, "deploy");
const all = readYamlTree(DEPLOY);
const kustomization = all.find((d) => d.doc.kind === "Kustomization")!.doc;
const talosFile = join(DEPLOY, "talos-worker.example.yaml");
// The kustomization's own objects are the top level; monitoring/ and helm/ are checked below.
const k8s = all.filter((d) => dirname(d.file) === DEPLOY && d.file !== talosFile && d.doc.kind !== "Kustomization");
const ns = kustomization.namespace as string;

const find = (kind: string, name: string) => k8s.find((d) => d.doc.kind === kind && d.doc.metadata?.name === name)?.doc;
const generatedSecrets = new Map<string, string[]>(
  (kustomization.secretGenerator ?? []).map((g: any) => [g.name, (g.files ?? []).map((f: string) => f.split("=")[0])]),
);
const OPERATOR_TOKEN_SECRET = "autoscaler-cloudscale-token";
const certificates = k8s.filter((d) => d.doc.kind === "Certificate").map((d) => d.doc);
const CERT_KEYS = ["tls.crt", "tls.key", "ca.crt"];

/** Keys a Secret/ConfigMap named `name` will have, from the manifests, the generator or cert-manager. */
function keysOf(kind: "Secret" | "ConfigMap", name: string): string[] | undefined {
  const r = find(kind, name);
  if (r) return Object.keys({ ...(r.data ?? {}), ...(r.stringData ?? {}) });
  if (kind === "Secret" && generatedSecrets.has(name)) return generatedSecrets.get(name);
  if (kind === "Secret" && certificates.some((c) => c.spec.secretName === name)) return CERT_KEYS;
  return undefined;
}

/** The file behind an absolute path in a container: [volume source kind, name, key] or undefined. */
function fileAt(pod: any, container: any, path: string): { kind: "Secret" | "ConfigMap"; name: string; key: string } | undefined {
  for (const vm of container.volumeMounts ?? []) {
    const vol = pod.volumes.find((v: any) => v.name === vm.name);
    const src = vol.secret ? { kind: "Secret" as const, name: vol.secret.secretName } : { kind: "ConfigMap" as const, name: vol.configMap.name };
    if (vm.subPath && path === vm.mountPath) return { ...src, key: vm.subPath };
    if (!vm.subPath && path.startsWith(vm.mountPath + "/")) return { ...src, key: posix.relative(vm.mountPath, path) };
  }
  return undefined;
}

/** `kubectl kustomize DIR` (the real kustomize); the rendered objects. */
function kustomizeBuild(dir: string): any[] {
  mkdirSync(WORK, { recursive: true });
  const r = Bun.spawnSync([KUBECTL, "kustomize", dir], { cwd: WORK, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`kubectl kustomize ${dir} failed (${r.exitCode}):\n${r.stderr.toString()}`);
  return parseYamlStream(r.stdout.toString());
}

/**
 * `kustomize build` of a copy of deploy/ with the commented `components:` entries `names` enabled,
 * the way docs and comments tell an operator to enable them.
 */
function buildWithComponents(names: string[]): any[] {
  const copy = join(WORK, `deploy-with-${names.join("-")}`);
  rmSync(copy, { recursive: true, force: true });
  cpSync(DEPLOY, copy, { recursive: true });
  const file = join(copy, "kustomization.yaml");
  let text = readFileSync(file, "utf8");
  if (!/^# components:$/m.test(text)) throw new Error("deploy/kustomization.yaml has no commented `# components:` line");
  text = text.replace(/^# components:$/m, "components:");
  for (const n of names) {
    const line = new RegExp(`^#(\\s+- ${n})$`, "m");
    if (!line.test(text)) throw new Error(`deploy/kustomization.yaml does not offer component ${n}`);
    text = text.replace(line, "$1");
  }
  writeFileSync(file, text);
  return kustomizeBuild(copy);
}

function argValue(args: string[], flag: string): string {
  const i = args.indexOf(flag);
  if (i >= 0 && args[i + 1] !== undefined) return args[i + 1]!;
  const eq = args.find((a) => a.startsWith(flag + "="));
  if (eq) return eq.slice(flag.length + 1);
  throw new Error(`${flag} not in ${args.join(" ")}`);
}

const provider = find("Deployment", "autoscaler-cloudscale");
const providerPod = provider.spec.template.spec;
const providerCtr = providerPod.containers[0];
const service = find("Service", "autoscaler-cloudscale");
const ca = find("Deployment", "cluster-autoscaler");
const caPod = ca.spec.template.spec;
const caCtr = caPod.containers[0];
const caArgs: string[] = [...(caCtr.command ?? []), ...(caCtr.args ?? [])];
const cloudConfigPath = argValue(caArgs, "--cloud-config");
const cloudConfigRef = fileAt(caPod, caCtr, cloudConfigPath)!;
const cloudConfig = Bun.YAML.parse(find(cloudConfigRef.kind, cloudConfigRef.name).data[cloudConfigRef.key]) as any;
const [caHost, caPort] = [cloudConfig.address.replace(/:\d+$/, ""), Number(cloudConfig.address.split(":").pop())];

describe("deploy/ manifests", () => {
  test("every YAML parses, every Kubernetes object has apiVersion, kind and a name", () => {
    expect(all.length).toBeGreaterThan(5);
    for (const { file, doc } of k8s) {
      expect({ file, ok: typeof doc.apiVersion === "string" && typeof doc.kind === "string" && typeof doc.metadata?.name === "string" }).toEqual({ file, ok: true });
      // Objects take the kustomization's namespace; none may pin another.
      if (doc.metadata.namespace !== undefined) expect(doc.metadata.namespace).toBe(ns);
    }
  });

  test("the kustomization lists every manifest file and its generator inputs exist", () => {
    const files = readdirSync(DEPLOY).filter((f) => /\.ya?ml$/.test(f) && f !== "kustomization.yaml");
    const generatorInputs = (kustomization.secretGenerator ?? []).flatMap((g: any) => (g.files ?? []).map((f: string) => f.split("=").pop()));
    for (const f of [...kustomization.resources, ...generatorInputs]) expect(existsSync(join(DEPLOY, f))).toBe(true);
    expect([...kustomization.resources, ...generatorInputs].sort()).toEqual(files.sort());
    expect(kustomization.images.map((i: any) => i.name)).toContain(providerCtr.image);
  });

  test("the Talos worker example is a worker machine configuration", () => {
    const docs = parseYamlDocs(talosFile).map((d) => d.doc);
    const v1 = docs.find((d) => d.version === "v1alpha1" && d.machine)!;
    expect(v1.machine.type).toBe("worker");
    expect(v1.cluster.controlPlane.endpoint).toMatch(/^https:\/\//);
    for (const d of docs.filter((x) => x !== v1)) expect(d.apiVersion).toBe("v1alpha1");
  });

  test("every volume, env reference and mounted path of both Deployments resolves", () => {
    for (const [pod, ctr] of [
      [providerPod, providerCtr],
      [caPod, caCtr],
    ]) {
      for (const vm of ctr.volumeMounts) expect(pod.volumes.map((v: any) => v.name)).toContain(vm.name);
      for (const v of pod.volumes) {
        const kind = v.secret ? "Secret" : "ConfigMap";
        const name = v.secret?.secretName ?? v.configMap?.name;
        expect({ volume: v.name, name, keys: keysOf(kind, name) !== undefined }).toEqual({ volume: v.name, name, keys: true });
      }
      for (const vm of ctr.volumeMounts.filter((m: any) => m.subPath)) {
        const v = pod.volumes.find((x: any) => x.name === vm.name);
        expect(keysOf(v.secret ? "Secret" : "ConfigMap", v.secret?.secretName ?? v.configMap?.name)).toContain(vm.subPath);
      }
      for (const e of ctr.env ?? []) {
        const ref = e.valueFrom?.secretKeyRef ?? e.valueFrom?.configMapKeyRef;
        // The token's Secret is the operator's own, made by hand (see the test about it below).
        if (ref && ref.name !== OPERATOR_TOKEN_SECRET) expect(keysOf(e.valueFrom.secretKeyRef ? "Secret" : "ConfigMap", ref.name)).toContain(ref.key);
      }
    }
  });

  test("the provider's file arguments and its config's userDataFile are mounted files", () => {
    const args: string[] = providerCtr.args;
    for (const flag of ["--config", "--tls-cert", "--tls-key", "--tls-client-ca"]) {
      const path = argValue(args, flag);
      const ref = fileAt(providerPod, providerCtr, path);
      expect({ flag, path, mounted: ref !== undefined }).toEqual({ flag, path, mounted: true });
      expect(keysOf(ref!.kind, ref!.name)).toContain(ref!.key);
    }
    const cfgRef = fileAt(providerPod, providerCtr, argValue(args, "--config"))!;
    const cfg = Bun.YAML.parse(find(cfgRef.kind, cfgRef.name).data[cfgRef.key]) as any;
    for (const g of cfg.nodeGroups) {
      if (!g.userDataFile) continue;
      const ref = fileAt(providerPod, providerCtr, g.userDataFile);
      expect({ group: g.name, mounted: ref !== undefined }).toEqual({ group: g.name, mounted: true });
      expect(keysOf(ref!.kind, ref!.name)).toContain(ref!.key);
    }
    // The server certificate and the client CA come from the same cert-manager CA.
    const tls = fileAt(providerPod, providerCtr, argValue(args, "--tls-cert"))!;
    const clientCa = fileAt(providerPod, providerCtr, argValue(args, "--tls-client-ca"))!;
    expect(clientCa.name).toBe(tls.name);
    expect(clientCa.key).toBe("ca.crt");
  });

  test("ports agree: listen flags, container ports, probes, Service and CA's address", () => {
    const args: string[] = providerCtr.args;
    const listenPort = Number(argValue(args, "--listen").split(":").pop());
    const healthPort = Number(argValue(args, "--health-listen").split(":").pop());
    expect(argValue(args, "--listen").startsWith("0.0.0.0:")).toBe(true);
    const portNamed = (n: string) => providerCtr.ports.find((p: any) => p.name === n)?.containerPort;
    expect(portNamed("grpc")).toBe(listenPort);
    expect(portNamed("health")).toBe(healthPort);
    for (const probe of [providerCtr.readinessProbe, providerCtr.livenessProbe]) {
      const p = probe.httpGet.port;
      expect(typeof p === "number" ? p : portNamed(p)).toBe(healthPort);
      expect(["/healthz", "/readyz"]).toContain(probe.httpGet.path);
    }
    const sp = service.spec.ports.find((p: any) => p.port === caPort);
    expect(sp).toBeDefined();
    expect(typeof sp.targetPort === "number" ? sp.targetPort : portNamed(sp.targetPort)).toBe(listenPort);
    for (const [k, v] of Object.entries(service.spec.selector)) expect(provider.spec.template.metadata.labels[k]).toBe(v);
    for (const [k, v] of Object.entries(provider.spec.selector.matchLabels)) expect(provider.spec.template.metadata.labels[k]).toBe(v);
  });

  test("CA's address names the Service, and the server certificate carries that name", () => {
    expect([service.metadata.name, `${service.metadata.name}.${ns}.svc`, `${service.metadata.name}.${ns}.svc.cluster.local`]).toContain(caHost);
    const tls = fileAt(providerPod, providerCtr, argValue(providerCtr.args, "--tls-cert"))!;
    const serverCert = certificates.find((c) => c.spec.secretName === tls.name)!;
    expect(serverCert.spec.dnsNames).toContain(caHost);
    expect(serverCert.spec.usages).toContain("server auth");
  });

  test("CA's cloud-config: keys, TLS files from the client certificate, same CA, timeout", () => {
    expect(argValue(caArgs, "--cloud-provider")).toBe("externalgrpc");
    expect(Object.keys(cloudConfig).sort()).toEqual(["address", "cacert", "cert", "grpc_timeout", "key"]);
    expect(cloudConfig.grpc_timeout).toMatch(/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/);
    const refs = ["key", "cert", "cacert"].map((k) => ({ k, ref: fileAt(caPod, caCtr, cloudConfig[k]) }));
    for (const { k, ref } of refs) expect({ k, mounted: ref !== undefined }).toEqual({ k, mounted: true });
    const clientCert = certificates.find((c) => c.spec.secretName === refs[1]!.ref!.name)!;
    expect(clientCert).toBeDefined();
    expect(clientCert.spec.usages).toContain("client auth");
    expect(refs.map((r) => r.ref!.key)).toEqual(["tls.key", "tls.crt", "ca.crt"]);
    // Both certificates come from one Issuer, whose CA is what each side trusts (ca.crt).
    const tls = fileAt(providerPod, providerCtr, argValue(providerCtr.args, "--tls-cert"))!;
    const serverCert = certificates.find((c) => c.spec.secretName === tls.name)!;
    expect(clientCert.spec.issuerRef).toEqual(serverCert.spec.issuerRef);
  });

  test("cert-manager: every issuerRef names an Issuer here; the CA Issuer uses the CA certificate's Secret", () => {
    for (const c of certificates) {
      expect(c.spec.issuerRef.kind).toBe("Issuer");
      expect(find("Issuer", c.spec.issuerRef.name)).toBeDefined();
    }
    for (const i of k8s.filter((d) => d.doc.kind === "Issuer" && d.doc.spec.ca).map((d) => d.doc)) {
      const caCert = certificates.find((c) => c.spec.secretName === i.spec.ca.secretName)!;
      expect(caCert.spec.isCA).toBe(true);
    }
  });

  test("both pods run as non-root with a read-only root file system", () => {
    for (const [pod, ctr] of [
      [providerPod, providerCtr],
      [caPod, caCtr],
    ]) {
      expect(pod.securityContext.runAsNonRoot).toBe(true);
      expect(pod.securityContext.runAsUser).toBe(65532);
      expect(ctr.securityContext.readOnlyRootFilesystem).toBe(true);
      expect(ctr.securityContext.allowPrivilegeEscalation).toBe(false);
    }
  });

  test("both pods run on a control-plane node, before ordinary pods", () => {
    for (const pod of [providerPod, caPod]) {
      expect(pod.priorityClassName).toBe("system-cluster-critical");
      expect(pod.nodeSelector).toEqual({ "node-role.kubernetes.io/control-plane": "" });
      expect(pod.tolerations).toEqual([{ key: "node-role.kubernetes.io/control-plane", operator: "Exists", effect: "NoSchedule" }]);
    }
  });

  test("CA's ServiceAccount is here, bound to a ClusterRole and a Role in CA's namespace", () => {
    const sa = find("ServiceAccount", caPod.serviceAccountName);
    expect(sa).toBeDefined();
    for (const [binding, role] of [
      ["ClusterRoleBinding", "ClusterRole"],
      ["RoleBinding", "Role"],
    ] as const) {
      const b = k8s.find((d) => d.doc.kind === binding && d.doc.subjects?.some((x: any) => x.kind === "ServiceAccount" && x.name === sa.metadata.name))?.doc;
      expect({ binding, found: b !== undefined }).toEqual({ binding, found: true });
      expect(b.roleRef.kind).toBe(role);
      expect(find(role, b.roleRef.name)).toBeDefined();
      expect(b.subjects.find((x: any) => x.name === sa.metadata.name).namespace).toBe(ns);
    }
    // The status ConfigMap and the leader-election Lease CA writes are in its namespace only.
    const role = find("Role", "cluster-autoscaler");
    const named = (res: string) => role.rules.find((r: any) => r.resources.includes(res) && r.resourceNames)?.resourceNames;
    expect(named("configmaps")).toEqual(["cluster-autoscaler-status"]);
    expect(named("leases")).toEqual(["cluster-autoscaler"]);
  });

  test("the API token's Secret is not among the objects (applying deploy/ never replaces the operator's)", () => {
    const env = providerCtr.env.find((e: any) => e.name === "CLOUDSCALE_API_TOKEN").valueFrom.secretKeyRef;
    expect(env).toEqual({ name: OPERATOR_TOKEN_SECRET, key: "token" });
    // The walk-through tells the operator to create it under that name and key.
    expect(readFileSync(join(DEPLOY, "kustomization.yaml"), "utf8")).toContain(`create secret generic ${OPERATOR_TOKEN_SECRET} --from-literal=token=`);
    expect(find("Secret", env.name)).toBeUndefined();
    expect(generatedSecrets.has(env.name)).toBe(false);
    expect(kustomizeBuild(DEPLOY).filter((o) => o.kind === "Secret").map((o) => o.metadata.name)).not.toContain(env.name);
  });

  test("kustomize build renders it: namespace, generated Secret name and image rewritten where they are used", () => {
    const rendered = kustomizeBuild(DEPLOY);
    expect(rendered.length).toBe(k8s.length + generatedSecrets.size);
    const clusterScoped = new Set(["ClusterRole", "ClusterRoleBinding"]);
    for (const o of rendered) {
      const want = clusterScoped.has(o.kind) ? undefined : ns;
      expect({ kind: o.kind, name: o.metadata.name, ns: o.metadata.namespace }).toEqual({ kind: o.kind, name: o.metadata.name, ns: want });
    }
    // The bindings name CA's ServiceAccount in that namespace.
    for (const b of rendered.filter((o) => o.kind.endsWith("Binding"))) expect(b.subjects).toEqual([{ kind: "ServiceAccount", name: "cluster-autoscaler", namespace: ns }]);
    const dep = rendered.find((o) => o.kind === "Deployment" && o.metadata.name === "autoscaler-cloudscale");
    const secrets = new Set(rendered.filter((o) => o.kind === "Secret").map((o) => o.metadata.name));
    const certSecrets = new Set(certificates.map((c) => c.spec.secretName));
    for (const v of dep.spec.template.spec.volumes.filter((x: any) => x.secret)) {
      expect(secrets.has(v.secret.secretName) || certSecrets.has(v.secret.secretName)).toBe(true);
    }
    const userdata = dep.spec.template.spec.volumes.find((x: any) => x.name === "userdata").secret.secretName;
    expect(userdata).toMatch(/^autoscaler-cloudscale-userdata-[a-z0-9]+$/);
    const img = kustomization.images.find((i: any) => i.name === providerCtr.image);
    expect(dep.spec.template.spec.containers[0].image).toBe(`${img.newName}:${img.newTag}`);
  }, 600000);
});

describe("deploy/: scrape configuration (pod annotations, monitoring/)", () => {
  const MONITORING = join(DEPLOY, "monitoring");
  const monitoring = all.filter((d) => dirname(d.file) === MONITORING);
  const component = monitoring.find((d) => d.doc.kind === "Component")!.doc;
  const serviceMonitor = monitoring.find((d) => d.doc.kind === "ServiceMonitor")!.doc;
  const rules = monitoring.find((d) => d.doc.kind === "PrometheusRule")!.doc;
  const healthPort = Number(argValue(providerCtr.args, "--health-listen").split(":").pop());
  const portNamed = (n: string) => providerCtr.ports.find((p: any) => p.name === n)?.containerPort;

  test("the pod's prometheus.io annotations point at the health listener's /metrics", () => {
    const a = provider.spec.template.metadata.annotations;
    expect(a["prometheus.io/scrape"]).toBe("true");
    expect(Number(a["prometheus.io/port"])).toBe(healthPort);
    expect(a["prometheus.io/path"]).toBe("/metrics");
  });

  test("the component lists every file in monitoring/; deploy/ offers it without enabling it", () => {
    const files = readdirSync(MONITORING).filter((f) => /\.ya?ml$/.test(f) && f !== "kustomization.yaml");
    expect([...component.resources].sort()).toEqual(files.sort());
    // Offered, not enabled: without the Prometheus Operator's CRDs `kubectl apply -k deploy/` must still work.
    expect(kustomization.components).toBeUndefined();
  });

  test("the ServiceMonitor selects the provider's Service and scrapes the health listener's /metrics", () => {
    for (const [k, v] of Object.entries(serviceMonitor.spec.selector.matchLabels)) expect(service.metadata.labels[k]).toBe(v);
    expect(serviceMonitor.spec.endpoints).toHaveLength(1);
    const ep = serviceMonitor.spec.endpoints[0];
    expect(ep.path).toBe("/metrics");
    expect(ep.scheme ?? "http").toBe("http");
    const sp = service.spec.ports.find((p: any) => p.name === ep.port);
    expect(sp).toBeDefined();
    expect(typeof sp.targetPort === "number" ? sp.targetPort : portNamed(sp.targetPort)).toBe(healthPort);
    // The health listener must listen beyond loopback for the scrape to reach it.
    expect(argValue(providerCtr.args, "--health-listen").startsWith("0.0.0.0:")).toBe(true);
  });

  test("every alert has an expression on our metrics, a severity and a summary", () => {
    const alerts = rules.spec.groups.flatMap((g: any) => g.rules);
    expect(alerts.length).toBeGreaterThanOrEqual(4);
    for (const r of alerts) {
      expect({ alert: r.alert, expr: typeof r.expr === "string" && /autoscaler_cloudscale_\w+/.test(r.expr) }).toEqual({ alert: r.alert, expr: true });
      expect(["critical", "warning"]).toContain(r.labels.severity);
      expect(typeof r.annotations.summary).toBe("string");
      if (r.for !== undefined) expect(r.for).toMatch(/^\d+[smh]$/);
    }
    // That these names are what the binary exports is checked against a live scrape in test/metrics.test.ts.
  });

  test("kustomize build with the component enabled renders the ServiceMonitor and the rules in the namespace", () => {
    const rendered = buildWithComponents(["monitoring"]);
    const sm = rendered.find((o) => o.kind === "ServiceMonitor");
    const pr = rendered.find((o) => o.kind === "PrometheusRule");
    expect(sm?.metadata.namespace).toBe(ns);
    expect(pr?.metadata.namespace).toBe(ns);
    expect(rendered.length).toBe(k8s.length + generatedSecrets.size + 2);
    const svc = rendered.find((o) => o.kind === "Service" && o.metadata.name === service.metadata.name);
    for (const [k, v] of Object.entries(sm.spec.selector.matchLabels)) expect(svc.metadata.labels[k]).toBe(v);
    expect(svc.spec.ports.map((p: any) => p.name)).toContain(sm.spec.endpoints[0].port);
  }, 600000);
});

describe("deploy/helm: values for Cluster Autoscaler's official Helm chart", () => {
  const HELM = join(DEPLOY, "helm");
  const values = parseYamlDocs(join(HELM, "cluster-autoscaler-values.yaml"))[0]!.doc;
  const component = parseYamlDocs(join(HELM, "kustomization.yaml"))[0]!.doc;

  // The chart's value keys, from values.yaml of chart 9.58.0 (appVersion 1.35.0; the chart of the CA 1.36.1 release) in the
  // kubernetes/autoscaler repository (cluster-autoscaler/charts/cluster-autoscaler). Only the
  // keys this file may use are listed with their sub-keys; maps below extraArgs, extraVolumeSecrets,
  // securityContext, containerSecurityContext and resources are free-form in the chart.
  const CHART_KEYS: Record<string, string[] | "any"> = {
    cloudProvider: [],
    autoDiscovery: ["clusterName", "namespace", "tags", "roles", "labels"],
    fullnameOverride: [],
    image: ["repository", "tag", "pullPolicy", "pullSecrets"],
    extraArgs: "any",
    extraVolumes: "any",
    extraVolumeMounts: "any",
    extraVolumeSecrets: "any",
    securityContext: "any",
    containerSecurityContext: "any",
    resources: "any",
    priorityClassName: [],
    nodeSelector: "any",
    tolerations: "any",
  };

  /**
   * The parts of the chart's Deployment that matter here, as chart 9.58.0's templates/deployment.yaml
   * renders them: the Deployment only when autoDiscovery (clusterName, namespace or labels) or
   * autoscalingGroups is set; --cloud-provider; no --cloud-config for externalgrpc (only aws, magnum,
   * clusterapi, rancher and vultr get one), so it must come from extraArgs ("--KEY=VALUE", the chart's
   * defaults merged under ours); extraVolumeSecrets as read-only secret volumes named by their key
   * (secretName defaults to the full name), then extraVolumes and extraVolumeMounts as given.
   */
  function renderChart(v: any) {
    const renders = Boolean(v.autoDiscovery?.clusterName || v.autoDiscovery?.namespace || v.autoDiscovery?.labels?.length || v.autoscalingGroups?.length);
    const command = ["./cluster-autoscaler", `--cloud-provider=${v.cloudProvider}`, `--namespace=${ns}`];
    for (const [k, val] of Object.entries({ logtostderr: true, stderrthreshold: "info", v: 4, ...v.extraArgs })) command.push(val === null ? `--${k.split("_")[0]}` : `--${k.split("_")[0]}=${val}`);
    const secrets = Object.entries(v.extraVolumeSecrets ?? {}) as [string, any][];
    const pod = {
      securityContext: v.securityContext,
      volumes: [...secrets.map(([name, s]) => ({ name, secret: { secretName: s.name ?? v.fullnameOverride } })), ...(v.extraVolumes ?? [])],
    };
    const container = {
      image: `${v.image.repository}:${v.image.tag}`,
      command,
      securityContext: v.containerSecurityContext,
      volumeMounts: [...secrets.map(([name, s]) => ({ name, mountPath: s.mountPath, readOnly: true })), ...(v.extraVolumeMounts ?? [])],
    };
    return { renders, pod, container };
  }
  const chart = renderChart(values);
  const chartArgs = chart.container.command;

  test("uses only keys the chart has", () => {
    for (const [k, val] of Object.entries(values)) {
      const known = CHART_KEYS[k];
      expect({ key: k, known: known !== undefined }).toEqual({ key: k, known: true });
      if (Array.isArray(known)) for (const sub of Object.keys(val && typeof val === "object" ? (val as object) : {})) expect({ key: `${k}.${sub}`, known: known.includes(sub) }).toEqual({ key: `${k}.${sub}`, known: true });
    }
  });

  test("the chart renders a Deployment with externalgrpc and the same cloud-config as deploy/", () => {
    expect(chart.renders).toBe(true);
    expect(values.cloudProvider).toBe("externalgrpc");
    expect(values.cloudConfigPath).toBeUndefined(); // ignored by the chart for externalgrpc
    expect(argValue(chartArgs, "--cloud-provider")).toBe("externalgrpc");
    expect(argValue(chartArgs, "--cloud-config")).toBe(cloudConfigPath);
    // Same image as ../cluster-autoscaler.yaml: one CA version is what the docs and tests speak of.
    expect(chart.container.image).toBe(caCtr.image);
  });

  test("the cloud-config and the client certificate resolve through the chart's mounts to the manifests' objects", () => {
    const cfg = fileAt(chart.pod, chart.container, argValue(chartArgs, "--cloud-config"))!;
    expect(cfg).toEqual(cloudConfigRef);
    expect(keysOf(cfg.kind, cfg.name)).toContain(cfg.key);
    const refs = ["key", "cert", "cacert"].map((k) => ({ k, ref: fileAt(chart.pod, chart.container, cloudConfig[k]) }));
    for (const { k, ref } of refs) expect({ k, mounted: ref !== undefined }).toEqual({ k, mounted: true });
    expect(refs.map((r) => r.ref!.key)).toEqual(["tls.key", "tls.crt", "ca.crt"]);
    for (const { ref } of refs) expect(keysOf(ref!.kind, ref!.name)).toContain(ref!.key);
    const clientCert = certificates.find((c) => c.spec.secretName === refs[1]!.ref!.name)!;
    expect(clientCert.spec.usages).toContain("client auth");
    for (const vm of chart.container.volumeMounts) expect(chart.pod.volumes.map((v: any) => v.name)).toContain(vm.name);
  });

  test("it runs as non-root with a read-only root file system, as deploy/'s CA does", () => {
    expect(chart.pod.securityContext).toEqual(caPod.securityContext);
    expect(chart.container.securityContext).toEqual(caCtr.securityContext);
  });

  test("it runs on a control-plane node, as deploy/'s CA does", () => {
    expect(values.priorityClassName).toBe(caPod.priorityClassName);
    expect(values.nodeSelector).toEqual(caPod.nodeSelector);
    expect(values.tolerations).toEqual(caPod.tolerations);
  });

  test("the helm component leaves out CA's Deployment and RBAC and keeps what the values mount, in the namespace", () => {
    expect(component.kind).toBe("Component");
    const rendered = buildWithComponents(["helm"]);
    const names = rendered.map((o) => `${o.kind}/${o.metadata.name}`);
    const caOwn = ["Deployment", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"].map((k) => `${k}/${ca.metadata.name}`);
    for (const n of caOwn) expect(names).not.toContain(n);
    expect(names).toContain(`Deployment/${provider.metadata.name}`);
    expect(rendered.length).toBe(k8s.length + generatedSecrets.size - caOwn.length);
    expect(names).toContain(`ConfigMap/${cloudConfigRef.name}`);
    const clientSecret = values.extraVolumeSecrets["client-tls"].name;
    expect(rendered.some((o) => o.kind === "Certificate" && o.spec.secretName === clientSecret && o.metadata.namespace === ns)).toBe(true);
    // The chart must be installed where those objects are.
    expect(readFileSync(join(HELM, "kustomization.yaml"), "utf8")).toContain(`--namespace ${ns}`);
    // And the fullname the values give the chart's Deployment is the one the component removes.
    expect(values.fullnameOverride).toBe(ca.metadata.name);
  }, 600000);

  test("both components together render", () => {
    const names = buildWithComponents(["monitoring", "helm"]).map((o) => `${o.kind}/${o.metadata.name}`);
    expect(names).toContain("ServiceMonitor/autoscaler-cloudscale");
    expect(names).not.toContain(`Deployment/${ca.metadata.name}`);
  }, 600000);
});
