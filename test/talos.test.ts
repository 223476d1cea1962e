import { describe, expect, test } from "bun:test";
import { parseDocument } from "yaml";
import {
  detectUserDataFormat,
  forbiddenNodeLabels,
  isForbiddenNodeLabel,
  patchTalosUserData,
  patchUserData,
} from "../src/talos";
import type { Taint, UserDataFormat } from "../src/types";

// ---------------------------------------------------------------------------
// Fixtures, shaped like `talosctl gen config` worker output (with its doc
// comments and commented-out examples). Secrets are placeholders.

/** Talos 1.12/1.13: v1alpha1 + HostnameConfig(auto: stable), plus an extension service config. */
const WORKER_113 = `version: v1alpha1 # Indicates the schema used to decode the contents.
debug: false # Enable verbose logging to the console.
persist: true
# Provides machine specific configuration options.
machine:
    type: worker # Defines the role of the machine within the cluster.
    token: p0x4bq.zt2kr9vl3mchw8ds # The \`token\` is used by a machine to join the PKI of the cluster.
    # The root certificate authority of the PKI.
    ca:
        crt: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJQekNCOHFBREFnRUNBaEVBcGxhY2Vob2xkZXIKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=
        key: ""
    # Extra certificate subject alternative names for the machine's certificate.
    certSANs: []
    #   # Uncomment this to enable SANs.
    #   - 10.0.0.10
    #   - 172.16.0.10

    # Used to provide additional options to the kubelet.
    kubelet:
        image: ghcr.io/siderolabs/kubelet:v1.35.2 # The \`image\` field is an optional reference to an alternative kubelet image.
        defaultRuntimeSeccompProfileEnabled: true # Enable container runtime default Seccomp profile.
        disableManifestsDirectory: true # The \`disableManifestsDirectory\` field configures the kubelet to get static pod manifests from the /etc/kubernetes/manifests directory.

        # # The \`ClusterDNS\` field is an optional reference to an alternative kubelet clusterDNS ip list.
        # clusterDNS:
        #     - 10.96.0.10
        #     - 169.254.2.53

        # # The \`extraArgs\` field is used to provide additional flags to the kubelet.
        # extraArgs:
        #     key: value
    # Provides machine specific network configuration options.
    network: {}
    # # \`interfaces\` is used to define the network interface configuration.
    # interfaces:
    #     - interface: enp0s1 # The interface name.

    # Used to provide instructions for installations.
    install:
        disk: /dev/vda # The disk used for installations.
        image: ghcr.io/siderolabs/installer:v1.13.2 # Allows for supplying the image used to perform the installation.
        wipe: false # Indicates if the installation disk should be wiped at installation time.
    # Used to configure the machine's container image registry mirrors.
    registries: {}
    # Features describe individual Talos features that can be switched on or off.
    features:
        rbac: true # Enable role-based access control (RBAC).
        apidCheckExtKeyUsage: true # Enable checks for extended key usage of client certificates in apid.
        diskQuotaSupport: true # Enable XFS project quota support for EPHEMERAL partition and user disks.
        # KubePrism - local proxy/load balancer on defined port that will distribute
        kubePrism:
            enabled: true # Enable KubePrism support - will start local load balancing proxy.
            port: 7445 # KubePrism port.
        # Configures host DNS caching resolver.
        hostDNS:
            enabled: true # Enable host DNS caching resolver.
            forwardKubeDNSToHost: true # Use the host DNS resolver as upstream for Kubernetes CoreDNS pods.
    # Configures the node labels for the machine.
    nodeLabels:
        example.com/rack: r13 # existing label
# Provides cluster specific configuration options.
cluster:
    id: 8bmzq1yTz0Sx4hVwY3oW2nB6uQ9c5eR7aL0dK2fJ4gH= # Globally unique identifier for this cluster (base64 encoded random 32 bytes).
    secret: Nq3dZ5kP8vW2xR7tY1uI4oA6sD9fG0hJ2kL5zX8cV3b= # Shared secret of cluster (base64 encoded random 32 bytes).
    # Provides control plane specific configuration options.
    controlPlane:
        endpoint: https://10.42.0.10:6443 # Endpoint is the canonical controlplane endpoint, which can be an IP address or a DNS hostname.
    clusterName: demo # Configures the cluster's name.
    # Provides cluster specific network configuration options.
    network:
        dnsDomain: cluster.local # The domain used by Kubernetes DNS.
        # The pod subnet CIDR.
        podSubnets:
            - 10.244.0.0/16
        # The service subnet CIDR.
        serviceSubnets:
            - 10.96.0.0/12
    token: a1b2c3.d4e5f6g7h8i9j0k1 # The [bootstrap token](https://kubernetes.io/docs/reference/access-authn-authz/bootstrap-tokens/) used to join the cluster.
    # The base64 encoded root certificate authority used by Kubernetes.
    ca:
        crt: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJpekNDQVRDZ0F3SUJBZ0lRcGxhY2Vob2xkZXIKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=
        key: ""
    # Configures cluster member discovery.
    discovery:
        enabled: true # Enable the cluster membership discovery feature.
        # Configure registries used for cluster member discovery.
        registries:
            # Kubernetes registry uses Kubernetes API server to discover cluster members and stores additional information
            kubernetes:
                disabled: true # Disable Kubernetes discovery registry.
            # Service registry is using an external service to push and pull information about cluster members.
            service: {}
---
apiVersion: v1alpha1
kind: HostnameConfig
auto: stable # A method to automatically generate a hostname for the machine.
---
apiVersion: v1alpha1
kind: ExtensionServiceConfig
name: tailscale
configFiles:
    - content: |
        # not a comment: file content
        key=value
      mountPath: /etc/tailscale/extra.conf
environment:
    - TS_AUTHKEY=tskey-placeholder
`;

