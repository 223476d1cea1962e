// Shared helpers of the packaging proofs: building the binaries under test,
// fetching Debian's libc6 and the emulator (scripts/packaging-deps.sh), running a
// program inside an assembled root (private mount + PID namespace, chroot, clean
// environment), NodeGroups the way CA calls it, the YAML of deploy/.
// Certificates, the gRPC client and the simulator come from test/helpers.
import type { Subprocess } from "bun";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { type Arch, REPO_ROOT } from "../../packaging/rootfs";
import type { Pki } from "../helpers/certs";
import { connect } from "../helpers/grpc";

export { REPO_ROOT };
export const WORK = join(REPO_ROOT, "test", "packaging", ".work");
export const HOST_ARCH: Arch = process.arch === "arm64" ? "arm64" : "x64";
const BUN = process.execPath;

export function fail(msg: string): never {
  throw new Error(msg);
}

function sh(cmd: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): { code: number; out: string; err: string } {
  const p = Bun.spawnSync(cmd, { cwd: opts.cwd ?? REPO_ROOT, env: opts.env ?? process.env, stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode ?? -1, out: p.stdout.toString(), err: p.stderr.toString() };
}

let privChecked = false;
/** The proofs need root (mount, chroot) and unshare; say so plainly instead of skipping. */
export function requireNamespaces(): void {
  if (privChecked) return;
  if (process.platform !== "linux") fail("packaging proofs need Linux (mount namespaces, chroot)");
  if (process.getuid?.() !== 0) fail("packaging proofs need root: they mount /proc and bind mounts in a private mount namespace and chroot into the assembled root");
  for (const tool of ["unshare", "mount", "chroot", "tar", "gzip", "openssl"]) {
    if (sh(["sh", "-c", `command -v ${tool} || test -x /usr/sbin/${tool}`]).code !== 0) fail(`packaging proofs need ${tool}; run scripts/packaging-deps.sh`);
  }
  mkdirSync(WORK, { recursive: true });
  const dir = mkdtempSync(join(WORK, "probe-"));
  try {
    mkdirSync(join(dir, "proc"));
    const r = sh(["unshare", "--mount", "--pid", "--fork", "sh", "-c", `mount -t proc proc '${dir}/proc' && test -r '${dir}/proc/self/status'`]);
    if (r.code !== 0) fail(`cannot create a mount+PID namespace and mount /proc here (unshare --mount --pid --fork): ${r.err.trim()}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  privChecked = true;
}

export interface Deps {
  libc6Root: Record<Arch, string>;
  libc6Version: Record<Arch, string>;
  emulator: string;
}
let deps: Deps | undefined;
/** Runs scripts/packaging-deps.sh (cached after the first run) and returns what it fetched. */
export function ensureDeps(): Deps {
  if (deps) return deps;
  const r = sh(["bash", "scripts/packaging-deps.sh"]);
  if (r.code !== 0) fail(`scripts/packaging-deps.sh failed (${r.code}):\n${r.err}`);
  const env: Record<string, string> = Object.fromEntries(
    readFileSync(join(REPO_ROOT, ".cache/packaging/deps.env"), "utf8")
      .trim()
      .split("\n")
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
  deps = {
    libc6Root: { x64: join(REPO_ROOT, ".cache/packaging/libc6-amd64"), arm64: join(REPO_ROOT, ".cache/packaging/libc6-arm64") },
    libc6Version: { x64: env.LIBC6_AMD64 ?? "", arm64: env.LIBC6_ARM64 ?? "" },
    emulator: env.EMULATOR ?? fail("deps.env names no EMULATOR"),
  };
  return deps;
}

const built: Partial<Record<Arch, string>> = {};
/** Compiles src/main.ts for the arch with the lead's scripts/build.ts into .work/bin (once per test run). */
export function ensureBinary(arch: Arch): string {
  if (built[arch]) return built[arch]!;
  const out = join(WORK, "bin", `autoscaler-cloudscale-linux-${arch}`);
  mkdirSync(join(WORK, "bin"), { recursive: true });
  rmSync(out, { force: true });
  const r = sh([BUN, "run", "scripts/build.ts", "--target", `bun-linux-${arch}`, "--outfile", out]);
  if (r.code !== 0 || !existsSync(out)) fail(`scripts/build.ts --target bun-linux-${arch} failed (${r.code}):\n${r.out}\n${r.err}`);
  built[arch] = out;
  return out;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

export interface Mount {
  /** proc | tmpfs | sysfs | bind | overlay-style handled by RootSpec */
  type: "proc" | "tmpfs" | "sysfs" | "bind";
  /** Absolute path inside the root. */
  target: string;
  /** Host path (bind). */
  source?: string;
  readOnly?: boolean;
  /** bind: the source is a file (target created as a file). */
  file?: boolean;
}

export interface RootSpec {
  /** Directory holding the assembled root. */
  root: string;
  arch: Arch;
  argv: string[];
  env: Record<string, string> | string[];
  /** uid:gid to run as (chroot --userspec); root when omitted. */
  user?: string;
  mounts: Mount[];
  /**
   * Talos-style: mount an overlay over `root` (a writable upper layer only for
   * mount points, as machined does) and then make the whole root read-only.
   */
  overlayReadOnly?: boolean;
}

export interface RootProc {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  output: () => string;
  waitFor: (re: RegExp, timeoutMs: number) => Promise<RegExpMatchArray>;
  exited: Promise<number>;
  stop: (timeoutMs?: number) => Promise<number>;
  /** The command line as run (for the report). */
  script: string;
}

const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/** The shell script that builds the mounts and execs chroot with a clean environment. */
export function rootScript(spec: RootSpec, scratch: string): string {
  const lines = ["set -eu"];
  let root = spec.root;
  if (spec.overlayReadOnly) {
    const upper = join(scratch, "upper");
    const work = join(scratch, "work");
    const merged = join(scratch, "merged");
    lines.push(`mkdir -p ${q(upper)} ${q(work)} ${q(merged)}`);
    lines.push(`mount -t overlay overlay -o ${q(`lowerdir=${spec.root},upperdir=${upper},workdir=${work}`)} ${q(merged)}`);
    root = merged;
  } else {
    // Own bind of the root so nothing leaks into the host's view.
    lines.push(`mount --bind ${q(root)} ${q(root)}`);
  }
  for (const m of spec.mounts) {
    const t = q(join(root, m.target));
    if (m.type === "bind" && m.file) lines.push(`mkdir -p "$(dirname ${t})"`, `[ -e ${t} ] || : > ${t}`);
    else lines.push(`mkdir -p ${t}`);
    if (m.type === "proc") lines.push(`mount -t proc -o nosuid,nodev,noexec proc ${t}`);
    if (m.type === "tmpfs") lines.push(`mount -t tmpfs -o nosuid,mode=755 tmpfs ${t}`);
    if (m.type === "sysfs") lines.push(`mount -t sysfs -o ro,nosuid,nodev,noexec sysfs ${t}`);
    if (m.type === "bind") {
      lines.push(`mount --bind ${q(m.source!)} ${t}`);
      if (m.readOnly) lines.push(`mount -o remount,bind,ro ${t}`);
    }
  }
  const env = Array.isArray(spec.env) ? spec.env : Object.entries(spec.env).map(([k, v]) => `${k}=${v}`);
  const argv = [...spec.argv];
  if (spec.arch !== HOST_ARCH) {
    // The other architecture runs through qemu's static user-mode emulator, the
    // only file added to the root for it (under /.emulator, outside the image's paths).
    const emu = ensureDeps().emulator;
    const m = join(root, ".emulator");
    lines.push(`mkdir -p ${q(m)}`, `mount -t tmpfs tmpfs ${q(m)}`, `cp ${q(emu)} ${q(m + "/qemu")}`, `mount -o remount,ro ${q(m)}`);
    argv.unshift("/.emulator/qemu");
  }
  if (spec.overlayReadOnly) lines.push(`mount -o remount,ro ${q(root)}`);
  const userspec = spec.user ? [`--userspec=${spec.user}`, "--groups="] : [];
  lines.push(["exec", "env", "-i", ...env.map(q), "/usr/sbin/chroot", ...userspec, q(root), ...argv.map(q)].join(" "));
  return lines.join("\n");
}

const running = new Set<RootProc>();

/** Starts argv inside the root in a private mount and PID namespace (the network is the host's). */
export function startInRoot(spec: RootSpec): RootProc {
  requireNamespaces();
  mkdirSync(WORK, { recursive: true });
  const scratch = mkdtempSync(join(WORK, "run-"));
  const script = rootScript(spec, scratch);
  const proc = Bun.spawn(["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child=SIGKILL", "sh", "-c", script], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  let out = "";
  const pump = async (s: ReadableStream<Uint8Array>) => {
    const dec = new TextDecoder();
    for await (const chunk of s) out += dec.decode(chunk);
  };
  const pumps = Promise.all([pump(proc.stdout), pump(proc.stderr)]);
  const exited = proc.exited.then(async (c) => {
    await pumps;
    rmSync(scratch, { recursive: true, force: true });
    return c;
  });
  const rp: RootProc = {
    proc,
    script,
    output: () => out,
    exited,
    async waitFor(re, timeoutMs) {
      const until = Date.now() + timeoutMs;
      let done = false;
      exited.then(() => (done = true), () => (done = true));
      while (Date.now() < until) {
        const m = out.match(re);
        if (m) return m;
        if (done) break;
        await Bun.sleep(25);
      }
      const m = out.match(re);
      if (m) return m;
      throw new Error(`timed out (${timeoutMs} ms) or exited waiting for ${re} in output:\n${out}`);
    },
    async stop(timeoutMs = 15000) {
      // SIGTERM to the program itself (PID 1 of its namespace, the child of unshare);
      // SIGKILL to both if it does not end in time.
      const kids = (() => {
        try {
          return readFileSync(`/proc/${proc.pid}/task/${proc.pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
        } catch {
          return [];
        }
      })();
      for (const k of kids) {
        try {
          process.kill(k, "SIGTERM");
        } catch {}
      }
      const code = await Promise.race([exited, Bun.sleep(timeoutMs).then(() => null)]);
      if (code === null) {
        for (const k of kids) {
          try {
            process.kill(k, "SIGKILL");
          } catch {}
        }
        proc.kill("SIGKILL");
        await exited;
        running.delete(rp);
        throw new Error(`did not stop within ${timeoutMs} ms of SIGTERM; output:\n${out}`);
      }
      running.delete(rp);
      return code;
    },
  };
  running.add(rp);
  return rp;
}

