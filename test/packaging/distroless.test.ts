// Proof of the distroless image (Containerfile) without a container engine: the
// root the final stage would run the binary from is assembled from
// packaging/rootfs.list (glibc files from Debian 12's libc6 of the arch, the same
// package the distroless base is made of) and the binary, and nothing else. The
// binary then runs in it the way the Deployment in deploy/ runs it: private mount
// and PID namespaces with /proc mounted, chroot, uid/gid 65532, a clean
// environment (the image's PATH/SSL_CERT_FILE/HOME plus the Deployment's env),
// the Deployment's volume mounts (ConfigMap, user-data Secret, TLS Secret) bind-
// mounted read-only at its mountPaths, and the Deployment's serve arguments, only
// with the listen addresses moved to free ports on 127.0.0.1.
//
// arm64 runs the same way through qemu's static user-mode emulator, the one file
// added to its root.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, posix } from "node:path";
import { ARCHES, type Arch, assembleRoot, BINARY_PATH, entriesFor } from "../../packaging/rootfs";
import {
  callNodeGroups,
  ensureBinary,
  ensureDeps,
  freePort,
  httpGet,
  type Mount,
  parseYamlDocs,
  REPO_ROOT,
  requireNamespaces,
  runInRoot,
  startInRoot,
  stopAll,
  WORK,
} from "./lib";
import { makePki, type Pki } from "../helpers/certs";
import { startSim } from "../helpers/procs";

const DEPLOY = join(REPO_ROOT, "deploy");
const docs = [
  ...parseYamlDocs(join(DEPLOY, "provider-deployment.yaml")),
  ...parseYamlDocs(join(DEPLOY, "provider-config.yaml")),
  ...parseYamlDocs(join(DEPLOY, "certificates.yaml")),
  ...parseYamlDocs(join(DEPLOY, "cluster-autoscaler-cloud-config.yaml")),
].map((d) => d.doc);
const deployment = docs.find((d) => d.kind === "Deployment" && d.metadata.name === "autoscaler-cloudscale");
const container = deployment.spec.template.spec.containers[0];
const providerConfig = docs.find((d) => d.kind === "ConfigMap" && d.metadata.name === "autoscaler-cloudscale-config");
const serverCert = docs.find((d) => d.kind === "Certificate" && d.spec.secretName === "autoscaler-cloudscale-server-tls");
const cloudConfig = Bun.YAML.parse(docs.find((d) => d.kind === "ConfigMap" && d.metadata.name === "cluster-autoscaler-cloud-config").data["cloud-config.yaml"]) as any;
const caHost = String(cloudConfig.address).replace(/:\d+$/, "");
const podUser = `${deployment.spec.template.spec.securityContext.runAsUser}:${deployment.spec.template.spec.securityContext.runAsGroup}`;

/** What the distroless base image sets in its config (PATH, SSL_CERT_FILE) and what the kubelet adds (HOME of uid 65532). */
const IMAGE_ENV = {
  PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  SSL_CERT_FILE: "/etc/ssl/certs/ca-certificates.crt",
  HOME: "/home/nonroot",
};

const report: string[] = [];

afterAll(async () => {
  await stopAll();
  if (report.length) console.log(["distroless proof:", ...report.map((l) => "  " + l)].join("\n"));
});

function listFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(join(root, d), { withFileTypes: true })) {
      const p = posix.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(p);
    }
  };
  walk("/");
  return out.sort();
}