/** Talos 1.11 and older: a single v1alpha1 document, host name chosen by stableHostname. */
const WORKER_111 = `version: v1alpha1 # Indicates the schema used to decode the contents.
debug: false # Enable verbose logging to the console.
persist: true
# Provides machine specific configuration options.
machine:
    type: worker # Defines the role of the machine within the cluster.
    token: p0x4bq.zt2kr9vl3mchw8ds # The \`token\` is used by a machine to join the PKI of the cluster.
    # The root certificate authority of the PKI.
    ca:
        crt: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==
        key: ""
    certSANs: []
    # Used to provide additional options to the kubelet.
    kubelet:
        image: ghcr.io/siderolabs/kubelet:v1.34.1 # The \`image\` field is an optional reference to an alternative kubelet image.
        defaultRuntimeSeccompProfileEnabled: true # Enable container runtime default Seccomp profile.
        disableManifestsDirectory: true
        extraArgs:
            cloud-provider: external
        extraConfig:
            serverTLSBootstrap: true
            registerWithTaints:
                - key: dedicated
                  value: old
                  effect: NoSchedule
                - key: keep.example.com/me
                  effect: NoExecute
    # Provides machine specific network configuration options.
    network: {}
    # Used to provide instructions for installations.
    install:
        disk: /dev/vda # The disk used for installations.
        image: ghcr.io/siderolabs/installer:v1.11.5 # Allows for supplying the image used to perform the installation.
        wipe: false # Indicates if the installation disk should be wiped at installation time.
    registries: {}
    # Features describe individual Talos features that can be switched on or off.
    features:
        rbac: true # Enable role-based access control (RBAC).
        stableHostname: true # Enable stable default hostname.
        apidCheckExtKeyUsage: true # Enable checks for extended key usage of client certificates in apid.
cluster:
    id: 8bmzq1yTz0Sx4hVwY3oW2nB6uQ9c5eR7aL0dK2fJ4gH=
    secret: Nq3dZ5kP8vW2xR7tY1uI4oA6sD9fG0hJ2kL5zX8cV3b=
    controlPlane:
        endpoint: https://10.42.0.10:6443
    clusterName: demo
    network:
        dnsDomain: cluster.local
        podSubnets:
            - 10.244.0.0/16
        serviceSubnets:
            - 10.96.0.0/12
    token: a1b2c3.d4e5f6g7h8i9j0k1
    ca:
        crt: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==
        key: ""
`;

