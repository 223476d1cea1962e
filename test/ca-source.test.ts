// scripts/ca-source.sh, run as the test scripts run it, in a clone laid out three ways:
// with CA_SOURCE_DIR, beside a ../shared/third_party, and alone, where it downloads the
// release tarball into the user's cache. This machine cannot reach GitHub, so the download
// is served from 127.0.0.1 (an HTTP server in this test) and from a file:// URL, with
// tarballs laid out as GitHub's tag archives are (<repo>-<tag>/cluster-autoscaler/...).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { tmpdir } from "node:os";

const SCRIPT = resolve(import.meta.dir, "../scripts/ca-source.sh");
const VERSIONS = ["1.36.1", "1.34.1"];
let work: string;
let server: ReturnType<typeof Bun.serve>;
const requests: string[] = [];

/** A CA source tree as far as the script checks it: CA's module, its externalgrpc provider, its version. */
function fakeTree(dir: string, version: string) {
  mkdirSync(join(dir, "cloudprovider/externalgrpc"), { recursive: true });
  mkdirSync(join(dir, "version"), { recursive: true });
  writeFileSync(join(dir, "go.mod"), "module k8s.io/autoscaler/cluster-autoscaler\n\ngo 1.26.0\n");
  writeFileSync(join(dir, "version/version.go"), `package version\n\nvar ClusterAutoscalerVersion = "${version}"\n`);
  writeFileSync(join(dir, "cloudprovider/externalgrpc/README.md"), `externalgrpc of ${version}\n`);
}

/** A clone of the repo as far as the script needs one: scripts/ca-source.sh at <dir>/scripts. */
function clone(dir: string): string {
  mkdirSync(join(dir, "scripts"), { recursive: true });
  copyFileSync(SCRIPT, join(dir, "scripts/ca-source.sh"));
  return dir;
}

/** Runs the script (not spawnSync: the download server answers from this process's event loop). */
async function run(cloneDir: string, env: Record<string, string>, versions = VERSIONS) {
  const p = Bun.spawn(["bash", join(cloneDir, "scripts/ca-source.sh"), ...versions], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: join(work, "home"), ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out, err };
}

const link = (cloneDir: string, v: string) => readlinkSync(join(cloneDir, ".cache/ca-src", `cluster-autoscaler-${v}`));

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "ca-source-"));
  // Tag archives as GitHub serves them: the whole repository under autoscaler-<tag>/.
  for (const v of VERSIONS) {
    const top = join(work, "archives", `autoscaler-cluster-autoscaler-${v}`);
    fakeTree(join(top, "cluster-autoscaler"), v);
    mkdirSync(join(top, "vertical-pod-autoscaler"), { recursive: true });
    writeFileSync(join(top, "vertical-pod-autoscaler/go.mod"), "module k8s.io/autoscaler/vertical-pod-autoscaler\n");
    const tar = Bun.spawnSync(["tar", "-czf", join(work, "archives", `cluster-autoscaler-${v}.tar.gz`), "-C", join(work, "archives"), `autoscaler-cluster-autoscaler-${v}`]);
    expect(tar.exitCode).toBe(0);
  }
  // A tarball that is not CA's repository.
  mkdirSync(join(work, "archives/other-1.0/src"), { recursive: true });
  writeFileSync(join(work, "archives/other-1.0/src/x"), "x");
  Bun.spawnSync(["tar", "-czf", join(work, "archives/cluster-autoscaler-9.9.9.tar.gz"), "-C", join(work, "archives"), "other-1.0"]);
  server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const path = new URL(req.url).pathname;
      requests.push(path);
      const file = Bun.file(join(work, "archives", path.replace(/^\/tags\//, "")));
      return file.size ? new Response(file) : new Response("not found", { status: 404 });
    },
  });
});

afterAll(async () => {
  await server?.stop(true);
  rmSync(work, { recursive: true, force: true });
});

test("CA_SOURCE_DIR wins: the links point into it and the script says so", async () => {
  const src = join(work, "ca-trees");
  for (const v of VERSIONS) fakeTree(join(src, `cluster-autoscaler-${v}`), v);
  const c = clone(join(work, "a/clone"));
  // A shared tree beside the clone too: the variable still comes first.
  for (const v of VERSIONS) fakeTree(join(work, "a/shared/third_party", `cluster-autoscaler-${v}`), v);
  const r = await run(c, { CA_SOURCE_DIR: src });
  expect(r.code).toBe(0);
  for (const v of VERSIONS) {
    expect(link(c, v)).toBe(join(src, `cluster-autoscaler-${v}`));
    expect(r.out).toContain(`Cluster Autoscaler ${v}: ${join(src, `cluster-autoscaler-${v}`)} (CA_SOURCE_DIR)`);
  }
  // One version may also be named by its own tree.
  const one = await run(c, { CA_SOURCE_DIR: join(src, "cluster-autoscaler-1.34.1") }, ["1.34.1"]);
  expect(one.code).toBe(0);
  expect(link(c, "1.34.1")).toBe(join(src, "cluster-autoscaler-1.34.1"));
});