/** Runs argv in the root to completion. */
export async function runInRoot(spec: RootSpec, timeoutMs = 30000): Promise<{ code: number; out: string; ms: number }> {
  const t0 = performance.now();
  const p = startInRoot(spec);
  const code = await Promise.race([p.exited, Bun.sleep(timeoutMs).then(() => null)]);
  if (code === null) {
    await p.stop(1000).catch(() => {});
    throw new Error(`${spec.argv.join(" ")} did not finish in ${timeoutMs} ms:\n${p.output()}`);
  }
  running.delete(p);
  return { code, out: p.output(), ms: performance.now() - t0 };
}

/** Stops everything still running (afterAll). */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((p) => p.stop(5000).catch(() => {})));
}

// ---------------------------------------------------------------- NodeGroups as CA calls it

export interface NodeGroupsResult {
  nodeGroups: { id: string; minSize: number; maxSize: number }[];
}

/**
 * Calls NodeGroups the way Cluster Autoscaler does: with mTLS, the server name
 * being the host part of the cloud-config `address` (here dialled on 127.0.0.1).
 */
export async function callNodeGroups(opts: { port: number; serverName?: string; pki: Pki; clientCert?: boolean; timeoutMs?: number }): Promise<NodeGroupsResult> {
  const c = connect(opts.port, opts.pki, { serverName: opts.serverName, as: opts.clientCert === false ? "none" : "client", ownConnection: true });
  try {
    const res = await c.call("NodeGroups", {}, { deadlineMs: opts.timeoutMs ?? 15000 });
    return { nodeGroups: (res.nodeGroups ?? []).map((g: any) => ({ id: g.id, minSize: g.minSize, maxSize: g.maxSize })) };
  } finally {
    c.close();
  }
}