/** Talos 1.14 style: node labels/taints in a KubeNodeConfig document. */
const WORKER_114 = `version: v1alpha1
debug: false
persist: true
machine:
    type: worker
    token: p0x4bq.zt2kr9vl3mchw8ds
    ca:
        crt: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==
        key: ""
    install:
        disk: /dev/vda
        image: ghcr.io/siderolabs/installer:v1.14.0
cluster:
    id: 8bmzq1yTz0Sx4hVwY3oW2nB6uQ9c5eR7aL0dK2fJ4gH=
    secret: Nq3dZ5kP8vW2xR7tY1uI4oA6sD9fG0hJ2kL5zX8cV3b=
    controlPlane:
        endpoint: https://10.42.0.10:6443
    clusterName: demo
    token: a1b2c3.d4e5f6g7h8i9j0k1
    ca:
        crt: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==
        key: ""
---
apiVersion: v1alpha1
kind: HostnameConfig
auto: stable
---
apiVersion: v1alpha1
kind: KubeNodeConfig
nodeIP:
    validSubnets:
        - 10.42.0.0/16
labels:
    example.com/rack: r13
taints:
    example.com/old: "x:NoExecute"
`;

const LABELS = {
  "autoscaler-cloudscale/node-group": "workers",
  "example.com/team": "a",
  "node.kubernetes.io/pool": "batch", // node.kubernetes.io namespace: allowed
  "node-role.kubernetes.io/worker": "", // forbidden
  "kubernetes.io/team": "x", // forbidden
  "sub.k8s.io/thing": "y", // forbidden
};
const ALLOWED_LABELS = {
  "autoscaler-cloudscale/node-group": "workers",
  "example.com/team": "a",
  "node.kubernetes.io/pool": "batch",
};
const TAINTS: Taint[] = [
  { key: "dedicated", value: "batch", effect: "NoSchedule" },
  { key: "example.com/spot", value: "", effect: "PreferNoSchedule" },
];
const PARAMS = { hostname: "demo-workers-7f3k2", labels: LABELS, taints: TAINTS };

/** Parses a multi-document YAML stream into its documents (test helper; independent of the splitter under test). */
function docs(text: string): any[] {
  const v = Bun.YAML.parse(text);
  return Array.isArray(v) && /^---\s*$/m.test(text) ? v : [v];
}

function withoutPaths(obj: any, paths: string[][]): any {
  const c = structuredClone(obj);
  for (const p of paths) {
    let cur = c;
    for (const k of p.slice(0, -1)) cur = cur?.[k];
    if (cur && typeof cur === "object") delete cur[p[p.length - 1]!];
  }
  return c;
}

function commentLines(text: string): string[] {
  return text.split("\n").filter((l) => l.trim().startsWith("#"));
}

// ---------------------------------------------------------------------------

describe("forbiddenNodeLabels", () => {
  test.each([
    ["node-role.kubernetes.io/worker", true],
    ["node-role.kubernetes.io/control-plane", true],
    ["kubernetes.io/team", true],
    ["k8s.io/x", true],
    ["sub.k8s.io/x", true],
    ["node-restriction.kubernetes.io/x", true],
    ["topology.kubernetes.io/rack", true],
    ["beta.kubernetes.io/fluentd-ds-ready", true],
    ["kubernetes.io/hostname", false],
    ["kubernetes.io/arch", false],
    ["kubernetes.io/os", false],
    ["beta.kubernetes.io/arch", false],
    ["beta.kubernetes.io/os", false],
    ["beta.kubernetes.io/instance-type", false],
    ["node.kubernetes.io/instance-type", false],
    ["failure-domain.beta.kubernetes.io/zone", false],
    ["failure-domain.beta.kubernetes.io/region", false],
    ["topology.kubernetes.io/zone", false],
    ["topology.kubernetes.io/region", false],
    ["node.kubernetes.io/anything", false],
    ["kubelet.kubernetes.io/anything", false],
    ["foo.node.kubernetes.io/x", false],
    ["bar.kubelet.kubernetes.io/x", false],
    ["autoscaler-cloudscale/node-group", false],
    ["example.com/team", false],
    ["plain", false],
    ["notkubernetes.io/x", false],
  ])("%s → forbidden=%p", (key, forbidden) => {
    expect(isForbiddenNodeLabel(key)).toBe(forbidden);
  });

  test("lists the offending keys, sorted", () => {
    expect(forbiddenNodeLabels(LABELS)).toEqual(["kubernetes.io/team", "node-role.kubernetes.io/worker", "sub.k8s.io/thing"]);
    expect(forbiddenNodeLabels(ALLOWED_LABELS)).toEqual([]);
  });
});