test("a CA_SOURCE_DIR without the version fails and says what it looked for", async () => {
  const c = clone(join(work, "b/clone"));
  const r = await run(c, { CA_SOURCE_DIR: join(work, "nowhere") });
  expect(r.code).toBe(1);
  expect(r.err).toContain(`CA_SOURCE_DIR=${join(work, "nowhere")} holds no Cluster Autoscaler 1.36.1 (expected ${join(work, "nowhere")}/cluster-autoscaler-1.36.1/go.mod)`);
  expect(requests).toEqual([]); // a wrong variable is an error, not a reason to download
});

test("without the variable, ../shared/third_party beside the clone is used", async () => {
  const base = join(work, "c");
  for (const v of VERSIONS) fakeTree(join(base, "shared/third_party", `cluster-autoscaler-${v}`), v);
  const c = clone(join(base, "clone"));
  const r = await run(c, {});
  expect(r.code).toBe(0);
  for (const v of VERSIONS) expect(link(c, v)).toBe(join(base, "shared/third_party", `cluster-autoscaler-${v}`));
  expect(r.out).toContain("(../shared/third_party)");
});

test("a clone anywhere else downloads each release once into the user's cache (loopback HTTP)", async () => {
  const c = clone(join(work, "d/x/clone"));
  const cache = join(work, "cache-http");
  const env = { XDG_CACHE_HOME: cache, CA_SOURCE_URL: `http://127.0.0.1:${server.port}/tags/cluster-autoscaler-{version}.tar.gz` };
  const first = await run(c, env);
  expect(first.code).toBe(0);
  for (const v of VERSIONS) {
    const tree = join(cache, "autoscaler-cloudscale/ca-src", `cluster-autoscaler-${v}`);
    expect(link(c, v)).toBe(tree);
    expect(existsSync(join(tree, "cloudprovider/externalgrpc/README.md"))).toBe(true);
    // Only CA's folder of the repository is kept.
    expect(existsSync(join(tree, "..", "vertical-pod-autoscaler"))).toBe(false);
    expect(first.err).toContain(`downloading Cluster Autoscaler ${v} from http://127.0.0.1:${server.port}/tags/cluster-autoscaler-${v}.tar.gz`);
    expect(first.out).toContain(`Cluster Autoscaler ${v}: ${tree} (downloaded (cache))`);
  }
  expect(requests).toEqual(VERSIONS.map((v) => `/tags/cluster-autoscaler-${v}.tar.gz`));
  // Again (and from a second clone): the cache answers, nothing is downloaded.
  const again = await run(clone(join(work, "d/y/clone")), env);
  expect(again.code).toBe(0);
  expect(again.err).not.toContain("downloading");
  expect(requests.length).toBe(VERSIONS.length);
});

test("a file:// URL works the same way", async () => {
  const c = clone(join(work, "e/clone"));
  const cache = join(work, "cache-file");
  const r = await run(c, { XDG_CACHE_HOME: cache, CA_SOURCE_URL: `file://${join(work, "archives")}/cluster-autoscaler-{version}.tar.gz` }, ["1.36.1"]);
  expect(r.code).toBe(0);
  expect(link(c, "1.36.1")).toBe(join(cache, "autoscaler-cloudscale/ca-src/cluster-autoscaler-1.36.1"));
});

test("a download that is missing or is not CA's repository fails and leaves nothing in the cache", async () => {
  const c = clone(join(work, "f/clone"));
  const cache = join(work, "cache-bad");
  const env = { XDG_CACHE_HOME: cache, CA_SOURCE_URL: `http://127.0.0.1:${server.port}/tags/cluster-autoscaler-{version}.tar.gz` };
  const missing = await run(c, env, ["1.0.0"]);
  expect(missing.code).toBe(1);
  expect(missing.err).toContain("download failed");
  expect(missing.err).toContain("set CA_SOURCE_DIR to a directory with cluster-autoscaler-1.0.0/");
  const wrong = await run(c, env, ["9.9.9"]);
  expect(wrong.code).toBe(1);
  expect(wrong.err).toContain("is not a tarball with other-1.0/cluster-autoscaler/ in it");
  const left = Bun.spawnSync(["find", join(cache, "autoscaler-cloudscale/ca-src"), "-mindepth", "1"]).stdout.toString().trim();
  expect(left).toBe("");
});
