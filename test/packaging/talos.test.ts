// Proof of the Talos system extension. The OCI tarballs are built by the same
// code scripts/release.sh uses, then treated the way Talos does:
//   - the OCI layout is checked (digests, sizes, media types, platform in
//     index.json, which the imager's ociPath needs) and its layers are flattened
//     into a directory, which must hold only manifest.yaml and rootfs/
//     (pkg/machinery/extensions/load.go);
//   - manifest.yaml, the contents of rootfs/ and the service definition are
//     validated against the fields and rules Talos reads
//     (extensions/metadata.go, validate.go, extensions.go, services/services.go);
//   - the service runs from its own root as machined + containerd would
//     (internal/app/machined/pkg/system/services/extension.go): an overlay over
//     /usr/local/lib/containers/<name> made read-only, /proc, /dev, /dev/shm,
//     /sys, /run, the host's /etc/hosts and /etc/resolv.conf, every
//     ExtensionServiceConfig configFiles entry bind-mounted read-only at its
//     mountPath, the environment containerd's PATH + the service's + the
//     ExtensionServiceConfig's, uid 0, and exactly the entrypoint and args of the
//     service definition. The one change to the example ExtensionServiceConfig:
//     real certificates and token, and CLOUDSCALE_API_URL pointing at the simulator.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, posix } from "node:path";
import {
  buildAll,
  EXTENSION_NAME,
  extensionTarName,
  MT,
  SERVICE_DEFINITION,
  SERVICE_ROOT,
} from "../../packaging/talos/build-extension";
import { ARCHES, type Arch, ELF_MACHINE, entriesFor, OCI_ARCH, readElf } from "../../packaging/rootfs";
import {
  callNodeGroups,
  ensureBinary,
  ensureDeps,
  HOST_ARCH,
  httpGet,
  type Mount,
  portIsFree,
  REPO_ROOT,
  requireNamespaces,
  runInRoot,
  startInRoot,
  stopAll,
  WORK,
} from "./lib";
import { makePki, type Pki } from "../helpers/certs";
import { startSim } from "../helpers/procs";

const TALOS_DIR = join(REPO_ROOT, "packaging", "talos");
const OUT = join(WORK, "talos", "out");
const report: string[] = [];

// --- what Talos accepts (read from siderolabs/talos, pkg/machinery/extensions) ---
const ALLOWED_PREFIXES = ["/usr/local"]; // the part of AllowedPaths our files may use
const SPEC_KEYS = ["name", "container", "depends", "restart", "logToConsole"];
const CONTAINER_KEYS = ["entrypoint", "environment", "environmentFile", "args", "mounts", "security"];
const SECURITY_KEYS = ["writeableSysfs", "maskedPaths", "readonlyPaths", "writeableRootfs", "rootfsPropagation"];
const DEPENDENCY_KEYS = ["service", "path", "network", "time", "configuration"];
const NETWORK_STATUSES = ["addresses", "connectivity", "hostname", "etcfiles"];
const RESTART_KINDS = ["always", "never", "untilSuccess"];
const MOUNT_KEYS = ["destination", "type", "source", "options", "uidMappings", "gidMappings"];
const ESC_KEYS = ["apiVersion", "kind", "name", "configFiles", "environment"];
const CONTAINERD_DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

function onlyKeys(obj: Record<string, unknown>, allowed: string[], where: string): void {
  const extra = Object.keys(obj).filter((k) => !allowed.includes(k));
  if (extra.length) throw new Error(`${where}: unknown field(s) ${extra.join(", ")} (Talos would ignore them)`);
}

