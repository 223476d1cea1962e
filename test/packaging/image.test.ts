// The container image, built and run by a real engine (podman 4.3 with runc).
// scripts/image-build.sh builds Containerfile unchanged for linux/amd64 and
// linux/arm64 (the per-arch stages only COPY, so no emulator), against
// stand-ins for its two base images made from Debian 12's packages, and makes
// the multi-arch index of both. Then:
//   - the images: platform, config (user 65532, entrypoint, ports), the binary
//     of the right architecture, glibc, CA bundle, tzdata, nonroot, no shell;
//   - the amd64 image runs as the Deployment in deploy/ runs it: its args, env
//     and volume mounts, uid/gid 65532, read-only root, all capabilities
//     dropped, no privilege escalation. Seen from the host: uid 65532 and a
//     read-only root. It serves NodeGroups over mutual TLS (server name = the
//     host of CA's cloud-config address) and refuses a client without a
//     certificate; SIGTERM drains a call in flight and the container exits 0;
//   - Cluster Autoscaler 1.36.1's own externalgrpc client (test/ca, Go) passes
//     its whole sequence against the provider running in this image.
// Every container and image made here is removed afterwards.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BINARY_PATH, ELF_MACHINE, readElf } from "../../packaging/rootfs";
import { callNodeGroups, ensureBinary, freePort, httpGet, parseYamlDocs, REPO_ROOT, WORK } from "./lib";
import { podman, podmanEnv, podmanOk, removeContainers, track, uniqueName } from "./podman";
import { makePki, type Pki } from "../helpers/certs";
import { connect } from "../helpers/grpc";
import { startSim } from "../helpers/procs";

const TAG = `localhost/autoscaler-cloudscale:test-${process.pid}`;
const DEPLOY = join(REPO_ROOT, "deploy");
const docs = ["provider-deployment.yaml", "provider-config.yaml", "certificates.yaml", "cluster-autoscaler-cloud-config.yaml"].flatMap((f) => parseYamlDocs(join(DEPLOY, f))).map((d) => d.doc);
const deployment = docs.find((d) => d.kind === "Deployment" && d.metadata.name === "autoscaler-cloudscale");
const pod = deployment.spec.template.spec;
const container = pod.containers[0];
const serverCert = docs.find((d) => d.kind === "Certificate" && d.spec.secretName === "autoscaler-cloudscale-server-tls");
const cloudConfig = Bun.YAML.parse(docs.find((d) => d.kind === "ConfigMap" && d.metadata.name === "cluster-autoscaler-cloud-config").data["cloud-config.yaml"]) as any;
const caHost = String(cloudConfig.address).replace(/:\d+$/, "");
const report: string[] = [];
let built = false;

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error("the image proof needs root (podman as root)");
  podmanEnv();
  const bins = { x64: ensureBinary("x64"), arm64: ensureBinary("arm64") };
  const t0 = performance.now();
  const p = Bun.spawn(["bash", "scripts/image-build.sh", "--x64-bin", bins.x64, "--arm64-bin", bins.arm64, "--tag", TAG], { cwd: REPO_ROOT, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`scripts/image-build.sh failed (${code}):\n${err}`);
  built = true;
  expect(out.trim().split("\n").at(-1)).toBe(`${TAG} ${TAG}-amd64 ${TAG}-arm64`);
  report.push(`built in ${((performance.now() - t0) / 1000).toFixed(1)}s:`, ...err.split("\n").filter((l) => /^image-build: (amd64|arm64|total)/.test(l)).map((l) => "  " + l));
}, 900000);

afterAll(async () => {
  await removeContainers();
  if (built) await Bun.spawn(["bash", "scripts/image-build.sh", "--remove", "--tag", TAG], { cwd: REPO_ROOT, stdout: "ignore", stderr: "ignore" }).exited;
  if (report.length) console.log(["image proof:", ...report.map((l) => "  " + l)].join("\n"));
}, 180000);

const inspect = async (ref: string) => JSON.parse(await podmanOk(["image", "inspect", ref]))[0];

