// What the docs tell an operator, held against the repository: the two Talos worker
// examples agree on what the cloud controller manager needs, the README names the real
// prerequisites of its test command, and every command, flag, metric and environment
// variable docs/reference.md names exists in the binary and the source.
import { describe, expect, test } from "bun:test";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { parse, parseAllDocuments } from "yaml";
import { runBin as run } from "./helpers/procs";

const ROOT = join(import.meta.dir, "..");
const read = (p: string) => readFileSync(join(ROOT, p), "utf8");
const reference = read("docs/reference.md");

/** Every v1alpha1 worker configuration of the repository's Talos examples. */
function workerExamples(): { where: string; config: any }[] {
  const out: { where: string; config: any }[] = [];
  for (const d of parseAllDocuments(read("deploy/talos-worker.example.yaml"))) {
    const v = d.toJS();
    if (v?.version === "v1alpha1") out.push({ where: "deploy/talos-worker.example.yaml", config: v });
  }
  const esc = parse(read("packaging/talos/extension-service-config.example.yaml"));
  for (const f of esc.configFiles) {
    for (const d of parseAllDocuments(f.content)) {
      const v = d.toJS();
      if (v?.version === "v1alpha1" && v.machine?.type === "worker") out.push({ where: `extension-service-config.example.yaml ${f.mountPath}`, config: v });
    }
  }
  return out;
}

describe("docs", () => {
  test("both Talos worker examples run the kubelet with cloud-provider: external, as the CCM needs", () => {
    const examples = workerExamples();
    expect(examples.map((e) => e.where)).toEqual(["deploy/talos-worker.example.yaml", "extension-service-config.example.yaml /etc/autoscaler-cloudscale/userdata/workers.yaml"]);
    for (const e of examples) expect({ where: e.where, args: e.config.machine?.kubelet?.extraArgs }).toEqual({ where: e.where, args: { "cloud-provider": "external" } });
  });

  test("the README names the real prerequisites of its test command", () => {
    const readme = read("README.md");
    const first = readme.slice(0, readme.indexOf("## Running it for real"));
    expect(first).toContain("./scripts/test.sh");
    for (const need of ["Go 1.26", "npm", "root", "apt-get", "CA_SOURCE_DIR"]) expect(first).toContain(need);
  });

  test("every command and flag docs/reference.md shows exists, with --help", async () => {
    const commands = new Set<string>();
    for (const m of reference.matchAll(/autoscaler-cloudscale ([a-z]+)(?: [^`\n]*)?/g)) commands.add(m[1]!);
    expect([...commands].sort()).toEqual(["adopt", "cleanup", "convert", "status", "template", "validate"]);
    for (const c of commands) {
      const h = await run([c, "--help"]);
      expect({ c, code: h.code }).toEqual({ c, code: 0 });
      // Each flag the reference writes after the command is one its help knows.
      for (const m of reference.matchAll(new RegExp(`autoscaler-cloudscale ${c}\\b([^\\n\`]*)`, "g"))) {
        for (const flag of m[1]!.match(/--[a-z-]+/g) ?? []) expect({ c, flag, known: h.stdout.includes(flag) }).toEqual({ c, flag, known: true });
      }
    }
  });

  test("every metric and environment variable docs/reference.md names is in the source", () => {
    const source = readdirSync(join(ROOT, "src"))
      .filter((f) => f.endsWith(".ts"))
      .map((f) => read(`src/${f}`))
      .join("\n");
    const metrics = [...new Set([...reference.matchAll(/autoscaler_cloudscale_[a-z_]+/g)].map((m) => m[0]))];
    expect(metrics.length).toBeGreaterThan(1);
    // Named in metrics.ts as PREFIX + the rest: `${PREFIX}name`, or "name" for the view gauges.
    const named = (m: string, short = m.replace(/^autoscaler_cloudscale_/, "")) => source.includes(`}${short}\``) || source.includes(`"${short}"`) || source.includes(m);
    for (const m of metrics) expect({ m, found: named(m) }).toEqual({ m, found: true });
    // The table of the variables the binary reads (the rows that start with one).
    const vars = [...reference.matchAll(/^\| `((?:CLOUDSCALE|AUTOSCALER_CLOUDSCALE)_[A-Z_]+)` \|/gm)].map((m) => m[1]!);
    expect(vars.sort()).toEqual([
      "AUTOSCALER_CLOUDSCALE_HEALTH_LISTEN",
      "AUTOSCALER_CLOUDSCALE_LISTEN",
      "AUTOSCALER_CLOUDSCALE_LOG_FORMAT",
      "AUTOSCALER_CLOUDSCALE_LOG_LEVEL",
      "CLOUDSCALE_API_TOKEN",
      "CLOUDSCALE_API_TOKEN_FILE",
      "CLOUDSCALE_API_URL",
    ]);
    for (const v of vars) expect({ v, found: source.includes(v) }).toEqual({ v, found: true });
  });
});
