// The Talos image step of docs/reference.md, run as written against the simulator (its
// custom-image import takes the fields the real API takes), and what `validate` says about the
// imported image: pass-through is right for Talos user-data, extend-cloud-config is a problem,
// and so is a public image.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { TEST_TOKEN, record, runBin, startSim, writeConfig, type SimProc } from "./helpers/procs";

const REFERENCE = readFileSync(join(import.meta.dir, "../docs/reference.md"), "utf8");
const TALOS = readFileSync(join(import.meta.dir, "../deploy/talos-worker.example.yaml"), "utf8");

/** The import command of the docs' Talos image section: the fenced block that starts with curl. */
function importCommand(): string {
  const m = /```sh\n\s*(curl -fsS -X POST "\$\{CLOUDSCALE_API_URL[^`]*?)```/.exec(REFERENCE);
  if (!m) throw new Error("docs/reference.md has no custom image import command");
  return m[1]!.replace(/^ {3}/gm, "");
}

let sim: SimProc;
beforeAll(async () => {
  sim = await startSim(["--boot-seconds", "0"]);
});
afterAll(async () => {
  await sim?.stop();
});

/** Runs the documented command, with the slug (and the handling) an operator would choose. */
async function runImport(slug: string, handling?: string) {
  let cmd = importCommand().replace('"slug": "talos-1.13.2"', `"slug": "${slug}"`);
  if (handling) cmd = cmd.replace('"user_data_handling": "pass-through"', `"user_data_handling": "${handling}"`);
  expect(cmd).toContain(`"slug": "${slug}"`);
  const p = Bun.spawn(["bash", "-euo", "pipefail", "-c", cmd], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", CLOUDSCALE_API_URL: sim.apiUrl, CLOUDSCALE_API_TOKEN: TEST_TOKEN },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  record(out + err);
  expect({ code, err }).toEqual({ code: 0, err: "" });
  return JSON.parse(out) as { uuid: string; status: string; custom_image: { uuid: string; name: string } };
}

const api = { CLOUDSCALE_API_TOKEN: TEST_TOKEN };
const talosGroup = (image: string) =>
  writeConfig(`clusterName: talos\nnodeGroups:\n  - {name: workers, flavor: flex-8-2, zone: lpg1, image: "${image}", min: 0, max: 2, userDataFile: worker.yaml}\n`, dirWithWorker());
function dirWithWorker(): string {
  const dir = mkdtempSync(join(tmpdir(), "talos-image-"));
  writeFileSync(join(dir, "worker.yaml"), TALOS);
  return dir;
}

describe("the Talos image on cloudscale.ch", () => {
  test("the documented import, with pass-through: the image exists, the import succeeds, validate passes", async () => {
    const imp = await runImport("talos-docs");
    expect(imp.status).toBe("started");
    expect(imp.custom_image.name).toBe("Talos v1.13.2");
    const again = (await (await fetch(`${sim.apiUrl}/custom-images/import/${imp.uuid}`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } })).json()) as { status: string };
    expect(again.status).toBe("success");
    const image = (await (await fetch(`${sim.apiUrl}/custom-images/${imp.custom_image.uuid}`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } })).json()) as Record<string, unknown>;
    expect({ slug: image.slug, handling: image.user_data_handling, zones: image.zones }).toEqual({ slug: "talos-docs", handling: "pass-through", zones: [{ slug: "lpg1" }, { slug: "rma1" }] });

    const v = await runBin(["validate", "--config", talosGroup("custom:talos-docs")], { ...api, CLOUDSCALE_API_URL: sim.apiUrl });
    expect({ code: v.code, out: v.stdout }).toEqual({ code: 0, out: expect.stringContaining("every flavor and image is offered in its groups' zones") });
  });

  test("an image imported with extend-cloud-config, or a public image, is a problem for Talos user-data", async () => {
    await runImport("talos-extend", "extend-cloud-config");
    const v = await runBin(["validate", "--config", talosGroup("custom:talos-extend")], { ...api, CLOUDSCALE_API_URL: sim.apiUrl });
    expect(v.code).toBe(1);
    expect(v.stdout).toContain(
      "  - nodeGroups[0].image: custom image talos-extend has user_data_handling extend-cloud-config, but the group's user-data is a Talos machine configuration, which Talos then does not get as written; import the image again with user_data_handling pass-through (docs/reference.md#the-talos-image-on-cloudscalech)",
    );
    const pub = await runBin(["validate", "--config", talosGroup("debian-13")], { ...api, CLOUDSCALE_API_URL: sim.apiUrl });
    expect(pub.code).toBe(1);
    expect(pub.stdout).toContain("nodeGroups[0].image: debian-13 is a public image, which runs cloud-init, not Talos, but the group's user-data is a Talos machine configuration; use a Talos custom image");
    // cloud-init user-data on that image is fine.
    const cloudInit = writeConfig('clusterName: talos\nnodeGroups:\n  - {name: workers, flavor: flex-8-2, zone: lpg1, image: "custom:talos-extend", min: 0, max: 2, userData: "#cloud-config\\n"}\n');
    expect((await runBin(["validate", "--config", cloudInit], { ...api, CLOUDSCALE_API_URL: sim.apiUrl })).code).toBe(0);
  });

  test("the simulator refuses an import with missing or wrong fields, each named", async () => {
    const post = (body: unknown) =>
      fetch(`${sim.apiUrl}/custom-images/import`, { method: "POST", headers: { authorization: `Bearer ${TEST_TOKEN}`, "content-type": "application/json" }, body: JSON.stringify(body) });
    const r = await post({ url: "ftp://x", name: "t", user_data_handling: "sometimes", zones: ["xyz9"], firmware_type: "coreboot" });
    expect(r.status).toBe(400);
    expect(await r.json()).toEqual({
      url: "Enter a valid URL.",
      user_data_handling: '"sometimes" is not a valid choice.',
      firmware_type: '"coreboot" is not a valid choice.',
      zones: "Object with slug=xyz9 does not exist.",
    });
    const missing = await post({});
    expect(await missing.json()).toEqual({ url: "This field is required.", name: "This field is required.", user_data_handling: "This field is required.", zones: "This field is required." });
  });
});