describe("detectUserDataFormat", () => {
  test.each([
    ["", "none"],
    ["   \n\n", "none"],
    ["#cloud-config\npackages: [curl]\n", "cloud-init"],
    ["#!/bin/sh\necho hi\n", "cloud-init"],
    ["Content-Type: multipart/mixed; boundary=x\n", "cloud-init"],
    ["#include\nhttps://example.com/x\n", "cloud-init"],
    ["just some text\n", "cloud-init"],
    ["a: 1\n", "cloud-init"],
    [WORKER_113, "talos"],
    [WORKER_111, "talos"],
    [WORKER_114, "talos"],
    ["---\napiVersion: v1alpha1\nkind: HostnameConfig\nauto: stable\n", "talos"],
    ["version: v1alpha1\nmachine:\n  type: worker\n  bad: [\n", "talos"], // broken, but clearly Talos
  ])("%#", (text, want) => {
    expect(detectUserDataFormat(text)).toBe(want as UserDataFormat);
  });
});

describe("Talos 1.12+/1.13 (v1alpha1 + HostnameConfig)", () => {
  const out = patchTalosUserData(WORKER_113, PARAMS);
  const before = docs(WORKER_113);
  const after = docs(out);

  test("same number of documents", () => {
    expect(after.length).toBe(3);
  });

  test("host name goes into HostnameConfig, auto dropped", () => {
    expect(after[1]).toEqual({ apiVersion: "v1alpha1", kind: "HostnameConfig", hostname: "demo-workers-7f3k2" });
    expect(after[0].machine.network).toEqual({});
  });

  test("labels merged into machine.nodeLabels, forbidden ones skipped", () => {
    expect(after[0].machine.nodeLabels).toEqual({ "example.com/rack": "r13", ...ALLOWED_LABELS });
  });

  test("taints as kubelet registerWithTaints, not machine.nodeTaints", () => {
    expect(after[0].machine.kubelet.extraConfig).toEqual({
      registerWithTaints: [
        { key: "dedicated", value: "batch", effect: "NoSchedule" },
        { key: "example.com/spot", effect: "PreferNoSchedule" },
      ],
    });
    expect(after[0].machine.nodeTaints).toBeUndefined();
    // The rest of the kubelet section is untouched.
    expect(withoutPaths(after[0].machine.kubelet, [["extraConfig"]])).toEqual(before[0].machine.kubelet);
  });

  test("nothing else in the v1alpha1 document changes", () => {
    const strip = [
      ["machine", "nodeLabels"],
      ["machine", "kubelet", "extraConfig"],
    ];
    expect(withoutPaths(after[0], strip)).toEqual(withoutPaths(before[0], strip));
  });

  test("other documents are byte-identical, and comments survive", () => {
    const extension = WORKER_113.slice(WORKER_113.lastIndexOf("---\napiVersion: v1alpha1\nkind: ExtensionServiceConfig"));
    expect(out.endsWith(extension)).toBe(true);
    expect(after[2]).toEqual(before[2]);
    // Every comment of the original is still there (the HostnameConfig trailing
    // comment belonged to the removed `auto` line). The yaml Document API keeps a
    // comment's text, not always its indentation: comment lines that follow a
    // nested block's trailing comments are written at that block's level.
    const kept = commentLines(out).map((l) => l.trim());
    for (const c of commentLines(WORKER_113)) expect(kept).toContain(c.trim());
    expect(out).toContain("    type: worker # Defines the role of the machine within the cluster.\n");
    expect(out).toContain("    certSANs: []\n    #   # Uncomment this to enable SANs.\n");
  });

  test("the v1alpha1 document is edited in place: only additions, every other line kept in order", () => {
    // Only additions inside kubelet and nodeLabels: every original content line of
    // the v1alpha1 document is still present, unchanged and in order (comment
    // lines by their text, see above; blank lines are not counted).
    const key = (l: string) => (l.trim().startsWith("#") ? l.trim() : l);
    const origLines = WORKER_113.split("\n");
    const outLines = out.split("\n").map(key);
    const v1End = origLines.indexOf("---");
    let j = 0;
    for (const line of origLines.slice(0, v1End).filter((l) => l.trim()).map(key)) {
      while (j < outLines.length && outLines[j] !== line) j++;
      expect(j, line).toBeLessThan(outLines.length);
      j++;
    }
  });

  test("idempotent", () => {
    expect(patchTalosUserData(out, PARAMS)).toBe(out);
  });

  test("a second patch with other values replaces ours", () => {
    const again = docs(
      patchTalosUserData(out, {
        hostname: "other",
        labels: { "autoscaler-cloudscale/node-group": "gpu" },
        taints: [{ key: "dedicated", value: "gpu", effect: "NoSchedule" }],
      }),
    );
    expect(again[1].hostname).toBe("other");
    expect(again[0].machine.nodeLabels["autoscaler-cloudscale/node-group"]).toBe("gpu");
    expect(again[0].machine.kubelet.extraConfig.registerWithTaints).toEqual([
      { key: "example.com/spot", effect: "PreferNoSchedule" },
      { key: "dedicated", value: "gpu", effect: "NoSchedule" },
    ]);
  });

  test("no labels and no taints: only the host name changes", () => {
    const o = patchTalosUserData(WORKER_113, { hostname: "h1", labels: {}, taints: [] });
    const d = docs(o);
    expect(d[0]).toEqual(before[0]);
    expect(d[1]).toEqual({ apiVersion: "v1alpha1", kind: "HostnameConfig", hostname: "h1" });
    expect(o.slice(0, o.indexOf("---\n"))).toBe(WORKER_113.slice(0, WORKER_113.indexOf("---\n")));
  });

  test("HostnameConfig with auto: off and an old hostname", () => {
    const text = WORKER_113.replace("auto: stable # A method to automatically generate a hostname for the machine.", "auto: off\nhostname: old-name");
    const d = docs(patchTalosUserData(text, PARAMS));
    expect(d[1]).toEqual({ apiVersion: "v1alpha1", kind: "HostnameConfig", hostname: "demo-workers-7f3k2" });
  });

  test("CRLF line endings are kept", () => {
    const crlf = WORKER_113.replace(/\n/g, "\r\n");
    const o = patchTalosUserData(crlf, PARAMS);
    expect(o.replace(/\r\n/g, "")).not.toContain("\n");
    expect(docs(o)).toEqual(after);
  });
});