/** Runs f with the image's file system mounted read-only on the host. */
async function withMounted<T>(ref: string, f: (root: string) => T | Promise<T>): Promise<T> {
  const root = (await podmanOk(["image", "mount", ref])).trim();
  try {
    return await f(root);
  } finally {
    await podman(["image", "unmount", ref]);
  }
}

function walk(root: string, dir = ""): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory()) out.push(...walk(root, p));
    else out.push(p);
  }
  return out;
}

describe("the image from Containerfile", () => {
  test("one index for linux/amd64 and linux/arm64; each image is the final stage's config", async () => {
    const index = JSON.parse(await podmanOk(["manifest", "inspect", TAG]));
    expect(index.manifests.map((m: any) => `${m.platform.os}/${m.platform.architecture}`).sort()).toEqual(["linux/amd64", "linux/arm64"]);
    for (const arch of ["amd64", "arm64"]) {
      const img = await inspect(`${TAG}-${arch}`);
      expect({ arch: img.Architecture, os: img.Os }).toEqual({ arch, os: "linux" });
      expect(img.Config.User).toBe("65532:65532");
      expect(img.Config.Entrypoint).toEqual([BINARY_PATH]);
      expect(img.Config.Cmd).toEqual(["--help"]);
      expect(Object.keys(img.Config.ExposedPorts).sort()).toEqual(["8086/tcp", "8087/tcp"]);
      // From the (stand-in) distroless base:
      expect(img.Config.WorkingDir).toBe("/home/nonroot");
      expect(img.Config.Env).toContain("SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt");
      report.push(`${arch}: ${(img.Size / 1048576).toFixed(1)} MiB, ${img.RootFS.Layers.length} layers, user ${img.Config.User}`);
    }
  });

  for (const [arch, elf] of [["amd64", "x64"], ["arm64", "arm64"]] as const) {
    test(`${arch}: the binary of its architecture, glibc, CA bundle, tzdata, user nonroot, and no shell`, async () => {
      await withMounted(`${TAG}-${arch}`, (root) => {
        const bin = readElf(join(root, BINARY_PATH));
        expect(bin.machine).toBe(ELF_MACHINE[elf]);
        expect(statSync(join(root, BINARY_PATH)).mode & 0o777).toBe(0o555);
        // The loader the binary names is a file (the Containerfile's COPY followed Debian's symlinks).
        expect(statSync(join(root, bin.interpreter!)).isFile()).toBe(true);
        const bundle = readFileSync(join(root, "etc/ssl/certs/ca-certificates.crt"), "utf8");
        expect(bundle.match(/BEGIN CERTIFICATE/g)!.length).toBeGreaterThan(100);
        expect(existsSync(join(root, "usr/share/zoneinfo/Europe/Zurich"))).toBe(true);
        const passwd = readFileSync(join(root, "etc/passwd"), "utf8");
        expect(passwd).toContain("nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n");
        expect(readFileSync(join(root, "etc/group"), "utf8")).toContain("nonroot:x:65532:\n");
        const files = walk(root);
        const shells = files.filter((f) => /\/(sh|bash|dash|ash|zsh|busybox|nologin|apt|dpkg)$/.test(f));
        expect(shells).toEqual([]);
        expect(existsSync(join(root, "bin/sh"))).toBe(false);
        report.push(`${arch}: ${files.length} files; ELF machine ${bin.machine}, interpreter ${bin.interpreter}; no shell`);
      });
    });
  }
});

