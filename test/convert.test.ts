// `convert` through the compiled binary, on configurations in the format of
// kubeterm-sh/autoscaler-cloudscale written for these tests (test/fixtures/seed): what is
// carried over, what is named as not carried over, and that the result passes `validate`.
import { describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { parse } from "yaml";
import { runBin as run } from "./helpers/procs";

const FIXTURES = join(import.meta.dir, "fixtures/seed");

/** The seed's fixtures copied into a fresh directory (convert writes beside them). */
function workdir(): string {
  const dir = mkdtempSync(join(tmpdir(), "convert-"));
  mkdirSync(join(dir, "old"));
  for (const f of ["config.yaml", "values.yaml", "machineconfig.yaml"]) copyFileSync(join(FIXTURES, f), join(dir, "old", f));
  return dir;
}

const notes = (stderr: string) => stderr.split("\n").filter((l) => l.startsWith("  - ")).map((l) => l.slice(4));

describe("convert", () => {
  test("the old provider's config.yaml becomes ours: every setting carried over or named", async () => {
    const dir = workdir();
    const secret = "tok-must-never-appear-0c1d";
    const r = await run(["convert", "old/config.yaml", "--out", "new/config.yaml"], { SEED_CLUSTER: "seed-prod", CLOUDSCALE_TOKEN: secret }, dir);
    // The output directory does not exist yet: a clear error, nothing half-written.
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("autoscaler-cloudscale convert: cannot write new/config.yaml: ENOENT\n");
    mkdirSync(join(dir, "new"));
    const ok = await run(["convert", "old/config.yaml", "--out", "new/config.yaml"], { SEED_CLUSTER: "seed-prod", CLOUDSCALE_TOKEN: secret }, dir);
    expect(ok.stderr).toContain("convert: wrote new/config.yaml: cluster seed-prod, 2 node group entries");
    expect({ code: ok.code, tail: ok.stderr.trim().split("\n").pop() }).toEqual({
      code: 0,
      tail: "convert: the new configuration passes 'validate --offline'; with a token, 'validate' also checks it against the API",
    });
    const written = readFileSync(join(dir, "new/config.yaml"), "utf8");
    expect(written + ok.stdout + ok.stderr).not.toContain(secret);
    const cfg = parse(written);
    expect(cfg).toEqual({
      clusterName: "seed-prod",
      nodeGroups: [
        {
          name: "worker",
          flavor: "flex-8-2",
          zone: "lpg1",
          image: "custom:talos-1.13.2",
          min: 1,
          max: 4,
          volumeSizeGb: 50,
          userDataFile: "../old/machineconfig.yaml",
          labels: { "node.kubernetes.io/role": "worker" },
          taints: [{ key: "dedicated", value: "batch", effect: "NoSchedule" }],
          sshKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExample ops@example.com"],
          serverGroups: ["6f1b9ad0-0000-4000-8000-00000000000a"],
          tags: { team: "platform" },
          interfaces: [{ network: "public" }, { network: "2db69ba3-1864-4608-853a-0771b6885a3a", addresses: [{ subnet: "33333333-1864-4608-853a-0771b6885a3a" }] }],
        },
        { name: "gpu", flavor: "gpu2-128-16-1-200", zone: "rma1", image: "debian-12", min: 0, max: 2, volumeSizeGb: 100, userData: "#cloud-config\npackages: [curl]\n" },
      ],
    });
    expect(notes(ok.stderr)).toEqual([
      "listen: a flag now: serve --listen 0.0.0.0:8086 (default 0.0.0.0:8086)",
      "tls: flags now: serve --tls-cert /etc/autoscaler-cloudscale/tls/tls.crt --tls-key /etc/autoscaler-cloudscale/tls/tls.key --tls-client-ca /etc/autoscaler-cloudscale/tls/ca.crt (mutual TLS is the default)",
      "cloudscaleAPIToken: not written; give the token as CLOUDSCALE_API_TOKEN or serve --token-file FILE, and remove it from the old file",
      'clusterTag: ${SEED_CLUSTER} expanded from the environment to "seed-prod"',
      "clusterTag: servers are now owned by the tags autoscaler-cloudscale-cluster=seed-prod and autoscaler-cloudscale-group=<group> (not k8s-cluster/k8s-autoscaler-group); the old provider's servers are not seen until `autoscaler-cloudscale adopt` re-tags them",
      "nodeGroups[0].userData: @machineconfig.yaml is ../old/machineconfig.yaml from the new file's directory",
      "nodeGroups[0].tags.k8s-cluster: the old provider's ownership tag; left out (ownership is autoscaler-cloudscale-cluster/-group now)",
    ]);
    // The notes are in the file too, as its header.
    expect(written).toContain("# Converted by autoscaler-cloudscale convert");
    expect(written).toContain("#   - cloudscaleAPIToken: not written");
    // What validate says of the new file (it reads the user-data through the new path).
    const v = await run(["validate", "--config", "new/config.yaml", "--offline"], {}, dir);
    expect(v.code).toBe(0);
    expect(v.stdout).toContain("schema OK (cluster seed-prod, 2 node groups)");
    // Written once; not overwritten without --force.
    const again = await run(["convert", "old/config.yaml", "--out", "new/config.yaml"], { SEED_CLUSTER: "seed-prod" }, dir);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain("new/config.yaml exists; pass --force to overwrite it");
  });

  test("the old chart's values: the configuration under config:, the rest named; a missing user-data file fails validation", async () => {
    const dir = workdir();
    const r = await run(["convert", "old/values.yaml"], {}, dir);
    // Written to stdout even so, with the problem named: the file lives in a pod, not here.
    expect(r.code).toBe(1);
    const cfg = parse(r.stdout);
    expect(cfg.clusterName).toBe("helm-prod");
    expect(cfg.nodeGroups[0]).toEqual({
      name: "worker",
      flavor: "flex-8-2",
      zone: "rma1",
      image: "debian-12",
      min: 0,
      max: 10,
      volumeSizeGb: 100,
      userDataFile: "/etc/autoscaler-cloudscale/machineconfig/machineconfig.yaml",
      labels: { "node.kubernetes.io/role": "worker" },
    });
    expect(notes(r.stderr)).toContain("image, cloudscaleAPI, tls, machineconfig: Helm values of the old chart are not configuration; deploy/ (kustomize) or the provider's Helm chart cover them (docs/operating.md)");
    expect(notes(r.stderr)).toContain("config.nodeGroups[0].tags.k8s-cluster: the old provider's ownership tag; left out (ownership is autoscaler-cloudscale-cluster/-group now)");
    expect(r.stderr).toContain("convert: the new configuration does not pass validation yet; fix these in stdout:");
    expect(r.stderr).toContain("  - nodeGroups[0].userDataFile: cannot read /etc/autoscaler-cloudscale/machineconfig/machineconfig.yaml: ENOENT");
  });

  test("networks the new format cannot say offline, a missing cluster name, and files that are not the old format", async () => {
    const dir = mkdtempSync(join(tmpdir(), "convert-"));
    writeFileSync(
      join(dir, "net.yaml"),
      `clusterTag: c1
nodeGroups:
  - {name: private-only, minSize: 0, maxSize: 1, flavor: flex-4-1, image: debian-12, zone: lpg1, volumeSizeGB: 10, usePrivateNetwork: true}
  - {name: none, minSize: 0, maxSize: 1, flavor: flex-4-1, image: debian-12, zone: lpg1, volumeSizeGB: 10, colour: red}
`,
    );
    const r = await run(["convert", "net.yaml"], {}, dir);
    expect(r.code).toBe(0);
    expect(parse(r.stdout).nodeGroups.map((g: { interfaces?: unknown }) => g.interfaces)).toEqual([undefined, undefined]);
    expect(notes(r.stderr)).toEqual([
      "clusterTag: servers are now owned by the tags autoscaler-cloudscale-cluster=c1 and autoscaler-cloudscale-group=<group> (not k8s-cluster/k8s-autoscaler-group); the old provider's servers are not seen until `autoscaler-cloudscale adopt` re-tags them",
      "nodeGroups[0].usePrivateNetwork: the zone's default private network cannot be named offline; add it by UUID: interfaces: [{network: <private network UUID>}]",
      "nodeGroups[1].colour: not a setting of the old provider; left out",
      "nodeGroups[1].usePublicNetwork: false (or unset) with no private network: the old provider created servers without a network; this one gives them the public network (the API's default); set interfaces to change that",
    ]);

    writeFileSync(join(dir, "notag.yaml"), "nodeGroups:\n  - {name: w, minSize: 0, maxSize: 1, flavor: flex-4-1, image: debian-12, zone: lpg1, volumeSizeGB: 10, usePublicNetwork: true}\n");
    const noTag = await run(["convert", "notag.yaml"], {}, dir);
    expect(noTag.code).toBe(1);
    expect(noTag.stderr).toContain("notag.yaml: no nodeGroups clusterTag to take the cluster name from; pass --cluster-name NAME".replace("nodeGroups ", ""));
    const named = await run(["convert", "notag.yaml", "--cluster-name", "prod"], {}, dir);
    expect(named.code).toBe(0);
    expect(parse(named.stdout).clusterName).toBe("prod");

    writeFileSync(join(dir, "ours.yaml"), "clusterName: c\nnodeGroups:\n  - {name: w, flavor: flex-4-1, image: debian-13, min: 0, max: 1}\n");
    const ours = await run(["convert", "ours.yaml"], {}, dir);
    expect(ours.code).toBe(1);
    expect(ours.stderr).toContain("its node groups have min/max, not minSize/maxSize: it looks like this provider's configuration already");
    const missing = await run(["convert", "nope.yaml"], {}, dir);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("cannot read nope.yaml: ENOENT");
    expect(existsSync(join(dir, "nope.yaml"))).toBe(false);
    const usage = await run(["convert"], {}, dir);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("name the old configuration file");
    const helpText = await run(["convert", "--help"]);
    expect(helpText.code).toBe(0);
    expect(helpText.stdout).toContain("Usage: autoscaler-cloudscale convert OLD-CONFIG");
  });
});