describe("Talos ≤ 1.11 (single v1alpha1 document)", () => {
  const out = patchTalosUserData(WORKER_111, PARAMS);
  const [before] = docs(WORKER_111);
  const [after] = docs(out);

  test("host name in machine.network.hostname", () => {
    expect(after.machine.network).toEqual({ hostname: "demo-workers-7f3k2" });
    expect(after.machine.features.stableHostname).toBe(true);
  });

  test("labels into a new machine.nodeLabels", () => {
    expect(after.machine.nodeLabels).toEqual(ALLOWED_LABELS);
  });

  test("existing extraConfig kept, registerWithTaints merged by key and effect", () => {
    expect(after.machine.kubelet.extraConfig).toEqual({
      serverTLSBootstrap: true,
      registerWithTaints: [
        { key: "keep.example.com/me", effect: "NoExecute" },
        { key: "dedicated", value: "batch", effect: "NoSchedule" },
        { key: "example.com/spot", effect: "PreferNoSchedule" },
      ],
    });
    expect(after.machine.kubelet.extraArgs).toEqual({ "cloud-provider": "external" });
  });

  test("nothing else changes, comments survive", () => {
    const strip = [
      ["machine", "network"],
      ["machine", "nodeLabels"],
      ["machine", "kubelet", "extraConfig", "registerWithTaints"],
    ];
    expect(withoutPaths(after, strip)).toEqual(withoutPaths(before, strip));
    const kept = commentLines(out);
    for (const c of commentLines(WORKER_111)) expect(kept).toContain(c);
    expect(out.split("\n").length).toBeGreaterThan(WORKER_111.split("\n").length);
  });

  test("idempotent", () => {
    expect(patchTalosUserData(out, PARAMS)).toBe(out);
  });
});