// ---------------------------------------------------------------- YAML

export interface YamlDoc {
  file: string;
  doc: any;
}

/** Every document of every *.yaml / *.yml under dir (recursively). */
export function readYamlTree(dir: string): YamlDoc[] {
  const out: YamlDoc[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.ya?ml$/.test(e.name)) out.push(...parseYamlDocs(p));
    }
  };
  walk(dir);
  return out;
}

export function parseYamlDocs(file: string): YamlDoc[] {
  let parsed: unknown;
  try {
    parsed = Bun.YAML.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new Error(`${file}: not valid YAML: ${(e as Error).message}`);
  }
  const docs = /^---\s*$/m.test(readFileSync(file, "utf8")) && Array.isArray(parsed) ? parsed : [parsed];
  return docs.filter((d) => d !== null && d !== undefined).map((doc) => ({ file, doc }));
}

/** Plain HTTP GET on 127.0.0.1 (health endpoints). */
export async function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5000) });
  return { status: r.status, body: await r.text() };
}

/**
 * The path of an upstream tool that scripts/e2e-build.sh builds and caches (helm, kubectl): built
 * first when it is missing (minutes on a cold machine, instant afterwards).
 */
export function upstreamTool(name: "helm" | "kubectl"): string {
  const build = sh(["bash", "scripts/e2e-build.sh", name]);
  if (build.code !== 0) fail(`scripts/e2e-build.sh ${name} failed (${build.code}):\n${build.out}\n${build.err}`);
  const list = sh(["bash", "scripts/e2e-build.sh", "--list"]);
  const path = list.out.split("\n").find((l) => l.startsWith(`${name}=`))?.slice(name.length + 1);
  if (!path || !existsSync(path)) fail(`scripts/e2e-build.sh --list names no built ${name}:\n${list.out}`);
  return path;
}

/** Parses a multi-document YAML stream (rendered manifests) into its objects. */
export function parseYamlStream(text: string): any[] {
  return text
    .split(/^---[ \t]*$/m)
    .map((chunk) => Bun.YAML.parse(chunk))
    .filter((d) => d !== null && d !== undefined);
}
