// podman for the packaging proofs, set up as scripts/image-build.sh sets it up
// (runc, cgroupfs, no default ulimits: crun fails in cgroup hybrid mode here), and the
// bookkeeping that removes every container and image a test made.
import { join } from "node:path";
import { REPO_ROOT } from "./lib";

let env: Record<string, string> | undefined;

/** The environment podman runs with here; installs podman and runc (apt-get) when missing. */
export function podmanEnv(): Record<string, string> {
  if (env) return env;
  const r = Bun.spawnSync(["bash", join(REPO_ROOT, "scripts/image-build.sh"), "--env"], { stdout: "pipe", stderr: "pipe" });
  const m = r.stdout.toString().match(/^export CONTAINERS_CONF=(\S+)$/m);
  if (r.exitCode !== 0 || !m) throw new Error(`scripts/image-build.sh --env failed (${r.exitCode}): ${r.stderr.toString()}`);
  env = { ...(process.env as Record<string, string>), CONTAINERS_CONF: m[1]! };
  return env;
}

export interface Result {
  code: number;
  out: string;
  err: string;
}

/** podman ARGS to completion (stdin optional). */
export async function podman(args: string[], opts: { timeoutMs?: number; stdin?: string } = {}): Promise<Result> {
  const p = Bun.spawn(["podman", ...args], {
    env: podmanEnv(),
    cwd: REPO_ROOT,
    stdin: opts.stdin === undefined ? "ignore" : new TextEncoder().encode(opts.stdin),
    stdout: "pipe",
    stderr: "pipe",
  });
  const timer = setTimeout(() => p.kill("SIGKILL"), opts.timeoutMs ?? 120000);
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  return { code, out, err };
}

/** podman ARGS, failing with its output when it exits non-zero. */
export async function podmanOk(args: string[], opts: { timeoutMs?: number; stdin?: string } = {}): Promise<string> {
  const r = await podman(args, opts);
  if (r.code !== 0) throw new Error(`podman ${args.join(" ")} exited ${r.code}:\n${r.out}\n${r.err}`);
  return r.out;
}

/**
 * The clone inside a container whose root is `--rootfs /:O` with a tmpfs on /tmp and /run: a
 * clone under one of those (say /tmp/x/clone) would be hidden, so it is mounted again there,
 * copy-on-write as the root is (what the container writes stays in it).
 */
export function cloneMount(): string[] {
  return /^\/(tmp|run)\//.test(REPO_ROOT) ? ["-v", `${REPO_ROOT}:${REPO_ROOT}:O`] : [];
}

const containers = new Set<string>();

/** Records a container name for removeContainers(). */
export function track(name: string): string {
  containers.add(name);
  return name;
}

/** Removes every tracked container (afterAll). */
export async function removeContainers(): Promise<void> {
  for (const c of containers) await podman(["rm", "-f", "-t", "5", c], { timeoutMs: 60000 });
  containers.clear();
}

/** A container name unique to this run. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}