describe("Talos 1.14 (KubeNodeConfig)", () => {
  const out = patchTalosUserData(WORKER_114, PARAMS);
  const before = docs(WORKER_114);
  const after = docs(out);

  test("labels and taints go into KubeNodeConfig", () => {
    expect(after[2]).toEqual({
      apiVersion: "v1alpha1",
      kind: "KubeNodeConfig",
      nodeIP: { validSubnets: ["10.42.0.0/16"] },
      labels: { "example.com/rack": "r13", ...ALLOWED_LABELS },
      taints: {
        "example.com/old": "x:NoExecute",
        dedicated: "batch:NoSchedule",
        "example.com/spot": ":PreferNoSchedule",
      },
    });
  });

  test("v1alpha1 document untouched byte for byte; host name in HostnameConfig", () => {
    const v1 = WORKER_114.slice(0, WORKER_114.indexOf("---\n"));
    expect(out.startsWith(v1)).toBe(true);
    expect(after[0]).toEqual(before[0]);
    expect(after[0].machine.nodeLabels).toBeUndefined();
    expect(after[1]).toEqual({ apiVersion: "v1alpha1", kind: "HostnameConfig", hostname: "demo-workers-7f3k2" });
  });

  test("one taint key with two effects cannot be expressed", () => {
    expect(() =>
      patchTalosUserData(WORKER_114, {
        ...PARAMS,
        taints: [
          { key: "a", value: "", effect: "NoSchedule" },
          { key: "a", value: "", effect: "NoExecute" },
        ],
      }),
    ).toThrow(/two effects/);
  });

  test("a KubeNodeConfig without labels/taints gets them added", () => {
    const text = WORKER_114.replace(/labels:\n    example.com\/rack: r13\ntaints:\n    example.com\/old: "x:NoExecute"\n/, "");
    const d = docs(patchTalosUserData(text, PARAMS));
    expect(d[2].labels).toEqual(ALLOWED_LABELS);
    expect(d[2].taints).toEqual({ dedicated: "batch:NoSchedule", "example.com/spot": ":PreferNoSchedule" });
  });
});

describe("other shapes", () => {
  test("flow-style mappings are rewritten where needed", () => {
    const text = `version: v1alpha1
machine: {type: worker, token: abc, kubelet: {image: "k:1", extraConfig: {}}, network: {}}
cluster: {clusterName: demo}
`;
    const [d] = docs(patchTalosUserData(text, PARAMS));
    expect(d).toEqual({
      version: "v1alpha1",
      machine: {
        type: "worker",
        token: "abc",
        kubelet: {
          image: "k:1",
          extraConfig: {
            registerWithTaints: [
              { key: "dedicated", value: "batch", effect: "NoSchedule" },
              { key: "example.com/spot", effect: "PreferNoSchedule" },
            ],
          },
        },
        network: { hostname: "demo-workers-7f3k2" },
        nodeLabels: ALLOWED_LABELS,
      },
      cluster: { clusterName: "demo" },
    });
  });

  test("two-space indentation, null sections, leading --- and a trailing ... marker", () => {
    const text = `---
version: v1alpha1
machine:
  type: worker
  network:
  kubelet:
cluster:
  clusterName: demo
...
`;
    const out = patchTalosUserData(text, PARAMS);
    expect(out.startsWith("---\nversion: v1alpha1\n")).toBe(true);
    expect(out.endsWith("...\n")).toBe(true);
    expect(out).toContain("\n  network:\n    hostname: demo-workers-7f3k2\n");
    const d = Bun.YAML.parse(out.replace(/\.\.\.\n$/, "")) as any;
    expect(d.machine.network).toEqual({ hostname: "demo-workers-7f3k2" });
    expect(d.machine.kubelet.extraConfig.registerWithTaints.length).toBe(2);
    expect(d.cluster).toEqual({ clusterName: "demo" });
  });

  test("blocks the line editor cannot read safely are re-serialised instead (no duplicate keys)", () => {
    const text = "version: v1alpha1 # top\n? machine\n: type: worker\n  token: abc\ncluster:\n  clusterName: demo\n---\napiVersion: v1alpha1\nkind: HostnameConfig\nauto: stable\n";
    const out = patchTalosUserData(text, PARAMS);
    expect(out.match(/^machine:/gm)?.length).toBe(1);
    expect(out).not.toContain("? machine");
    const d = docs(out);
    expect(d[0]).toEqual({
      version: "v1alpha1",
      machine: {
        type: "worker",
        token: "abc",
        nodeLabels: ALLOWED_LABELS,
        kubelet: {
          extraConfig: {
            registerWithTaints: [
              { key: "dedicated", value: "batch", effect: "NoSchedule" },
              { key: "example.com/spot", effect: "PreferNoSchedule" },
            ],
          },
        },
      },
      cluster: { clusterName: "demo" },
    });
    expect(d[1]).toEqual({ apiVersion: "v1alpha1", kind: "HostnameConfig", hostname: "demo-workers-7f3k2" });
  });

  test("label values that look like other YAML types stay strings", () => {
    const [d] = docs(
      patchTalosUserData(WORKER_111, {
        hostname: "h",
        labels: { a: "true", b: "1.0", c: "", d: "yes", e: "null", f: "0644", y: "n" },
        taints: [],
      }),
    );
    expect(d.machine.nodeLabels).toEqual({ a: "true", b: "1.0", c: "", d: "yes", e: "null", f: "0644", y: "n" });
  });

  test("taint values go-yaml would read as numbers or dates are quoted", () => {
    const out = patchTalosUserData(WORKER_113, {
      hostname: "h",
      labels: {},
      taints: [
        { key: "a", value: "1_000", effect: "NoSchedule" },
        { key: "b", value: "2001-01-01", effect: "NoSchedule" },
        { key: "c", value: "on", effect: "NoSchedule" },
      ],
    });
    expect(out).toContain('value: "1_000"');
    expect(out).toContain('value: "2001-01-01"');
    expect(out).toContain('value: "on"');
    expect(docs(out)[0].machine.kubelet.extraConfig.registerWithTaints.map((t: any) => t.value)).toEqual(["1_000", "2001-01-01", "on"]);
  });
});

