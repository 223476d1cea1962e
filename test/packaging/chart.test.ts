// The Helm chart charts/autoscaler-cloudscale, rendered and linted by the real helm (v4, built
// from the Go module proxy by scripts/e2e-build.sh). Each value the chart offers changes what it
// renders the way values.yaml says, and its defaults render the same provider, Service, TLS and
// cloud-config for CA as the kustomize manifests in deploy/ (rendered by the real kubectl
// kustomize), so the two ways of installing cannot drift apart. test/e2e applies every rendering
// to the real kube-apiserver and installs the chart as docs/operating.md says.
import { describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fail, parseYamlDocs, parseYamlStream, REPO_ROOT, upstreamTool, WORK } from "./lib";

const HELM = upstreamTool("helm");
const KUBECTL = upstreamTool("kubectl");
const CHART = join(REPO_ROOT, "charts", "autoscaler-cloudscale");
const NS = "kube-system";
const HELM_HOME = join(WORK, "helm-home");
mkdirSync(HELM_HOME, { recursive: true });

function run(cmd: string[]): { code: number; out: string; err: string } {
  const env = { ...process.env, HELM_CACHE_HOME: join(HELM_HOME, "cache"), HELM_CONFIG_HOME: join(HELM_HOME, "config"), HELM_DATA_HOME: join(HELM_HOME, "data") };
  const p = Bun.spawnSync(cmd, { cwd: REPO_ROOT, env, stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode ?? -1, out: p.stdout.toString(), err: p.stderr.toString() };
}

const TOKEN_SECRET = ["--set", "token.existingSecret=autoscaler-cloudscale-token"];

/** `helm template RELEASE charts/autoscaler-cloudscale -n kube-system ARGS`: the rendered objects. */
function template(args: string[], release = "autoscaler-cloudscale"): any[] {
  const r = run([HELM, "template", release, CHART, "--namespace", NS, ...args]);
  if (r.code !== 0) fail(`helm template ${args.join(" ")} failed (${r.code}):\n${r.err}`);
  return parseYamlStream(r.out);
}

/** The error `helm template` ends with for values it must refuse. */
function templateError(args: string[]): string {
  const r = run([HELM, "template", "autoscaler-cloudscale", CHART, "--namespace", NS, ...args]);
  expect(r.code).not.toBe(0);
  return r.err;
}

const one = (objs: any[], kind: string, name?: string) => {
  const found = objs.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) fail(`${found.length} ${kind}${name ? ` named ${name}` : ""} in [${objs.map((o) => `${o.kind}/${o.metadata.name}`).join(", ")}]`);
  return found[0];
};
const podOf = (objs: any[]) => one(objs, "Deployment").spec.template.spec;

/** The kustomize rendering of deploy/, by the real kubectl. */
function kustomize(): any[] {
  const r = run([KUBECTL, "kustomize", join(REPO_ROOT, "deploy")]);
  if (r.code !== 0) fail(`kubectl kustomize deploy/ failed (${r.code}):\n${r.err}`);
  return parseYamlStream(r.out);
}

