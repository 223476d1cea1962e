// The command line of the compiled binary: help everywhere, version, validate,
// template, the demo, clear errors for bad configuration, and no secret in any output.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { parse } from "yaml";
import { BIN, TEST_TOKEN, allOutput, record, requireBinary, startSim, writeConfig, type SimProc } from "./helpers/procs";

function run(args: string[], env: Record<string, string> = {}, cwd?: string) {
  requireBinary();
  const r = Bun.spawnSync([BIN, ...args], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env }, cwd, stdout: "pipe", stderr: "pipe" });
  const out = { code: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
  record(out.stdout + out.stderr);
  return out;
}

let sim: SimProc;
beforeAll(async () => {
  sim = await startSim(["--boot-seconds", "0"]);
});
afterAll(async () => {
  await sim?.stop();
  // Runs last in this file: every line any test process printed, at debug level too, is free of the token.
  const everything = allOutput.join("");
  expect(everything.length).toBeGreaterThan(1000);
  expect(everything).not.toContain(TEST_TOKEN);
});

describe("cli", () => {
  test("--help for the program and every command", () => {
    const top = run(["--help"]);
    expect(top.code).toBe(0);
    for (const cmd of ["serve", "status", "validate", "check", "template", "convert", "cleanup", "adopt", "sim", "demo", "version"]) {
      expect(top.stdout).toContain(cmd);
      const r = run([cmd, "--help"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/Usage: autoscaler-cloudscale/);
    }
    const none = run([]);
    expect(none.code).toBe(2);
    const bad = run(["frobnicate"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('unknown command "frobnicate"');
    const flag = run(["serve", "--colour"]);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain("--colour");
  });

  test("version prints the version and commit baked in at build time", () => {
    const r = run(["version"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^autoscaler-cloudscale \d+\.\d+\.\d+ \(commit [0-9a-f]{7,}(-dirty)?\)\n$/);
  });

  test("a stray .env or bunfig.toml in the working directory is ignored", () => {
    const dir = mkdtempSync(join(tmpdir(), "stray-"));
    writeFileSync(join(dir, ".env"), "CLOUDSCALE_API_TOKEN=from-dotenv\nCLOUDSCALE_API_URL=http://127.0.0.1:1/v1\n");
    writeFileSync(join(dir, "bunfig.toml"), 'preload = ["./evil.ts"]\n');
    writeFileSync(join(dir, "evil.ts"), 'console.log("EVIL PRELOAD RAN");\n');
    const cfg = writeConfig("clusterName: c\nnodeGroups:\n  - {name: w, flavor: flex-4-1, image: debian-13, min: 0, max: 1}\n", dir);
    const r = run(["validate", "--config", cfg], {}, dir);
    expect(r.stdout + r.stderr).not.toContain("EVIL");
    expect(r.stdout).toContain("no API token"); // the .env token was not loaded
  });

  test("a bad configuration is refused before anything starts, every problem listed", () => {
    const cfg = writeConfig("clusterName: Bad_Name\nnodeGroups:\n  - {name: w, flavor: flex-4-1, image: debian-13, min: 3, max: 1, tags: {a: 1}}\n  - {name: w2, image: x, min: 0, max: 1, flavour: y}\n");
    const r = run(["serve", "--config", cfg, "--insecure-plaintext", "--listen", "127.0.0.1:0"], { CLOUDSCALE_API_TOKEN: TEST_TOKEN, CLOUDSCALE_API_URL: sim.apiUrl });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("clusterName: must be lower-case");
    expect(r.stderr).toContain("nodeGroups[1].flavor: is required");
    expect(r.stderr).toContain("nodeGroups[1].flavour: unknown setting");
    expect(r.stderr).not.toContain("serving gRPC");
    const missing = run(["serve", "--config", "/nonexistent.yaml", "--insecure-plaintext"], { CLOUDSCALE_API_TOKEN: TEST_TOKEN });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("cannot read the configuration file /nonexistent.yaml: ENOENT");
    const noToken = run(["serve", "--config", writeConfig("clusterName: c\nnodeGroups:\n  - {name: w, flavor: f, image: i, min: 0, max: 1}\n"), "--insecure-plaintext"]);
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toContain("no API token");
  });

  test("validate and serve both refuse Talos user-data no creation could patch, and a duration that breaks the provider", () => {
    const talos = "version: v1alpha1\nmachine:\n  type: worker\n  token: abc.def\ncluster:\n  controlPlane:\n    endpoint: https://cp:6443\n";
    const dir = mkdtempSync(join(tmpdir(), "cfg-"));
    writeFileSync(join(dir, "talos-worker.yaml"), `${talos}---\n${talos}`);
    const cfg = writeConfig("clusterName: c\napiTimeout: 0s\nnodeGroups:\n  - {name: w, flavor: flex-4-1, image: custom:talos-1.13.2, min: 0, max: 1, userDataFile: talos-worker.yaml}\n", dir);
    const env = { CLOUDSCALE_API_TOKEN: TEST_TOKEN, CLOUDSCALE_API_URL: sim.apiUrl };
    for (const args of [["validate", "--config", cfg], ["serve", "--config", cfg, "--insecure-plaintext", "--listen", "127.0.0.1:0"]]) {
      const r = run(args, env);
      expect({ args: args[0], code: r.code }).toEqual({ args: args[0], code: 1 });
      expect(r.stderr).toContain("configuration has 2 problems");
      expect(r.stderr).toContain("nodeGroups[0].userDataFile: cannot be patched for a server, so every creation would fail: The Talos user-data has more than one v1alpha1 machine configuration document.");
      expect(r.stderr).toContain("apiTimeout: must be at least 1s: 0 turns the timeout off");
      expect(r.stdout + r.stderr).not.toContain("serving gRPC");
    }
  });

  test("schema problems, min > max, an unreadable file and a too-long name come in one round", () => {
    const dir = mkdtempSync(join(tmpdir(), "one-round-"));
    const cfg = writeConfig(
      `clusterName: prod
nodeGroups:
  - {name: a, flavor: flex-4-1, image: debian-13, min: 3, max: 1, colour: red}
  - {name: b, flavor: flex-4-1, image: debian-13, min: 0, max: 1, userDataFile: missing.yaml, volumeSizeGb: 5}
  - {name: a-name-so-long-that-the-server-names-cannot-be-host-names-any-more, flavor: flex-4-1, image: debian-13, min: 0, max: 1}
  - {name: a, flavor: flex-4-1, image: debian-13, min: 0, max: 1, labels: {team: [x]}}
`,
      dir,
    );
    const r = run(["validate", "--config", cfg, "--offline"]);
    expect(r.code).toBe(1);
    const problems = r.stderr.split("\n").filter((l) => l.startsWith("  - ")).map((l) => l.slice(4));
    expect(problems).toEqual([
      "nodeGroups[0].colour: unknown setting (check the spelling)",
      "nodeGroups[1].volumeSizeGb: must be at least 10 (cloudscale's minimum root volume)",
      "nodeGroups[3].labels.team: label values must be strings (quote numbers and booleans)",
      "nodeGroups[0]: min (3) must not be greater than max (1)",
      `nodeGroups[1].userDataFile: cannot read ${join(dir, "missing.yaml")}: ENOENT`,
      expect.stringMatching(/^nodeGroups\[2\]\.name: server names "<clusterName>-<name>-<8 random>" of node group a-name-so-long.* would be 80 characters; host names allow 63: shorten name to at most 49 characters, or clusterName$/),
      'nodeGroups[3].name: "a" is used by another node group (nodeGroups[0]); names must be unique',
    ]);
    expect(r.stderr).toContain("configuration has 7 problems");
  });

  test("serve takes its listen addresses from the environment when no flag is given", async () => {
    const { spawnUntil } = await import("./helpers/procs");
    const cfg = writeConfig("clusterName: c\nnodeGroups:\n  - {name: w, flavor: flex-4-1, image: debian-13, min: 0, max: 1}\n");
    const p = await spawnUntil(["serve", "--config", cfg, "--insecure-plaintext"], /serving gRPC.*listen\W+127\.0\.0\.1:(\d+).*health\W+127\.0\.0\.1:(\d+)/, {
      CLOUDSCALE_API_TOKEN: TEST_TOKEN,
      CLOUDSCALE_API_URL: sim.apiUrl,
      AUTOSCALER_CLOUDSCALE_LISTEN: "127.0.0.1:0",
      AUTOSCALER_CLOUDSCALE_HEALTH_LISTEN: "127.0.0.1:0",
      AUTOSCALER_CLOUDSCALE_LOG_FORMAT: "json",
    });
    try {
      const health = await fetch(`http://127.0.0.1:${p.match[2]}/readyz`);
      expect(health.status).toBe(200);
      expect(p.output()).toContain('"msg":"serving gRPC"');
    } finally {
      await p.stop();
    }
  });

  test("validate checks flavors, images and zones against the API", () => {
    const good = writeConfig("clusterName: c\nnodeGroups:\n  - {name: w, flavor: flex-8-2, image: custom:talos-1.13.2, zone: lpg1, min: 0, max: 3}\n");
    const ok = run(["validate", "--config", good], { CLOUDSCALE_API_TOKEN: TEST_TOKEN, CLOUDSCALE_API_URL: sim.apiUrl });
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain("flavors, images, zones and server groups exist");
    const bad = writeConfig("clusterName: c\nnodeGroups:\n  - {name: w, flavor: flex-9-9, image: custom:nope, zone: lpg1, min: 0, max: 3}\n  - {name: g, flavor: gpu2-128-16-1-200, image: debian-13, zone: lpg1, min: 0, max: 1}\n  - {name: z, flavor: flex-4-1, image: debian-13, zone: xyz9, min: 0, max: 1}\n");
    const r = run(["validate", "--config", bad], { CLOUDSCALE_API_TOKEN: TEST_TOKEN, CLOUDSCALE_API_URL: sim.apiUrl });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("nodeGroups[0].flavor: flex-9-9 is not a flavor");
    expect(r.stdout).toContain("nodeGroups[0].image: custom:nope does not exist");
    expect(r.stdout).toContain("nodeGroups[1].flavor: gpu2-128-16-1-200 is not offered in zone lpg1 (nodeGroups[1].zone); it is offered in rma1");
    expect(r.stdout).toContain("nodeGroups[2].zone: zone xyz9 does not exist");
    const refused = run(["validate", "--config", good], { CLOUDSCALE_API_TOKEN: "wrong", CLOUDSCALE_API_URL: `${sim.origin}/v1` });
    expect(refused.code).toBe(0); // the simulator accepts any token unless started with --token
  });

  test("--token-file wins over CLOUDSCALE_API_TOKEN", async () => {
    const strict = await startSim(["--boot-seconds", "0", "--token", TEST_TOKEN]);
    try {
      const dir = mkdtempSync(join(tmpdir(), "tok-"));
      writeFileSync(join(dir, "token"), `${TEST_TOKEN}\n`);
      const cfg = writeConfig("clusterName: c\nnodeGroups:\n  - {name: w, flavor: flex-8-2, image: debian-13, zone: lpg1, min: 0, max: 3}\n", dir);
      const r = run(["validate", "--config", cfg, "--token-file", join(dir, "token")], { CLOUDSCALE_API_TOKEN: "a-stale-token", CLOUDSCALE_API_URL: strict.apiUrl });
      expect({ code: r.code, out: r.stdout }).toEqual({ code: 0, out: expect.stringContaining("flavors, images, zones and server groups exist") });
    } finally {
      await strict.stop();
    }
  });

  test("template prints the node CA will simulate", () => {
    const cfg = writeConfig("clusterName: c\nnodeGroups:\n  - {name: w, flavor: flex-16-4, image: debian-13, zone: rma1, min: 0, max: 3, labels: {tier: web}, taints: [{key: k, value: v, effect: NoExecute}]}\n");
    const r = run(["template", "--config", cfg, "w"], { CLOUDSCALE_API_TOKEN: TEST_TOKEN, CLOUDSCALE_API_URL: sim.apiUrl });
    expect(r.code).toBe(0);
    const node = parse(r.stdout);
    expect(node.kind).toBe("Node");
    expect(node.metadata.labels).toMatchObject({ tier: "web", "node.kubernetes.io/instance-type": "flex-16-4", "topology.kubernetes.io/zone": "rma1", "topology.kubernetes.io/region": "rma" });
    expect(node.spec.taints).toEqual([{ key: "k", value: "v", effect: "NoExecute" }]);
    expect(node.status.capacity.cpu).toBe("4");
    const offline = run(["template", "--config", cfg, "w", "-o", "json"]);
    expect(offline.code).toBe(0);
    expect(JSON.parse(offline.stdout).status.capacity.cpu).toBe("4");
    const unknown = run(["template", "--config", cfg, "nope"]);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('node group "nope" is not in the configuration');
  });

  test("demo scales a group from zero for 50 pods and back to zero", () => {
    const r = run(["demo", "--boot-seconds", "1"]);
    expect(r.stdout).toContain("50 pods pending");
    expect(r.stdout).toMatch(/IncreaseSize\(workers, \+(\d+)\) acknowledged/);
    expect(r.stdout).toContain("demo finished: scaled 0 →");
    expect(r.code).toBe(0);
  }, 120_000);

  test("a rejection nothing handles is logged and the process goes on (Bun would exit on it)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "rejection-"));
    const preload = join(dir, "reject-later.ts");
    // Fires once main.ts has long installed its handler: a promise somewhere rejects with nobody listening.
    writeFileSync(preload, 'setTimeout(() => { void Promise.reject(new Error("rejected with nobody listening")); }, 1500);\n');
    const p = Bun.spawn([process.execPath, "--preload", preload, join(import.meta.dir, "../src/main.ts"), "sim", "--listen", "127.0.0.1:0"], { stdout: "pipe", stderr: "pipe" });
    let err = "";
    const decoder = new TextDecoder();
    const reader = p.stderr.getReader();
    const until = Date.now() + 20_000;
    while (!err.includes("nothing handled it") && Date.now() < until) {
      const { value, done } = await reader.read();
      if (done) break;
      err += decoder.decode(value, { stream: true });
    }
    await Bun.sleep(300);
    const alive = p.exitCode === null; // before: exit code 1 at the rejection
    p.kill("SIGTERM");
    await p.exited;
    record(err);
    expect(err).toContain('ERROR a promise was rejected and nothing handled it; going on error="rejected with nobody listening"');
    expect(alive).toBe(true);
  }, 30_000);

  test("demo exits as soon as it is done: the provider's waits end when it stops", async () => {
    requireBinary();
    const p = Bun.spawn([BIN, "demo", "--boot-seconds", "0", "--pods", "5"], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin" }, stdout: "pipe", stderr: "pipe" });
    let out = "";
    let finishedAt = 0;
    const decoder = new TextDecoder();
    for await (const chunk of p.stdout) {
      out += decoder.decode(chunk, { stream: true });
      if (!finishedAt && out.includes("demo finished")) finishedAt = performance.now();
    }
    const code = await p.exited;
    const lingered = performance.now() - finishedAt;
    record(out + (await new Response(p.stderr).text()));
    expect(code).toBe(0);
    expect(finishedAt).toBeGreaterThan(0);
    // Before: the provider's own list timer (half of maxViewAge, 60 s) and any verify or busy-delete
    // wait kept the process alive after the demo was over.
    expect(lingered).toBeLessThan(5000);
  }, 120_000);
});