/** semver range check as blang/semver ParseRange does it, after Talos' trim of "v". */
function satisfies(constraint: string, version: string): boolean {
  const trim = (s: string) => s.replace(/v(?=\d)/g, "");
  const parse = (s: string) => s.split(".").map(Number);
  const cmp = (a: number[], b: number[]) => {
    for (let i = 0; i < 3; i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) - (b[i] ?? 0);
    return 0;
  };
  const v = parse(trim(version));
  return trim(constraint)
    .split("||")
    .some((alt) =>
      alt
        .trim()
        .split(/\s+(?=[<>=!])/)
        .every((part) => {
          const m = part.trim().match(/^(>=|<=|>|<|==|=|!=)?\s*(\d+\.\d+\.\d+)$/);
          if (!m) throw new Error(`cannot parse version constraint part "${part}"`);
          const c = cmp(v, parse(m[2]!));
          return { ">=": c >= 0, "<=": c <= 0, ">": c > 0, "<": c < 0, "!=": c !== 0, "=": c === 0, "==": c === 0 }[m[1] ?? "="]!;
        }),
    );
}

function localhostIsV4Only(): boolean {
  const names = readFileSync("/etc/hosts", "utf8")
    .split("\n")
    .map((l) => l.replace(/#.*/, "").trim().split(/\s+/))
    .filter((f) => f.slice(1).includes("localhost"))
    .map((f) => f[0]);
  return names.length > 0 && names.every((a) => a === "127.0.0.1");
}

const sha256 = (b: Uint8Array) => "sha256:" + createHash("sha256").update(b).digest("hex");

interface Unpacked {
  layoutDir: string;
  index: any;
  manifests: { desc: any; manifest: any; config: any }[];
}

function unpackLayout(tar: string, dest: string): Unpacked {
  rmSync(dest, { recursive: true, force: true });
  mkdirSync(dest, { recursive: true });
  const r = Bun.spawnSync(["tar", "-xf", tar, "-C", dest]);
  if (r.exitCode !== 0) throw new Error(`tar -xf ${tar}: ${r.stderr.toString()}`);
  expect(readdirSync(dest).sort()).toEqual(["blobs", "index.json", "oci-layout"]);
  expect(JSON.parse(readFileSync(join(dest, "oci-layout"), "utf8"))).toEqual({ imageLayoutVersion: "1.0.0" });
  const blob = (d: { digest: string; size: number }) => {
    const data = readFileSync(join(dest, "blobs", "sha256", d.digest.replace(/^sha256:/, "")));
    expect(sha256(data)).toBe(d.digest);
    expect(data.byteLength).toBe(d.size);
    return data;
  };
  const index = JSON.parse(readFileSync(join(dest, "index.json"), "utf8"));
  expect(index.schemaVersion).toBe(2);
  expect(index.mediaType).toBe(MT.index);
  const manifests = index.manifests.map((desc: any) => {
    expect(desc.mediaType).toBe(MT.manifest);
    // The imager's ociPath input picks the manifest by platform (pkg/imager/profile/input.go).
    expect(desc.platform.os).toBe("linux");
    const manifest = JSON.parse(blob(desc).toString());
    expect(manifest.schemaVersion).toBe(2);
    expect(manifest.mediaType).toBe(MT.manifest);
    expect(manifest.config.mediaType).toBe(MT.config);
    const config = JSON.parse(blob(manifest.config).toString());
    expect(config.architecture).toBe(desc.platform.architecture);
    expect(config.os).toBe("linux");
    expect(config.rootfs.type).toBe("layers");
    expect(manifest.layers.length).toBe(config.rootfs.diff_ids.length);
    manifest.layers.forEach((l: any, i: number) => {
      expect(l.mediaType).toBe(MT.layerGzip);
      expect(sha256(Bun.gunzipSync(blob(l)))).toBe(config.rootfs.diff_ids[i]);
    });
    return { desc, manifest, config };
  });
  return { layoutDir: dest, index, manifests };
}

/** Flattens the image's layers into dest, as the imager's crane.Export does. */
function flatten(u: Unpacked, m: { manifest: any }, dest: string): void {
  rmSync(dest, { recursive: true, force: true });
  mkdirSync(dest, { recursive: true });
  for (const l of m.manifest.layers) {
    const r = Bun.spawnSync(["tar", "-xzf", join(u.layoutDir, "blobs", "sha256", l.digest.slice(7)), "-C", dest, "--same-permissions", "--numeric-owner"]);
    if (r.exitCode !== 0) throw new Error(`extracting layer: ${r.stderr.toString()}`);
  }
}

type Stats = import("node:fs").Stats;
function walk(root: string): { path: string; st: Stats }[] {
  const out: { path: string; st: Stats }[] = [];
  const go = (rel: string) => {
    for (const name of readdirSync(join(root, rel))) {
      const p = posix.join(rel, name);
      const st = lstatSync(join(root, p));
      out.push({ path: p, st });
      if (st.isDirectory()) go(p);
    }
  };
  go("/");
  return out;
}

const escExample = Bun.YAML.parse(readFileSync(join(TALOS_DIR, "extension-service-config.example.yaml"), "utf8")) as any;
const caCloudConfig = Bun.YAML.parse(
  (Bun.YAML.parse(readFileSync(join(TALOS_DIR, "cluster-autoscaler-cloud-config.example.yaml"), "utf8")) as any).data["cloud-config.yaml"],
) as any;

let version: string;
beforeAll(() => {
  requireNamespaces();
  ensureDeps();
  version = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")).version;
  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(OUT, { recursive: true });
  const t0 = performance.now();
  buildAll({ version, outDir: OUT, binaries: { x64: ensureBinary("x64"), arm64: ensureBinary("arm64") } });
  report.push(`built ${readdirSync(OUT).map((f) => `${f} (${(statSync(join(OUT, f)).size / 1048576).toFixed(1)} MiB)`).join(", ")} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}, 600000);

afterAll(async () => {
  await stopAll();
  if (report.length) console.log(["talos proof:", ...report.map((l) => "  " + l)].join("\n"));
});

test("the multi-arch layout lists both platforms with the per-arch manifests", () => {
  const all = unpackLayout(join(OUT, extensionTarName()), join(WORK, "talos", "layout-all"));
  expect(all.manifests.map((m) => m.desc.platform.architecture).sort()).toEqual(["amd64", "arm64"]);
  for (const arch of ARCHES) {
    const single = JSON.parse(Bun.spawnSync(["tar", "-xOf", join(OUT, extensionTarName(arch)), "index.json"]).stdout.toString());
    const mine = all.manifests.find((m) => m.desc.platform.architecture === OCI_ARCH[arch])!;
    expect(mine.desc.digest).toBe(single.manifests[0].digest);
  }
});

test("the ExtensionServiceConfig example is a valid document for the service", () => {
  onlyKeys(escExample, ESC_KEYS, "ExtensionServiceConfig");
  expect(escExample.apiVersion).toBe("v1alpha1");
  expect(escExample.kind).toBe("ExtensionServiceConfig");
  expect(escExample.name).toBe(EXTENSION_NAME);
  expect((escExample.configFiles ?? []).length + (escExample.environment ?? []).length).toBeGreaterThan(0);
  const names = new Set<string>();
  for (const f of escExample.configFiles) {
    onlyKeys(f, ["content", "mountPath"], "configFiles[]");
    expect(typeof f.content).toBe("string");
    expect(f.content.length).toBeGreaterThan(0);
    expect(posix.isAbsolute(f.mountPath)).toBe(true);
    // Talos stores each file under a name made from mountPath ("/" -> "-"); two must not collide.
    const stored = f.mountPath.replace(/^\//, "").replaceAll("/", "-");
    expect(names.has(stored)).toBe(false);
    names.add(stored);
  }
  for (const e of escExample.environment) expect(e).toMatch(/^[A-Za-z_][A-Za-z0-9_]*=/);
  expect(escExample.environment.some((e: string) => e.startsWith("CLOUDSCALE_API_TOKEN="))).toBe(true);
});

for (const arch of ARCHES) {
  describe(`Talos extension, ${arch}`, () => {
    let ext: string;
    let spec: any;
    let serviceRoot: string;
    const emulated = arch !== HOST_ARCH;
    const t = (ms: number) => (emulated ? ms * 6 : ms);

    beforeAll(() => {
      const u = unpackLayout(join(OUT, extensionTarName(arch)), join(WORK, "talos", `layout-${arch}`));
      expect(u.manifests.length).toBe(1);
      expect(u.manifests[0]!.desc.platform.architecture).toBe(OCI_ARCH[arch]);
      ext = join(WORK, "talos", `ext-${arch}`);
      flatten(u, u.manifests[0]!, ext);
      serviceRoot = join(ext, "rootfs", SERVICE_ROOT);
    }, 120000);

    test("the image filesystem holds only manifest.yaml and rootfs/", () => {
      expect(readdirSync(ext).sort()).toEqual(["manifest.yaml", "rootfs"]);
    });

    test("manifest.yaml has the fields Talos reads and a satisfiable compatibility range", () => {
      const m = Bun.YAML.parse(readFileSync(join(ext, "manifest.yaml"), "utf8")) as any;
      onlyKeys(m, ["version", "metadata"], "manifest.yaml");
      expect(m.version).toBe("v1alpha1");
      onlyKeys(m.metadata, ["name", "version", "author", "description", "compatibility", "extraInfo"], "metadata");
      for (const k of ["name", "version", "author", "description"]) expect(typeof m.metadata[k] === "string" && m.metadata[k].length > 0).toBe(true);
      expect(m.metadata.name).toBe(EXTENSION_NAME);
      expect(m.metadata.version).toBe(version);
      onlyKeys(m.metadata.compatibility, ["talos"], "compatibility");
      const range = m.metadata.compatibility.talos.version;
      expect(satisfies(range, "v1.13.2")).toBe(true); // the seed's worker image
      expect(satisfies(range, "v1.7.0")).toBe(true); // first with ExtensionServiceConfig
      expect(satisfies(range, "v1.6.9")).toBe(false);
    });

    test("rootfs/ passes Talos' content rules and holds exactly the service root of packaging/rootfs.list", () => {
      const rootfs = join(ext, "rootfs");
      for (const { path, st } of walk(rootfs)) {
        expect({ path, worldWritable: (st.mode & 0o002) !== 0 }).toEqual({ path, worldWritable: false });
        expect({ path, special: !st.isDirectory() && !st.isFile() && !st.isSymbolicLink() }).toEqual({ path, special: false });
        if (!st.isDirectory()) expect({ path, allowed: ALLOWED_PREFIXES.some((a) => path.startsWith(a + "/")) }).toEqual({ path, allowed: true });
      }
      const files = walk(serviceRoot)
        .filter((e) => !e.st.isDirectory())
        .map((e) => e.path)
        .sort();
      expect(files).toEqual(entriesFor(arch).map((e) => e.path).sort());
      const defs = readdirSync(join(rootfs, "usr/local/etc/containers"));
      expect(defs).toEqual([`${EXTENSION_NAME}.yaml`]);
    });

    test("the service definition has only fields Talos knows and passes its validation", () => {
      spec = Bun.YAML.parse(readFileSync(join(ext, "rootfs", SERVICE_DEFINITION), "utf8"));
      onlyKeys(spec, SPEC_KEYS, "service");
      expect(spec.name).toMatch(/^[-_a-z0-9]+$/);
      expect(spec.name).toBe(EXTENSION_NAME);
      expect(RESTART_KINDS).toContain(spec.restart);
      onlyKeys(spec.container, CONTAINER_KEYS, "container");
      onlyKeys(spec.container.security ?? {}, SECURITY_KEYS, "container.security");
      for (const mnt of spec.container.mounts ?? []) onlyKeys(mnt, MOUNT_KEYS, "container.mounts[]");
      expect(typeof spec.container.entrypoint).toBe("string");
      for (const dep of spec.depends ?? []) {
        onlyKeys(dep, DEPENDENCY_KEYS, "depends[]");
        const set = DEPENDENCY_KEYS.filter((k) => dep[k] !== undefined && dep[k] !== false && !(Array.isArray(dep[k]) && dep[k].length === 0));
        expect(set.length).toBe(1);
        if (dep.path) expect(posix.isAbsolute(dep.path)).toBe(true);
        for (const n of dep.network ?? []) expect(NETWORK_STATUSES).toContain(n);
      }
      // It waits for its ExtensionServiceConfig.
      expect(spec.depends.some((d: any) => d.configuration === true)).toBe(true);
    });

    test("the entrypoint is this arch's binary and its loader and libraries are in the service root", () => {
      const elf = readElf(join(serviceRoot, spec.container.entrypoint));
      expect(elf.machine).toBe(ELF_MACHINE[arch]);
      expect(statSync(join(serviceRoot, spec.container.entrypoint)).mode & 0o111).not.toBe(0);
      expect(elf.interpreter).not.toBeNull();
      expect(statSync(join(serviceRoot, elf.interpreter!)).isFile()).toBe(true);
      const libDir = arch === "x64" ? "/lib/x86_64-linux-gnu" : "/lib/aarch64-linux-gnu";
      for (const n of elf.needed) {
        if (n === posix.basename(elf.interpreter!)) continue;
        expect(statSync(join(serviceRoot, libDir, n)).isFile()).toBe(true);
      }
    });

    /** A serve setting as Talos would hand it over: the flag in args, else the environment (the document's after the service's). */
    const setting = (flag: string, env: string): string => {
      const args: string[] = spec.container.args;
      if (args.includes(flag)) return args[args.indexOf(flag) + 1] ?? "";
      const environment: string[] = [...(spec.container.environment ?? []), ...(escExample.environment ?? [])];
      const last = environment.filter((e) => e.startsWith(`${env}=`)).pop();
      return last ? last.slice(env.length + 1) : "";
    };

    test("the ExtensionServiceConfig provides every file the service's args and config name", () => {
      const mountPaths = escExample.configFiles.map((f: any) => f.mountPath);
      const args: string[] = spec.container.args;
      for (const flag of ["--config", "--tls-cert", "--tls-key", "--tls-client-ca"]) {
        expect(mountPaths).toContain(args[args.indexOf(flag) + 1]);
      }
      const cfgPath = args[args.indexOf("--config") + 1];
      const cfg = Bun.YAML.parse(escExample.configFiles.find((f: any) => f.mountPath === cfgPath).content) as any;
      for (const g of cfg.nodeGroups) if (g.userDataFile) expect(mountPaths).toContain(g.userDataFile);
      // CA's cloud-config for this way dials the address the service listens on.
      expect(setting("--listen", "AUTOSCALER_CLOUDSCALE_LISTEN")).toBe(caCloudConfig.address);
      expect(caCloudConfig.address.startsWith("127.0.0.1:")).toBe(true);
    });

    test("the service runs from its own root as Talos runs it and answers NodeGroups over mTLS", async () => {
      const args: string[] = spec.container.args;
      const listen = setting("--listen", "AUTOSCALER_CLOUDSCALE_LISTEN");
      const health = setting("--health-listen", "AUTOSCALER_CLOUDSCALE_HEALTH_LISTEN");
      const [host, port] = [listen.replace(/:\d+$/, ""), Number(listen.split(":").pop())];
      const healthPort = Number(health.split(":").pop());
      expect(host).toBe("127.0.0.1");
      expect(health.startsWith("127.0.0.1:")).toBe(true);
      for (const p of [port, healthPort]) {
        if (!(await portIsFree(p))) throw new Error(`port 127.0.0.1:${p} (fixed in the service definition) is in use on this machine; free it to run the Talos proof`);
      }

      const base = join(WORK, "talos", `run-${arch}`);
      rmSync(base, { recursive: true, force: true });
      const pki = makePki({ dir: join(base, "pki"), serverSans: [host] });
      const sim = await startSim(["--boot-seconds", "1"], { bin: ensureBinary(HOST_ARCH) });
      try {
        // The document as the operator fills it in; Talos writes each file (0644)
        // under /system/overlays/extensions/<name>/<mountPath with "/" as "-">.
        const tlsContent: Record<string, string> = {
          [args[args.indexOf("--tls-cert") + 1]!]: readFileSync(pki.serverCert, "utf8"),
          [args[args.indexOf("--tls-key") + 1]!]: readFileSync(pki.serverKey, "utf8"),
          [args[args.indexOf("--tls-client-ca") + 1]!]: readFileSync(pki.caCert, "utf8"),
        };
        const store = join(base, "system", "overlays", "extensions", EXTENSION_NAME);
        mkdirSync(store, { recursive: true });
        const mounts: Mount[] = [
          { type: "proc", target: "/proc" },
          { type: "tmpfs", target: "/dev" },
          ...["null", "zero", "full", "random", "urandom"].map((d) => ({ type: "bind" as const, source: `/dev/${d}`, target: `/dev/${d}`, file: true })),
          { type: "tmpfs", target: "/dev/shm" },
          { type: "sysfs", target: "/sys" },
          { type: "tmpfs", target: "/run" },
          { type: "bind", source: "/etc/hosts", target: "/etc/hosts", readOnly: true, file: true },
          { type: "bind", source: "/etc/resolv.conf", target: "/etc/resolv.conf", readOnly: true, file: true },
        ];
        for (const f of escExample.configFiles) {
          const src = join(store, f.mountPath.replace(/^\//, "").replaceAll("/", "-"));
          writeFileSync(src, tlsContent[f.mountPath] ?? f.content, { mode: 0o644 });
          mounts.push({ type: "bind", source: src, target: f.mountPath, readOnly: true, file: true });
        }
        const env = [
          CONTAINERD_DEFAULT_PATH,
          ...(spec.container.environment ?? []),
          ...escExample.environment.map((e: string) => (e.startsWith("CLOUDSCALE_API_TOKEN=") ? "CLOUDSCALE_API_TOKEN=test-token" : e)),
          // By name where the host's /etc/hosts (mounted into the root) maps localhost to
          // 127.0.0.1 only, so the lookup goes through glibc's resolver inside the root.
          `CLOUDSCALE_API_URL=${localhostIsV4Only() ? sim.apiUrl.replace("127.0.0.1", "localhost") : sim.apiUrl}`,
        ];
        const rootSpec = { root: serviceRoot, arch, env, mounts, overlayReadOnly: true };

        const cfgPath = args[args.indexOf("--config") + 1];
        const v = await runInRoot({ ...rootSpec, argv: [spec.container.entrypoint, "validate", "--config", cfgPath] }, t(30000));
        expect({ code: v.code, out: v.out }).toEqual({ code: 0, out: expect.any(String) });

        const t0 = performance.now();
        const p = startInRoot({ ...rootSpec, argv: [spec.container.entrypoint, ...args] });
        try {
          await p.waitFor(/serving gRPC/, t(20000));
          const ready = performance.now() - t0;
          // The root is read-only, as with writeableRootfs: false.
          expect(p.script).toContain("remount,ro");
          const hz = await httpGet(healthPort, "/healthz");
          expect(hz.status).toBe(200);
          const serverName = caCloudConfig.address.replace(/:\d+$/, "");
          const res = await callNodeGroups({ port, pki, serverName });
          expect(res.nodeGroups.map((g) => g.id)).toEqual(["workers"]);
          const code = await p.stop(t(10000));
          expect(code).toBe(0);
          report.push(
            `${arch}: ext-${EXTENSION_NAME} from ${SERVICE_ROOT} (overlay, read-only, uid 0${emulated ? ", qemu" : ""}): validate ok, "serving gRPC" after ${ready.toFixed(0)} ms, /healthz on ${health} 200, NodeGroups over mTLS at ${listen} (server name ${serverName}) -> ${res.nodeGroups.map((g) => g.id).join(",")}, SIGTERM exit ${code}`,
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