describe("charts/autoscaler-cloudscale with the real helm", () => {
  test("helm is the version built from the module proxy", () => {
    const r = run([HELM, "version", "--short"]);
    expect(r.code).toBe(0);
    expect(r.out.trim()).toMatch(/^v4\.3\.1\b/);
  });

  test("helm lint --strict passes for each way of giving the token, TLS and monitoring", () => {
    for (const args of [
      TOKEN_SECRET,
      ["--set", "token.value=t0k3n", "--set", "tls.mode=existingSecrets", "--set", "tls.serverSecret=srv", "--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.prometheusRule.enabled=true"],
      [...TOKEN_SECRET, "--set", "tls.certManager.issuerRef.kind=ClusterIssuer", "--set", "tls.certManager.issuerRef.name=my-ca"],
    ]) {
      const r = run([HELM, "lint", "--strict", CHART, "--namespace", NS, ...args]);
      expect({ args, code: r.code, out: r.code === 0 ? "" : r.out + r.err }).toEqual({ args, code: 0, out: "" });
      expect(r.out).toContain("1 chart(s) linted, 0 chart(s) failed");
    }
  });

  test("without a token, or with two, it refuses to render and says what to set", () => {
    expect(templateError([])).toContain("set token.existingSecret to the name of a Secret");
    expect(templateError(["--set", "token.value=a", "--set", "token.existingSecret=b"])).toContain("not both");
    expect(templateError([...TOKEN_SECRET, "--set", "tls.mode=existingSecrets"])).toContain("set tls.serverSecret");
    // values.schema.json refuses it first; without the schema (--skip-schema-validation) the template does.
    expect(templateError([...TOKEN_SECRET, "--set", "tls.mode=selfSigned"])).toContain("at '/tls/mode': value must be one of 'certManager', 'existingSecrets'");
    expect(templateError([...TOKEN_SECRET, "--set", "tls.mode=selfSigned", "--skip-schema-validation"])).toContain("neither certManager nor existingSecrets");
  });

  test("values.schema.json refuses misspelt or mistyped values before anything renders", () => {
    expect(templateError([...TOKEN_SECRET, "--set", "tokne.value=x"])).toContain("tokne");
    expect(templateError([...TOKEN_SECRET, "--set", "metrics.serviceMonitor.enable=true"])).toContain("enable");
    expect(templateError([...TOKEN_SECRET, "--set", "service.grpcPort=http"])).toContain("grpcPort");
    expect(templateError([...TOKEN_SECRET, "--set", "logLevel=verbose"])).toContain("logLevel");
  });

  test("the operator's token Secret: referenced, never rendered", () => {
    const objs = template(["--set", "token.existingSecret=my-token", "--set", "token.existingSecretKey=api-token"]);
    expect(objs.filter((o) => o.kind === "Secret" && o.metadata.name === "my-token")).toEqual([]);
    const env = podOf(objs).containers[0].env.find((e: any) => e.name === "CLOUDSCALE_API_TOKEN");
    expect(env.valueFrom.secretKeyRef).toEqual({ name: "my-token", key: "api-token" });
  });

  test("a token in the values: the chart's own Secret, referenced by the pod", () => {
    const objs = template(["--set", "token.value=t0k3n"]);
    const secret = one(objs, "Secret", "autoscaler-cloudscale-token");
    expect(Buffer.from(secret.data.token, "base64").toString()).toBe("t0k3n");
    const env = podOf(objs).containers[0].env.find((e: any) => e.name === "CLOUDSCALE_API_TOKEN");
    expect(env.valueFrom.secretKeyRef).toEqual({ name: "autoscaler-cloudscale-token", key: "token" });
  });

  test("by default it runs on a control-plane node, before ordinary pods", () => {
    const pod = podOf(template(TOKEN_SECRET));
    expect(pod.priorityClassName).toBe("system-cluster-critical");
    expect(pod.nodeSelector).toEqual({ "node-role.kubernetes.io/control-plane": "" });
    expect(pod.tolerations).toEqual([{ key: "node-role.kubernetes.io/control-plane", operator: "Exists", effect: "NoSchedule" }]);
    // And each of them can be changed.
    const moved = podOf(template([...TOKEN_SECRET, "--set", "priorityClassName=", "--set", "nodeSelector=null", "--set", "tolerations=null", "--set", "resources.requests.cpu=50m"]));
    expect([moved.priorityClassName, moved.nodeSelector, moved.tolerations]).toEqual([undefined, undefined, undefined]);
    expect(moved.containers[0].resources.requests.cpu).toBe("50m");
  });

  test("defaults render deploy/'s provider: same container, probes, mounts, scheduling and security", () => {
    const chart = podOf(template(TOKEN_SECRET));
    const kust = kustomize();
    const plain = one(kust, "Deployment", "autoscaler-cloudscale").spec.template.spec;
    const [c, k] = [chart.containers[0], plain.containers[0]];
    // The chart says the log level explicitly; everything else is the same command line.
    expect(c.args.slice(0, k.args.length)).toEqual(k.args);
    expect(c.args.slice(k.args.length)).toEqual(["--log-level", "info"]);
    for (const field of ["ports", "readinessProbe", "livenessProbe", "resources", "securityContext", "env"]) expect({ field, v: c[field] }).toEqual({ field, v: k[field] });
    expect(c.volumeMounts).toEqual(k.volumeMounts);
    for (const field of ["securityContext", "nodeSelector", "tolerations", "priorityClassName", "automountServiceAccountToken"]) expect({ field, v: chart[field] }).toEqual({ field, v: plain[field] });
    // The same kinds of volumes behind the same names (the user-data Secret's name differs: kustomize hashes it).
    expect(chart.volumes.map((v: any) => [v.name, Object.keys(v).filter((x) => x !== "name")])).toEqual(plain.volumes.map((v: any) => [v.name, Object.keys(v).filter((x) => x !== "name")]));
  });

  test("defaults render deploy/'s Service and CA's cloud-config, and certificates whose names match it", () => {
    const objs = template(TOKEN_SECRET);
    const kust = kustomize();
    const svc = one(objs, "Service", "autoscaler-cloudscale");
    expect(svc.spec.ports).toEqual(one(kust, "Service", "autoscaler-cloudscale").spec.ports);
    const cc = one(objs, "ConfigMap", "cluster-autoscaler-cloud-config");
    expect(cc.data).toEqual(one(kust, "ConfigMap", "cluster-autoscaler-cloud-config").data);
    const address = (Bun.YAML.parse(cc.data["cloud-config.yaml"]) as any).address as string;
    const server = objs.find((o) => o.kind === "Certificate" && o.spec.secretName === "autoscaler-cloudscale-server-tls");
    expect(server.spec.dnsNames).toContain(address.replace(/:\d+$/, ""));
    expect(server.spec.usages).toContain("server auth");
    const tlsVolume = podOf(objs).volumes.find((v: any) => v.name === "tls");
    expect(tlsVolume.secret.secretName).toBe(server.spec.secretName);
    // CA's client certificate is the Secret the CA Helm values mount, signed by the same Issuer.
    const caValues = parseYamlDocs(join(REPO_ROOT, "deploy", "helm", "cluster-autoscaler-values.yaml"))[0]!.doc;
    const client = objs.find((o) => o.kind === "Certificate" && o.spec.secretName === caValues.extraVolumeSecrets["client-tls"].name);
    expect(client.spec.usages).toContain("client auth");
    expect(client.spec.issuerRef).toEqual(server.spec.issuerRef);
    expect(caValues.extraVolumes.find((v: any) => v.name === "cloud-config").configMap.name).toBe(cc.metadata.name);
    // The private CA: a self-signed Issuer signs the CA certificate, whose Secret backs the CA Issuer.
    const caIssuer = one(objs, "Issuer", server.spec.issuerRef.name);
    const caCert = objs.find((o) => o.kind === "Certificate" && o.spec.secretName === caIssuer.spec.ca.secretName);
    expect(caCert.spec.isCA).toBe(true);
    expect(one(objs, "Issuer", caCert.spec.issuerRef.name).spec.selfSigned).toEqual({});
  });

  test("every object goes into the release namespace; another release name follows through to the address and certificate", () => {
    const objs = template([...TOKEN_SECRET, "--namespace", "autoscaling"], "cloudscale");
    for (const o of objs) expect({ o: `${o.kind}/${o.metadata.name}`, ns: o.metadata.namespace }).toEqual({ o: `${o.kind}/${o.metadata.name}`, ns: "autoscaling" });
    const cc = one(objs, "ConfigMap", "cluster-autoscaler-cloud-config");
    expect((Bun.YAML.parse(cc.data["cloud-config.yaml"]) as any).address).toBe("cloudscale-autoscaler-cloudscale.autoscaling.svc:8086");
    const server = objs.find((o) => o.kind === "Certificate" && o.metadata.name.endsWith("-server"));
    expect(server.spec.dnsNames).toContain("cloudscale-autoscaler-cloudscale.autoscaling.svc");
    one(objs, "Service", "cloudscale-autoscaler-cloudscale");
  });

  test("TLS from existing Secrets: no cert-manager objects, the named Secret mounted", () => {
    const objs = template([...TOKEN_SECRET, "--set", "tls.mode=existingSecrets", "--set", "tls.serverSecret=my-server-tls"]);
    expect(objs.filter((o) => o.apiVersion.startsWith("cert-manager.io/"))).toEqual([]);
    expect(podOf(objs).volumes.find((v: any) => v.name === "tls").secret.secretName).toBe("my-server-tls");
  });

  test("cert-manager with the operator's issuer: no private CA, both certificates from that issuer", () => {
    const objs = template([...TOKEN_SECRET, "--set", "tls.certManager.issuerRef.kind=ClusterIssuer", "--set", "tls.certManager.issuerRef.name=my-ca"]);
    expect(objs.filter((o) => o.kind === "Issuer")).toEqual([]);
    const certs = objs.filter((o) => o.kind === "Certificate");
    expect(certs.map((c) => c.spec.issuerRef)).toEqual([
      { kind: "ClusterIssuer", name: "my-ca" },
      { kind: "ClusterIssuer", name: "my-ca" },
    ]);
  });

  test("user-data: files from the values become the mounted Secret (and roll the pod), or the operator's Secret is mounted", () => {
    const worker = readFileSync(join(REPO_ROOT, "deploy", "talos-worker.example.yaml"), "utf8");
    const file = join(WORK, "chart-worker.yaml");
    writeFileSync(file, worker);
    const objs = template([...TOKEN_SECRET, "--set-file", `userData.files.workers\\.yaml=${file}`]);
    const secret = one(objs, "Secret", "autoscaler-cloudscale-userdata");
    expect(Buffer.from(secret.data["workers.yaml"], "base64").toString()).toBe(worker);
    const dep = one(objs, "Deployment");
    expect(dep.spec.template.spec.volumes.find((v: any) => v.name === "userdata").secret.secretName).toBe(secret.metadata.name);
    writeFileSync(file, worker + "# changed\n");
    const changed = one(template([...TOKEN_SECRET, "--set-file", `userData.files.workers\\.yaml=${file}`]), "Deployment");
    expect(changed.spec.template.metadata.annotations["checksum/userdata"]).not.toBe(dep.spec.template.metadata.annotations["checksum/userdata"]);
    const own = template([...TOKEN_SECRET, "--set", "userData.existingSecret=my-userdata"]);
    expect(own.filter((o) => o.kind === "Secret")).toEqual([]);
    expect(podOf(own).volumes.find((v: any) => v.name === "userdata").secret.secretName).toBe("my-userdata");
  });

  test("the configuration: values.config verbatim in the ConfigMap; a change rolls the pod", () => {
    const objs = template(TOKEN_SECRET);
    const values = Bun.YAML.parse(readFileSync(join(CHART, "values.yaml"), "utf8")) as any;
    expect(Bun.YAML.parse(one(objs, "ConfigMap", "autoscaler-cloudscale-config").data["config.yaml"])).toEqual(values.config);
    const changed = template([...TOKEN_SECRET, "--set", "config.clusterName=other"]);
    expect(one(changed, "Deployment").spec.template.metadata.annotations["checksum/config"]).not.toBe(one(objs, "Deployment").spec.template.metadata.annotations["checksum/config"]);
  });

  test("monitoring: off by default; the ServiceMonitor reaches the metrics port, the rules are deploy/monitoring's", () => {
    const objs = template(TOKEN_SECRET);
    expect(objs.filter((o) => o.apiVersion.startsWith("monitoring.coreos.com/"))).toEqual([]);
    expect(one(objs, "Deployment").spec.template.metadata.annotations["prometheus.io/port"]).toBe("8087");
    const on = template([...TOKEN_SECRET, "--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.prometheusRule.enabled=true", "--set", "metrics.podAnnotations=false", "--set", "metrics.prometheusRule.labels.release=kps"]);
    const sm = one(on, "ServiceMonitor");
    const svc = one(on, "Service");
    for (const [k, v] of Object.entries(sm.spec.selector.matchLabels)) expect(svc.metadata.labels[k]).toBe(v);
    expect(svc.spec.ports.map((p: any) => p.name)).toContain(sm.spec.endpoints[0].port);
    const rule = one(on, "PrometheusRule");
    expect(rule.metadata.labels.release).toBe("kps");
    expect(rule.spec).toEqual(parseYamlDocs(join(REPO_ROOT, "deploy", "monitoring", "alerts.yaml"))[0]!.doc.spec);
    expect(one(on, "Deployment").spec.template.metadata.annotations?.["prometheus.io/scrape"]).toBeUndefined();
  });
});