for (const arch of ARCHES) {
  describe(`distroless root, ${arch}`, () => {
    let root: string;
    let pki: Pki;
    let mounts: Mount[];
    let volumesDir: string;
    const emulated = arch !== (process.arch === "arm64" ? "arm64" : "x64");
    const t = (ms: number) => (emulated ? ms * 6 : ms);

    beforeAll(() => {
      requireNamespaces();
      const deps = ensureDeps();
      const binary = ensureBinary(arch);
      const base = join(WORK, `distroless-${arch}`);
      rmSync(base, { recursive: true, force: true });
      root = join(base, "root");
      assembleRoot({ arch, binary, libc6Root: deps.libc6Root[arch], dest: root });
      report.push(`${arch}: root from packaging/rootfs.list with libc6 ${deps.libc6Version[arch]}, binary ${(statSync(binary).size / 1048576).toFixed(1)} MiB`);

      // The Deployment's volumes, filled as the kubelet would.
      volumesDir = join(base, "volumes");
      pki = makePki({ dir: join(base, "pki"), serverSans: serverCert.spec.dnsNames });
      const volumeFiles: Record<string, Record<string, string>> = {
        "autoscaler-cloudscale-config": providerConfig.data,
        "autoscaler-cloudscale-userdata": { "workers.yaml": readFileSync(join(DEPLOY, "talos-worker.example.yaml"), "utf8") },
        "autoscaler-cloudscale-server-tls": { "tls.crt": readFileSync(pki.serverCert, "utf8"), "tls.key": readFileSync(pki.serverKey, "utf8"), "ca.crt": readFileSync(pki.caCert, "utf8") },
      };
      mounts = [{ type: "proc", target: "/proc" }];
      for (const vm of container.volumeMounts) {
        const vol = deployment.spec.template.spec.volumes.find((v: any) => v.name === vm.name);
        const name = vol.configMap?.name ?? vol.secret?.secretName;
        const files = volumeFiles[name];
        if (!files) throw new Error(`volume ${vm.name} refers to ${name}, which this proof cannot fill`);
        const dir = join(volumesDir, vm.name);
        mkdirSync(dir, { recursive: true });
        for (const [k, v] of Object.entries(files)) writeFileSync(join(dir, k), v, { mode: 0o644 });
        mounts.push(
          vm.subPath
            ? { type: "bind", source: join(dir, vm.subPath), target: vm.mountPath, readOnly: true, file: true }
            : { type: "bind", source: dir, target: vm.mountPath, readOnly: true },
        );
      }
    }, 600000);

    test("the root holds exactly the listed files", () => {
      expect(listFiles(root)).toEqual(entriesFor(arch).map((e) => e.path).sort());
    });

    test("--help works with nothing else on the file system", async () => {
      const r = await runInRoot({ root, arch, argv: [BINARY_PATH, "--help"], env: IMAGE_ENV, user: podUser, mounts: [{ type: "proc", target: "/proc" }] }, t(20000));
      expect(r.out).toContain("serve");
      expect(r.code).toBe(0);
    }, 120000);

    test("version prints version and commit; start time", async () => {
      const r = await runInRoot({ root, arch, argv: [BINARY_PATH, "version"], env: IMAGE_ENV, user: podUser, mounts: [{ type: "proc", target: "/proc" }] }, t(20000));
      expect(r.code).toBe(0);
      expect(r.out.trim()).toMatch(/^autoscaler-cloudscale \S+ \(commit [0-9a-f]{7,}(-dirty)?|unknown\)$/);
      report.push(`${arch}: \`version\` in the chroot${emulated ? " (qemu)" : ""}: ${r.ms.toFixed(0)} ms incl. namespace setup -> ${r.out.trim()}`);
    }, 120000);

    // Defined for the native arch only: under the emulator the abort of PID 1 leaves qemu hanging.
    if (!emulated) test("without /proc the binary cannot start (why /proc is the one mount needed)", async () => {
      const r = await runInRoot({ root, arch, argv: [BINARY_PATH, "version"], env: IMAGE_ENV, user: podUser, mounts: [] }, t(20000));
      expect(r.code).not.toBe(0);
    }, 120000);

    test("validate, then serve the Deployment's arguments and answer NodeGroups over mTLS", async () => {
      const sim = await startSim(["--boot-seconds", "1"], { bin: ensureBinary(process.arch === "arm64" ? "arm64" : "x64") });
      try {
        const env = {
          ...IMAGE_ENV,
          ...Object.fromEntries(
            container.env.map((e: any) => {
              if (e.valueFrom?.secretKeyRef?.name !== "autoscaler-cloudscale-token") throw new Error(`unexpected env ${e.name}`);
              return [e.name, "test-token"];
            }),
          ),
          // The one addition: the API is the simulator instead of api.cloudscale.ch.
          CLOUDSCALE_API_URL: sim.apiUrl,
        };
        const configPath = container.args[container.args.indexOf("--config") + 1];
        const v = await runInRoot({ root, arch, argv: [BINARY_PATH, "validate", "--config", configPath], env, user: podUser, mounts }, t(30000));
        expect({ code: v.code, out: v.out }).toEqual({ code: 0, out: expect.any(String) });

        const grpcPort = await freePort();
        const healthPort = await freePort();
        const args = [...container.args];
        args[args.indexOf("--listen") + 1] = `127.0.0.1:${grpcPort}`;
        args[args.indexOf("--health-listen") + 1] = `127.0.0.1:${healthPort}`;
        const t0 = performance.now();
        const p = startInRoot({ root, arch, argv: [BINARY_PATH, ...args], env, user: podUser, mounts });
        try {
          await p.waitFor(/serving gRPC/, t(20000));
          const ready = performance.now() - t0;
          expect((await httpGet(healthPort, "/healthz")).status).toBe(200);
          const res = await callNodeGroups({ port: grpcPort, pki, serverName: caHost });
          expect(res.nodeGroups.map((g) => g.id)).toEqual(["workers"]);
          expect(res.nodeGroups[0]!.maxSize).toBe(3);
          // mTLS is enforced: no client certificate, no answer.
          expect(callNodeGroups({ port: grpcPort, pki, serverName: caHost, clientCert: false, timeoutMs: t(5000) })).rejects.toThrow();
          const code = await p.stop(t(10000));
          expect(code).toBe(0);
          report.push(
            `${arch}: serve as ${podUser} with the Deployment's args/mounts: "serving gRPC" after ${ready.toFixed(0)} ms, /healthz 200, NodeGroups over mTLS (server name ${caHost}) -> ${res.nodeGroups.map((g) => `${g.id}[${g.minSize}..${g.maxSize}]`).join(",")}, no-client-cert call rejected, SIGTERM exit ${code}`,
          );
        } finally {
          if (p.proc.exitCode === null) await p.stop(5000).catch(() => {});
        }
      } finally {
        await sim.stop();
      }
    }, 180000);
  });
}