describe("values are written back as they were", () => {
  // Talos reads its configuration with go-yaml, which takes `0644` as octal. The
  // yaml package's default (YAML 1.2 core) schema reads it as the number 644 and
  // writes it back as `644`: an edited document would change a file's mode.
  const FILES = `version: v1alpha1
machine:
    type: worker
    files:
        - content: x
          permissions: 0644
          path: /var/etc/x.conf
          op: create
    sysctls:
        net.core.somaxconn: 065535
        big: 012345678901234567890
    kubelet:
        extraConfig:
            cpuCFSQuota: yes
            imageGCHighThresholdPercent: +85
            evictionPressureTransitionPeriod: ~
            ratio: 1.50
`;

  test("the default yaml schema would damage this config (why the editor reads with the failsafe schema)", () => {
    const d = parseDocument(FILES);
    d.setIn(["machine", "network", "hostname"], "h");
    expect(d.toString()).toContain("permissions: 644\n");
  });

  test("an edited document keeps every untouched scalar exactly as written", () => {
    const out = patchTalosUserData(FILES, PARAMS);
    for (const line of FILES.split("\n").filter((l) => l.trim())) expect(out.split("\n")).toContain(line);
    const [d] = docs(out);
    expect(d.machine.network).toEqual({ hostname: "demo-workers-7f3k2" });
    expect(d.machine.kubelet.extraConfig.registerWithTaints).toHaveLength(2);
  });
});

describe("errors", () => {
  test("unparseable YAML", () => {
    const broken = "version: v1alpha1\nmachine:\n  type: worker\n  bad: [\n---\napiVersion: v1alpha1\nkind: HostnameConfig\nauto: stable\n";
    expect(() => patchTalosUserData(broken, PARAMS)).toThrow(/not valid YAML \(document 1 of 2\)/);
  });

  test("no v1alpha1 document where one is needed", () => {
    const onlyHostname = "apiVersion: v1alpha1\nkind: HostnameConfig\nauto: stable\n";
    expect(() => patchTalosUserData(onlyHostname, PARAMS)).toThrow(/no v1alpha1 machine configuration/);
    // Host name alone is fine without it.
    expect(docs(patchTalosUserData(onlyHostname, { hostname: "h", labels: {}, taints: [] }))[0]).toEqual({
      apiVersion: "v1alpha1",
      kind: "HostnameConfig",
      hostname: "h",
    });
  });

  test("a section that is not a mapping", () => {
    const text = "version: v1alpha1\nmachine:\n  type: worker\n  kubelet: [1, 2]\n";
    expect(() => patchTalosUserData(text, PARAMS)).toThrow(/machine.kubelet is not a mapping/);
  });

  test("empty host name", () => {
    expect(() => patchTalosUserData(WORKER_113, { ...PARAMS, hostname: "" })).toThrow(/host name is empty/);
  });
});

describe("patchUserData", () => {
  test("cloud-init and empty user-data pass through unchanged", () => {
    const ci = "#cloud-config\nruncmd: [echo hi]\n";
    expect(patchUserData("cloud-init", ci, PARAMS)).toBe(ci);
    expect(patchUserData("none", "", PARAMS)).toBe("");
  });
  test("talos is patched", () => {
    expect(patchUserData("talos", WORKER_113, PARAMS)).toBe(patchTalosUserData(WORKER_113, PARAMS));
  });
});