describe("the amd64 image, run as deploy/provider-deployment.yaml runs it", () => {
  const IMAGE = `${TAG}-amd64`;

  test("no arguments prints the help (CMD); there is no shell to exec", async () => {
    const help = await podman(["run", "--rm", "--network", "host", IMAGE]);
    expect(help.code).toBe(0);
    expect(help.out + help.err).toContain("serve");
    const sh = await podman(["run", "--rm", "--network", "host", "--entrypoint", "/bin/sh", IMAGE, "-c", "true"]);
    expect(sh.code).not.toBe(0);
    expect(sh.err).toMatch(/no such file or directory/);
  });

  test("serve with the Deployment's args, env and mounts: uid 65532, read-only root, mutual TLS, SIGTERM drains", async () => {
    const base = join(WORK, "image-run");
    rmSync(base, { recursive: true, force: true });
    const pki: Pki = makePki({ dir: join(base, "pki"), serverSans: serverCert.spec.dnsNames });
    // The Deployment's volumes, filled as the kubelet would (files 0644 in Secret and ConfigMap volumes).
    const volumeFiles: Record<string, Record<string, string>> = {
      "autoscaler-cloudscale-config": docs.find((d) => d.kind === "ConfigMap" && d.metadata.name === "autoscaler-cloudscale-config").data,
      "autoscaler-cloudscale-userdata": { "workers.yaml": readFileSync(join(DEPLOY, "talos-worker.example.yaml"), "utf8") },
      "autoscaler-cloudscale-server-tls": { "tls.crt": readFileSync(pki.serverCert, "utf8"), "tls.key": readFileSync(pki.serverKey, "utf8"), "ca.crt": readFileSync(pki.caCert, "utf8") },
    };
    const volumes: string[] = [];
    for (const vm of container.volumeMounts) {
      const vol = pod.volumes.find((v: any) => v.name === vm.name);
      const files = volumeFiles[vol.configMap?.name ?? vol.secret?.secretName];
      if (!files) throw new Error(`volume ${vm.name}: nothing to fill it with`);
      const dir = join(base, "volumes", vm.name);
      mkdirSync(dir, { recursive: true });
      for (const [k, v] of Object.entries(files)) writeFileSync(join(dir, k), v, { mode: 0o644 });
      volumes.push("-v", `${vm.subPath ? join(dir, vm.subPath) : dir}:${vm.mountPath}:ro`);
    }
    const sim = await startSim(["--boot-seconds", "1"], { bin: ensureBinary("x64") });
    const name = track(uniqueName("acs-image"));
    try {
      const env = container.env.flatMap((e: any) => {
        if (e.valueFrom?.secretKeyRef?.name !== "autoscaler-cloudscale-token") throw new Error(`unexpected env ${e.name}`);
        return ["-e", `${e.name}=test-token`];
      });
      const grpcPort = await freePort();
      const healthPort = await freePort();
      const args = [...container.args];
      args[args.indexOf("--listen") + 1] = `127.0.0.1:${grpcPort}`;
      args[args.indexOf("--health-listen") + 1] = `127.0.0.1:${healthPort}`;
      const sc = container.securityContext;
      expect({ ro: sc.readOnlyRootFilesystem, esc: sc.allowPrivilegeEscalation, drop: sc.capabilities.drop }).toEqual({ ro: true, esc: false, drop: ["ALL"] });
      await podmanOk([
        "run", "-d", "--name", name, "--network", "host",
        "--user", `${pod.securityContext.runAsUser}:${pod.securityContext.runAsGroup}`,
        "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        ...volumes, ...env,
        // The one addition: the API is the simulator.
        "-e", `CLOUDSCALE_API_URL=${sim.apiUrl}`,
        IMAGE, ...args,
      ]);
      const t0 = performance.now();
      let logs = "";
      for (let i = 0; i < 120 && !logs.includes("serving gRPC"); i++) {
        await Bun.sleep(250);
        const l = await podman(["logs", name]);
        logs = l.out + l.err;
      }
      expect(logs).toContain("serving gRPC");
      const ready = performance.now() - t0;

      // Seen from the host: who the process is and how its root is mounted.
      const pid = (await podmanOk(["inspect", "--format", "{{.State.Pid}}", name])).trim();
      const uids = readFileSync(`/proc/${pid}/status`, "utf8").match(/^Uid:\s+(.*)$/m)![1]!.split(/\s+/);
      const gids = readFileSync(`/proc/${pid}/status`, "utf8").match(/^Gid:\s+(.*)$/m)![1]!.split(/\s+/);
      expect({ uids, gids }).toEqual({ uids: ["65532", "65532", "65532", "65532"], gids: ["65532", "65532", "65532", "65532"] });
      const rootMount = readFileSync(`/proc/${pid}/mountinfo`, "utf8").split("\n").find((l) => l.split(" ")[4] === "/")!;
      expect(rootMount.split(" ")[5]!.split(",")).toContain("ro");
      const capEff = readFileSync(`/proc/${pid}/status`, "utf8").match(/^CapEff:\s+(\S+)$/m)![1];
      expect(capEff).toBe("0000000000000000");

      expect((await httpGet(healthPort, "/healthz")).status).toBe(200);
      const res = await callNodeGroups({ port: grpcPort, pki, serverName: caHost });
      expect(res.nodeGroups.map((g) => `${g.id}[${g.minSize}..${g.maxSize}]`)).toEqual(["workers[0..3]"]);
      expect(callNodeGroups({ port: grpcPort, pki, serverName: caHost, clientCert: false, timeoutMs: 5000 })).rejects.toThrow();

      // Drain: a Refresh waits on a slow list; SIGTERM arrives while it is in flight.
      await sim.faults({ rules: [{ method: "GET", path: "/v1/servers", latencyMs: 3000 }] });
      const c = connect(grpcPort, pki, { serverName: caHost, ownConnection: true });
      try {
        const countBefore = (await sim.counters())["GET /v1/servers"] ?? 0;
        const refresh = c.call("Refresh", {}, { deadlineMs: 20000 }).then(
          () => "ok",
          (e: Error) => `failed: ${e.message}`,
        );
        for (let i = 0; i < 100 && ((await sim.counters())["GET /v1/servers"] ?? 0) === countBefore; i++) await Bun.sleep(50);
        expect((await sim.counters())["GET /v1/servers"]).toBeGreaterThan(countBefore);
        await podmanOk(["kill", "--signal", "TERM", name]);
        expect(await refresh).toBe("ok");
      } finally {
        c.close();
      }
      await podmanOk(["wait", name], { timeoutMs: 60000 });
      const exit = (await podmanOk(["inspect", "--format", "{{.State.ExitCode}}", name])).trim();
      const l = await podman(["logs", name]);
      const all = l.out + l.err;
      expect(all).toMatch(/shutting down: draining in-flight calls.*SIGTERM/);
      expect(all).toMatch(/inFlight[=":]+1/);
      expect(exit).toBe("0");
      report.push(
        `amd64 serve: "serving gRPC" ${ready.toFixed(0)} ms after podman run; uid/gid 65532, root mounted ro, no capabilities; NodeGroups over mTLS (server name ${caHost}) -> ${res.nodeGroups.map((g) => g.id).join(",")}; no client certificate refused; a Refresh in flight at SIGTERM answered, exit ${exit}`,
      );
    } finally {
      await sim.stop();
    }
  }, 180000);

  test("Cluster Autoscaler 1.36.1's own externalgrpc client (test/ca) passes against the container", async () => {
    const t0 = performance.now();
    const p = Bun.spawn(["bash", "scripts/test-ca.sh", "test/ca"], {
      cwd: REPO_ROOT,
      // Over mutual TLS, as the image is deployed (the h2c runs of test/ca stay with the binary's own run).
      env: { ...podmanEnv(), AUTOSCALER_CLOUDSCALE_BIN: ensureBinary("x64"), AUTOSCALER_CLOUDSCALE_SERVE_IMAGE: IMAGE, CA_TEST_RUN: "TestCA1361OverMTLS|TestCA1361MTLSDial" },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    const summary = out.trim().split("\n").at(-1)!;
    const m = summary.match(/^(\d+) passed, (\d+) failed$/);
    if (!m || m[2] !== "0") throw new Error(`scripts/test-ca.sh test/ca against ${IMAGE}: ${summary}\n${out.slice(-6000)}\n${err.slice(-2000)}`);
    // Every server of the run was the container (the harness logs each one).
    const containers = out.match(/serve runs in the image \S+ as container \S+/g) ?? [];
    expect(containers.length).toBeGreaterThanOrEqual(2);
    expect(out).not.toMatch(/--- FAIL/);
    report.push(`CA 1.36.1 externalgrpc (test/ca) against ${IMAGE}: ${summary} (${containers.length} containers) in ${((performance.now() - t0) / 1000).toFixed(0)}s`);
  }, 1800000);
});
