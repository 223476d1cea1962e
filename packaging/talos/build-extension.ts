// Assembles the Talos system extension of autoscaler-cloudscale and writes it as an
// OCI image layout tarball, without bldr or a container engine (tar + gzip +
// sha256 + JSON).
//
//   bun packaging/talos/build-extension.ts --version 0.1.0 --out-dir dist \
//       --arch x64=dist/autoscaler-cloudscale-linux-x64 \
//       --arch arm64=dist/autoscaler-cloudscale-linux-arm64
//
// Writes, per arch, dist/autoscaler-cloudscale-talos-extension-<arch>.tar (an OCI
// layout whose index.json lists one linux/<amd64|arm64> manifest) and, with more
// than one --arch, dist/autoscaler-cloudscale-talos-extension.tar (one layout listing
// every platform manifest, the form Talos' imager reads through `ociPath` and
// `crane push --index` pushes as a multi-arch tag).
//
// The image has one layer whose filesystem is what Talos expects of an extension:
//   /manifest.yaml                          from manifest.yaml.tmpl
//   /rootfs/usr/local/etc/containers/autoscaler-cloudscale.yaml   the service
//   /rootfs/usr/local/lib/containers/autoscaler-cloudscale/...    the service root:
//       every packaging/rootfs.list entry of the arch (binary, loader, libraries)
// The glibc files come from Debian 12's libc6 of the arch, fetched by
// scripts/packaging-deps.sh into .cache/packaging/libc6-<amd64|arm64>.
import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { type Arch, ARCHES, assembleRoot, DEB_ARCH, OCI_ARCH, REPO_ROOT } from "../rootfs";

export const EXTENSION_NAME = "autoscaler-cloudscale";
const HERE = import.meta.dir;
export const SERVICE_FILE = join(HERE, `${EXTENSION_NAME}.yaml`);
export const MANIFEST_TEMPLATE = join(HERE, "manifest.yaml.tmpl");
export const SERVICE_ROOT = `/usr/local/lib/containers/${EXTENSION_NAME}`;
export const SERVICE_DEFINITION = `/usr/local/etc/containers/${EXTENSION_NAME}.yaml`;

export const MT = {
  index: "application/vnd.oci.image.index.v1+json",
  manifest: "application/vnd.oci.image.manifest.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  layerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
} as const;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string };
  annotations?: Record<string, string>;
}

function sha256(data: Uint8Array | string): string {
  return "sha256:" + createHash("sha256").update(data).digest("hex");
}

function run(cmd: string[], cwd?: string): void {
  const p = Bun.spawnSync(cmd, { cwd, stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`${cmd.join(" ")} failed (${p.exitCode}): ${p.stderr.toString()}`);
}

/** Seconds since the epoch for every timestamp: SOURCE_DATE_EPOCH, else the last commit's time, else 0. */
export function sourceDateEpoch(): number {
  if (process.env.SOURCE_DATE_EPOCH) return Number(process.env.SOURCE_DATE_EPOCH);
  const p = Bun.spawnSync(["git", "log", "-1", "--format=%ct"], { cwd: REPO_ROOT, stdout: "pipe", stderr: "ignore" });
  const t = Number(p.stdout.toString().trim());
  return p.exitCode === 0 && Number.isFinite(t) && t > 0 ? t : 0;
}

export function renderManifest(version: string): string {
  return readFileSync(MANIFEST_TEMPLATE, "utf8").replaceAll("{{VERSION}}", version);
}

/** Lays out the extension's filesystem (manifest.yaml + rootfs/) in dest. */
export function stageExtension(opts: { arch: Arch; binary: string; version: string; libc6Root: string; dest: string }): void {
  mkdirSync(opts.dest, { recursive: true, mode: 0o755 });
  writeFileSync(join(opts.dest, "manifest.yaml"), renderManifest(opts.version), { mode: 0o644 });
  const rootfs = join(opts.dest, "rootfs");
  const serviceRoot = join(rootfs, SERVICE_ROOT);
  assembleRoot({ arch: opts.arch, binary: opts.binary, libc6Root: opts.libc6Root, dest: serviceRoot });
  const def = join(rootfs, SERVICE_DEFINITION);
  mkdirSync(join(def, ".."), { recursive: true, mode: 0o755 });
  copyFileSync(SERVICE_FILE, def);
  chmodSync(def, 0o644);
  // Directories 0755, whatever the umask was (Talos rejects world-writable entries).
  const fix = (dir: string) => {
    chmodSync(dir, 0o755);
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) fix(join(dir, e.name));
  };
  fix(opts.dest);
}

export interface BuiltImage {
  arch: Arch;
  manifest: Descriptor;
  /** Layout directory holding blobs/ (and index.json, oci-layout). */
  layoutDir: string;
}

