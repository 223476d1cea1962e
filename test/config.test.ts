import { describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { apiSettings } from "../src/api-settings";
import { ConfigError, loadConfigFile, parseConfig, parseDuration } from "../src/config";

function problems(text: string, opts = {}): string[] {
  try {
    parseConfig(text, opts);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  throw new Error("expected the configuration to be refused");
}

describe("config", () => {
  test("the plain shape users write is accepted, with defaults applied", () => {
    const dir = mkdtempSync(join(tmpdir(), "cfg-"));
    writeFileSync(join(dir, "talos-worker.yaml"), "version: v1alpha1\nmachine:\n  type: worker\ncluster:\n  id: x\n");
    writeFileSync(
      join(dir, "config.yaml"),
      `clusterName: prod
nodeGroups:
  - name: worker
    flavor: flex-8-2
    min: 1
    max: 5
    image: custom:talos-1.13.2
    userDataFile: talos-worker.yaml
`,
    );
    const c = loadConfigFile(join(dir, "config.yaml"));
    expect(c.clusterName).toBe("prod");
    expect(c.createConcurrency).toBe(10);
    expect(c.maxViewAgeSeconds).toBe(120);
    const g = c.nodeGroups[0]!;
    expect(g).toMatchObject({ name: "worker", flavor: "flex-8-2", zone: "lpg1", min: 1, max: 5, volumeSizeGb: 10, userDataFormat: "talos", labels: {}, taints: [] });
    expect(g.userData).toContain("machine:");
    expect(g.options).toBeUndefined();
  });

  test("every mistake is reported at once, each with its path", () => {
    const p = problems(`clusterName: Prod_1
nodeGroups:
  - name: worker
    flavor: flex-8-2
    image: debian-13
    min: 5
    max: 2
    volumeSizeGb: 5
    labels: {"bad key!": x}
    taints: [{key: a, effect: Sometimes}]
    colour: blue
`);
    const text = p.join("\n");
    expect(text).toContain("clusterName: must be lower-case");
    expect(text).toContain("nodeGroups[0].volumeSizeGb: must be at least 10");
    expect(text).toContain("nodeGroups[0].taints[0].effect: must be NoSchedule, PreferNoSchedule or NoExecute");
    expect(text).toContain("nodeGroups[0].colour: unknown setting");
    expect(text).toMatch(/nodeGroups\[0\]\.labels.*bad key!.*not a valid Kubernetes label key|labels: is not a valid Kubernetes label key/);
    expect(p.length).toBeGreaterThanOrEqual(5);
  });

  test("semantic checks: min > max, duplicate names, too-long host names, both user-data sources", () => {
    const p = problems(`clusterName: averyveryverylongclustername
nodeGroups:
  - {name: a, flavor: flex-4-1, image: debian-13, min: 3, max: 1}
  - {name: a, flavor: flex-4-1, image: debian-13, min: 0, max: 1, userData: "#cloud-config", userDataFile: x}
  - {name: an-extremely-long-node-group-name-for-this, flavor: flex-4-1, image: debian-13, min: 0, max: 1}
`);
    const text = p.join("\n");
    expect(text).toContain("nodeGroups[0]: min (3) must not be greater than max (1)");
    expect(text).toContain('nodeGroups[1].name: "a" is used by another node group');
    expect(text).toContain("nodeGroups[1]: set either userData or userDataFile, not both");
    expect(text).toContain("nodeGroups[2].name: server names");
  });

  test("missing required settings and a missing file are named", () => {
    expect(problems("nodeGroups: []\n").join("\n")).toContain("clusterName: is required");
    const text = problems("clusterName: c\nnodeGroups:\n  - {name: w, min: 0, max: 1}\n").join("\n");
    expect(text).toContain("nodeGroups[0].flavor: is required");
    expect(text).toContain("nodeGroups[0].image: is required");
    const file = problems("clusterName: c\nnodeGroups:\n  - {name: w, flavor: f, image: i, min: 0, max: 1, userDataFile: nope.yaml}\n", { baseDir: "/nonexistent" });
    expect(file).toEqual(["nodeGroups[0].userDataFile: cannot read /nonexistent/nope.yaml: ENOENT"]);
  });

  test("YAML syntax errors say where", () => {
    const p = problems("clusterName: c\nnodeGroups: [\n  {name: w\n");
    expect(p[0]).toMatch(/not valid YAML: .*line \d+/);
  });

  test("options, reservations and durations are parsed", () => {
    const c = parseConfig(`clusterName: c
maxViewAge: 90s
reservations: {cpu: 200m, memory: 1Gi}
nodeGroups:
  - name: w
    flavor: flex-8-2
    image: debian-13
    min: 0
    max: 3
    userData: "#cloud-config\\n"
    reservations: {memory: 512Mi, evictionNodefs: 5%, maxPods: 50}
    options: {scaleDownUnneededTime: 5m, maxNodeProvisionTime: 1h30m, scaleDownUtilizationThreshold: 0.3}
`);
    expect(c.maxViewAgeSeconds).toBe(90);
    const g = c.nodeGroups[0]!;
    expect(g.userDataFormat).toBe("cloud-init");
    expect(g.reservationOverrides).toEqual({ cpuMillis: 200, memoryBytes: 512 * 1024 ** 2, evictionNodefsFraction: 0.05, maxPods: 50 });
    expect(g.options).toMatchObject({ scaleDownUnneededSeconds: 300, maxNodeProvisionSeconds: 5400, scaleDownUtilizationThreshold: 0.3 });
    expect(parseDuration("1h30m")).toBe(5400);
    expect(parseDuration("10x")).toBeUndefined();
  });

  test("durations that would break the provider are refused, each with why", () => {
    const group = "nodeGroups:\n  - {name: w, flavor: flex-4-1, image: debian-13, min: 0, max: 1}\n";
    // apiTimeout 0 turned the request timeout off; maxViewAge 0 meant nothing was ever created;
    // a failed creation forgotten at once is never seen by CA.
    const p = problems(`clusterName: c\napiTimeout: 0s\nmaxViewAge: 0s\nfailedCreateTtl: 0s\n${group}`);
    expect(p).toEqual([
      expect.stringMatching(/^maxViewAge: must be at least 2s: servers are created and deleted only from a view younger than this/),
      expect.stringMatching(/^failedCreateTtl: must be at least 30s: CA reads instances once per loop/),
      expect.stringMatching(/^apiTimeout: must be at least 1s: 0 turns the timeout off/),
    ]);
    expect(problems(`clusterName: c\napiTimeout: 500ms\n${group}`)).toEqual([expect.stringMatching(/^apiTimeout: must be at least 1s/)]);
    // Longer than a timer can hold: it would fire at once.
    expect(problems(`clusterName: c\ncreateVerifyDelay: 1000h\n${group}`)).toEqual(["createVerifyDelay: must be at most 2147483s (about 24 days)"]);
    // The bounds themselves, and 0 where 0 means what it says, are accepted.
    const c = parseConfig(`clusterName: c\napiTimeout: 1s\nmaxViewAge: 2s\nfailedCreateTtl: 30s\ncreateVerifyDelay: 0s\nstartupGrace: 0s\n${group}`);
    expect([c.apiTimeoutSeconds, c.maxViewAgeSeconds, c.failedCreateTtlSeconds, c.createVerifyDelaySeconds, c.startupGraceSeconds]).toEqual([1, 2, 30, 0, 0]);
  });

  test("Talos user-data that every creation would fail to patch is refused at load, for each group", () => {
    const talos = "version: v1alpha1\nmachine:\n  type: worker\n  token: abc.def\ncluster:\n  controlPlane:\n    endpoint: https://cp:6443\n";
    const kubeNode = "---\napiVersion: v1alpha1\nkind: KubeNodeConfig\nlabels: {}\n";
    const entry = (name: string, extra: string) => `  - name: ${name}\n    flavor: flex-4-1\n    image: custom:talos-1.13.2\n    min: 0\n    max: 1\n    ${extra}\n`;
    const twoEffects = "taints: [{key: dedicated, value: gpu, effect: NoSchedule}, {key: dedicated, value: gpu, effect: NoExecute}]";
    const p = problems(
      "clusterName: c\nnodeGroups:\n" +
        entry("unparsable", `userData: ${JSON.stringify("version: v1alpha1\nmachine: [\n  type: worker\ncluster:\n  x: 1\n")}`) +
        entry("twice", `userData: ${JSON.stringify(talos + "---\n" + talos)}`) +
        entry("forced", `userDataFormat: talos\n    userData: ${JSON.stringify("#cloud-config\npackages: [curl]\n")}`) +
        entry("effects", `userData: ${JSON.stringify(talos + kubeNode)}\n    ${twoEffects}`) +
        entry("fine", `userData: ${JSON.stringify(talos)}\n    ${twoEffects}`),
    );
    const why = "cannot be patched for a server, so every creation would fail";
    expect(p).toEqual([
      expect.stringMatching(new RegExp(`^nodeGroups\\[0\\]\\.userData: ${why}: The Talos user-data is not valid YAML \\(document 1 of 1\\): .*line 4, column 1$`)),
      `nodeGroups[1].userData: ${why}: The Talos user-data has more than one v1alpha1 machine configuration document.`,
      expect.stringMatching(new RegExp(`^nodeGroups\\[2\\]\\.userData: ${why} \\(userDataFormat is talos, but this does not read as a Talos machine configuration\\): .*no v1alpha1 machine configuration`)),
      `nodeGroups[3].userData: ${why}: Taint "dedicated" appears with two effects; a KubeNodeConfig document can hold only one taint per key.`,
    ]);
  });

  test("labels a kubelet may not set on itself, and the provider's own labels, are refused", () => {
    const text = problems("clusterName: c\nnodeGroups:\n  - {name: w, flavor: f, image: i, min: 0, max: 1, labels: {node-role.kubernetes.io/worker: '', autoscaler-cloudscale/node-group: x, team: a}}\n").join("\n");
    expect(text).toContain("nodeGroups[0].labels.node-role.kubernetes.io/worker: a kubelet may not set this label");
    expect(text).toContain("nodeGroups[0].labels.autoscaler-cloudscale/node-group: this label is set by the provider");
    expect(text).not.toContain("team");
  });

  test("reserved tag keys are refused", () => {
    expect(problems("clusterName: c\nnodeGroups:\n  - {name: w, flavor: f, image: i, min: 0, max: 1, tags: {autoscaler-cloudscale-group: x}}\n").join()).toContain("reserved for ownership");
  });

  test("API token from the environment or a file, never empty", () => {
    expect(apiSettings({ CLOUDSCALE_API_TOKEN: "abc" })).toEqual({ token: "abc", url: "https://api.cloudscale.ch/v1" });
    const dir = mkdtempSync(join(tmpdir(), "tok-"));
    writeFileSync(join(dir, "t"), "fromfile\n");
    expect(apiSettings({ CLOUDSCALE_API_URL: "http://127.0.0.1:1/v1/" }, join(dir, "t"))).toEqual({ token: "fromfile", url: "http://127.0.0.1:1/v1" });
    expect(() => apiSettings({})).toThrow(/no API token/);
    expect(() => apiSettings({ CLOUDSCALE_API_TOKEN: "x", CLOUDSCALE_API_URL: "ftp://x" })).toThrow(/must start with http/);
  });

  test("an explicit --token-file wins over CLOUDSCALE_API_TOKEN, which wins over CLOUDSCALE_API_TOKEN_FILE", () => {
    const dir = mkdtempSync(join(tmpdir(), "tok-"));
    writeFileSync(join(dir, "flag"), "from-flag\n");
    writeFileSync(join(dir, "env"), "from-env-file\n");
    const env = { CLOUDSCALE_API_TOKEN: "from-env", CLOUDSCALE_API_TOKEN_FILE: join(dir, "env") };
    expect(apiSettings(env, join(dir, "flag")).token).toBe("from-flag");
    expect(apiSettings(env).token).toBe("from-env");
    expect(apiSettings({ CLOUDSCALE_API_TOKEN_FILE: join(dir, "env") }).token).toBe("from-env-file");
    // A flag that names a file that cannot be read is an error, not a quiet fall-back to the environment.
    expect(() => apiSettings(env, join(dir, "missing"))).toThrow(/cannot read the API token file .*missing: ENOENT/);
  });
});