/** Builds the single-arch OCI layout for one arch in layoutDir. */
export function buildImage(opts: { arch: Arch; binary: string; version: string; libc6Root: string; layoutDir: string; work: string }): BuiltImage {
  const epoch = sourceDateEpoch();
  const created = new Date(epoch * 1000).toISOString();
  const stage = join(opts.work, `stage-${opts.arch}`);
  rmSync(stage, { recursive: true, force: true });
  stageExtension({ arch: opts.arch, binary: opts.binary, version: opts.version, libc6Root: opts.libc6Root, dest: stage });

  const layerTar = join(opts.work, `layer-${opts.arch}.tar`);
  run([
    "tar", "--create", "--file", layerTar, "--directory", stage,
    "--sort=name", "--format=gnu", "--owner=0", "--group=0", "--numeric-owner", `--mtime=@${epoch}`,
    "manifest.yaml", "rootfs",
  ]);
  run(["gzip", "-n", "-6", "-f", layerTar]);
  const layerGz = `${layerTar}.gz`;

  const blobs = join(opts.layoutDir, "blobs", "sha256");
  mkdirSync(blobs, { recursive: true });
  const putBlob = (data: Uint8Array | string): { digest: string; size: number } => {
    const digest = sha256(data);
    writeFileSync(join(blobs, digest.slice(7)), data);
    return { digest, size: typeof data === "string" ? Buffer.byteLength(data) : data.byteLength };
  };

  const gz = readFileSync(layerGz);
  const diffId = sha256(Bun.gunzipSync(gz));
  const layer = putBlob(gz);
  rmSync(layerGz);

  const config = JSON.stringify({
    created,
    architecture: OCI_ARCH[opts.arch],
    os: "linux",
    config: {},
    rootfs: { type: "layers", diff_ids: [diffId] },
    history: [{ created, created_by: "packaging/talos/build-extension.ts", comment: `${EXTENSION_NAME} ${opts.version} Talos system extension` }],
  });
  const cfg = putBlob(config);

  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: MT.manifest,
    config: { mediaType: MT.config, ...cfg },
    layers: [{ mediaType: MT.layerGzip, ...layer }],
    annotations: {
      "org.opencontainers.image.title": `${EXTENSION_NAME} Talos system extension`,
      "org.opencontainers.image.version": opts.version,
      "org.opencontainers.image.created": created,
    },
  });
  const man = putBlob(manifest);
  const desc: Descriptor = {
    mediaType: MT.manifest,
    ...man,
    platform: { architecture: OCI_ARCH[opts.arch], os: "linux" },
    annotations: { "org.opencontainers.image.ref.name": opts.version },
  };
  writeLayoutIndex(opts.layoutDir, [desc]);
  rmSync(stage, { recursive: true, force: true });
  return { arch: opts.arch, manifest: desc, layoutDir: opts.layoutDir };
}

export function writeLayoutIndex(layoutDir: string, manifests: Descriptor[]): void {
  writeFileSync(join(layoutDir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  writeFileSync(join(layoutDir, "index.json"), JSON.stringify({ schemaVersion: 2, mediaType: MT.index, manifests }));
}

/** Writes a layout directory as a tarball (entries oci-layout, index.json, blobs/...). */
export function tarLayout(layoutDir: string, out: string): void {
  rmSync(out, { force: true });
  run([
    "tar", "--create", "--file", resolve(out), "--directory", layoutDir,
    "--sort=name", "--format=gnu", "--owner=0", "--group=0", "--numeric-owner", `--mtime=@${sourceDateEpoch()}`,
    "oci-layout", "index.json", "blobs",
  ]);
}

export function libc6RootFor(arch: Arch): string {
  return join(REPO_ROOT, ".cache", "packaging", `libc6-${DEB_ARCH[arch]}`);
}

export function extensionTarName(arch?: Arch): string {
  return arch ? `${EXTENSION_NAME}-talos-extension-${arch}.tar` : `${EXTENSION_NAME}-talos-extension.tar`;
}

/** Builds the per-arch tarballs (and the multi-arch one for more than one arch) into outDir. */
export function buildAll(opts: { version: string; outDir: string; binaries: Partial<Record<Arch, string>>; libc6Roots?: Partial<Record<Arch, string>> }): string[] {
  const work = mkdtempSync(join(tmpdir(), "talos-ext-"));
  const written: string[] = [];
  try {
    const built: BuiltImage[] = [];
    for (const arch of ARCHES) {
      const binary = opts.binaries[arch];
      if (!binary) continue;
      statSync(binary);
      const libc6Root = opts.libc6Roots?.[arch] ?? libc6RootFor(arch);
      statSync(join(libc6Root, "lib"));
      const layoutDir = join(work, `layout-${arch}`);
      built.push(buildImage({ arch, binary, version: opts.version, libc6Root, layoutDir, work }));
      const out = join(opts.outDir, extensionTarName(arch));
      tarLayout(layoutDir, out);
      written.push(out);
    }
    if (built.length > 1) {
      const all = join(work, "layout-all");
      mkdirSync(join(all, "blobs", "sha256"), { recursive: true });
      for (const b of built) {
        const dir = join(b.layoutDir, "blobs", "sha256");
        for (const f of readdirSync(dir)) copyFileSync(join(dir, f), join(all, "blobs", "sha256", f));
      }
      writeLayoutIndex(all, built.map((b) => ({ ...b.manifest, annotations: undefined })));
      const out = join(opts.outDir, extensionTarName());
      tarLayout(all, out);
      written.push(out);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return written;
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      version: { type: "string" },
      "out-dir": { type: "string", default: "dist" },
      arch: { type: "string", multiple: true },
    },
  });
  if (!values.version || !values.arch?.length) {
    console.error("usage: bun packaging/talos/build-extension.ts --version V [--out-dir DIR] --arch x64=BINARY [--arch arm64=BINARY]");
    process.exit(2);
  }
  const binaries: Partial<Record<Arch, string>> = {};
  for (const a of values.arch) {
    const [arch, bin] = a.split("=");
    if (!ARCHES.includes(arch as Arch) || !bin) {
      console.error(`--arch ${a}: expected x64=PATH or arm64=PATH`);
      process.exit(2);
    }
    binaries[arch as Arch] = bin;
  }
  mkdirSync(values["out-dir"]!, { recursive: true });
  for (const f of buildAll({ version: values.version, outDir: values["out-dir"]!, binaries })) {
    console.error(`talos extension: ${f} ${(statSync(f).size / 1048576).toFixed(1)} MiB`);
  }
}
