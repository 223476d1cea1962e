// The binary on a control-plane node, on a real systemd: systemd 252 (Debian's
// package, the one installed here) boots as PID 1 in a podman container whose
// root is a copy-on-write overlay of this machine's own root, so the clone and
// its tools are there and nothing the walk-through installs reaches the host.
// In it, the shell blocks of docs/operating.md, "1. Binary on a control-plane
// node", run as they are, in order, in the clone: build, install, sysusers,
// certificates, `systemd-analyze verify`, `systemctl enable --now`, the checks,
// the certificate renewal. The one addition is a drop-in that points the
// service at the simulator (CLOUDSCALE_API_URL). Then, from outside:
//   - the service runs as autoscaler-cloudscale and that user can read every
//     installed file (and the unit of the old docs, DynamicUser=yes, cannot);
//   - CA's way in: NodeGroups over mutual TLS with the server name 127.0.0.1
//     (the host of CA's address), with the walk-through's client certificate;
//   - the renewed server certificate is served without a restart;
//   - `systemctl stop` drains and the process exits 0.
// The service listens on 127.0.0.1:8086/8087 of this machine (host network).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { callNodeGroups, httpGet, portIsFree, REPO_ROOT, WORK } from "./lib";
import { cloneMount, podman, podmanEnv, podmanOk, removeContainers, track, uniqueName } from "./podman";
import { walkthrough } from "./walkthrough";
import { startSim } from "../helpers/procs";
import type { Pki } from "../helpers/certs";

const UNIT = "autoscaler-cloudscale";
const blocks = walkthrough("## 1. Binary on a control-plane node");
const report: string[] = [];
let ctr = "";
let sim: Awaited<ReturnType<typeof startSim>> | undefined;
const TOKEN = "walkthrough-token";

/** bash -euo pipefail -c SCRIPT in the container, in the clone, as root. */
async function sh(script: string, timeoutMs = 120000) {
  return podman(
    ["exec", "-w", REPO_ROOT, "-e", `CLOUDSCALE_API_TOKEN=${TOKEN}`, "-e", `CLOUDSCALE_API_URL=${sim!.apiUrl}`, ctr, "bash", "-euo", "pipefail", "-c", script],
    { timeoutMs },
  );
}
async function shOk(script: string, timeoutMs = 120000): Promise<string> {
  const r = await sh(script, timeoutMs);
  if (r.code !== 0) throw new Error(`in the container: ${script}\nexit ${r.code}\n${r.out}\n${r.err}`);
  return r.out;
}

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error("this proof needs root (podman with a privileged systemd container)");
  for (const p of [8086, 8087]) if (!(await portIsFree(p))) throw new Error(`127.0.0.1:${p} is in use; the unit listens there`);
  podmanEnv();
  sim = await startSim(["--boot-seconds", "1"]);
  ctr = track(uniqueName("acs-systemd"));
  const t0 = performance.now();
  await podmanOk([
    "run", "-d", "--name", ctr, "--privileged", "--network", "host", "--systemd=always",
    // /run and /tmp empty (the host's /run holds podman's own storage; copying it up would recurse).
    "--tmpfs", "/run:rw,notmpcopyup", "--tmpfs", "/tmp:rw,notmpcopyup",
    ...cloneMount(),
    "--rootfs", "/:O", "/lib/systemd/systemd", "--unit=basic.target",
  ]);
  let state = "";
  for (let i = 0; i < 120 && !/^(running|degraded)$/.test(state); i++) {
    await Bun.sleep(250);
    state = (await podman(["exec", ctr, "systemctl", "is-system-running"])).out.trim();
  }
  if (!/^(running|degraded)$/.test(state)) throw new Error(`systemd in the container did not come up (state "${state}")`);
  const version = (await shOk("systemctl --version | head -1")).trim();
  report.push(`${version} booted as PID 1 in ${((performance.now() - t0) / 1000).toFixed(1)}s`);
  // The one addition to the walk-through: the API is the simulator.
  await shOk(`mkdir -p /etc/systemd/system/${UNIT}.service.d && printf '[Service]\\nEnvironment=CLOUDSCALE_API_URL=%s\\n' '${sim.apiUrl}' >/etc/systemd/system/${UNIT}.service.d/test-api.conf`);
  // What the operator brings: the worker machine configuration (talosctl gen config).
  await shOk("cp deploy/talos-worker.example.yaml worker.yaml");
}, 180000);

afterAll(async () => {
  await removeContainers();
  await sim?.stop();
  if (report.length) console.log(["systemd proof:", ...report.map((l) => "  " + l)].join("\n"));
}, 180000);

describe("docs/operating.md, way 1, on a real systemd", () => {
  test("every sh block says whether a test runs it, and the ones that cannot run here say why", () => {
    expect(blocks.filter((b) => b.run).length).toBeGreaterThanOrEqual(7);
    for (const b of blocks.filter((x) => !x.run)) expect(b.note.length).toBeGreaterThan(10);
  });

  test("the walk-through's blocks run as they are, in order, and the service serves", async () => {
    const runs = blocks.filter((b) => b.run);
    // The renewal comes after the first start; it is run below.
    const renewal = runs.at(-1)!;
    for (const b of runs.slice(0, -1)) {
      const t0 = performance.now();
      const out = await shOk(b.script, 300000);
      report.push(`docs/operating.md:${b.line} ran in ${((performance.now() - t0) / 1000).toFixed(1)}s: ${b.script.split("\n")[0]}`);
      if (b.script.includes("systemctl enable --now")) expect(out + (await shOk(`systemctl is-enabled ${UNIT}`))).toContain("enabled");
    }
    expect(renewal.script).toContain("make-certs.sh");
    const status = await shOk(`autoscaler-cloudscale status --health 127.0.0.1:8087`);
    expect(status).toContain("workers");
    report.push(`status: ${status.trim().split("\n")[0]}`);
  }, 900000);

  test("systemd-analyze verify finds nothing to say about the installed unit", async () => {
    const r = await sh(`systemd-analyze verify /etc/systemd/system/${UNIT}.service 2>&1`);
    expect({ code: r.code, out: r.out.trim() }).toEqual({ code: 0, out: "" });
  });

  test("the service runs as autoscaler-cloudscale, which can read every installed file and write none", async () => {
    const user = (await shOk(`ps -o user= -p "$(systemctl show -p MainPID --value ${UNIT})"`)).trim();
    expect(user).toBe("autoscaler-cloudscale");
    const files = (await shOk("find /etc/autoscaler-cloudscale -type f | sort")).trim().split("\n");
    expect(files).toEqual(
      ["config.yaml", "tls/client-ca.crt", "tls/tls.crt", "tls/tls.key", "token", "userdata/workers.yaml"].map((f) => `/etc/autoscaler-cloudscale/${f}`),
    );
    for (const f of files) {
      expect(await shOk(`stat -c '%U:%G %a' ${f}`)).toBe("root:autoscaler-cloudscale 640\n");
      expect((await sh(`runuser -u autoscaler-cloudscale -- cat ${f} >/dev/null`)).code).toBe(0);
      expect((await sh(`runuser -u autoscaler-cloudscale -- sh -c ': >> ${f}'`)).code).not.toBe(0);
    }
    // The service itself sees the file system read-only.
    const pid = (await shOk(`systemctl show -p MainPID --value ${UNIT}`)).trim();
    expect(await shOk(`nsenter -t ${pid} -m findmnt -no OPTIONS -T /etc/autoscaler-cloudscale | tr , '\\n' | grep -x ro`)).toBe("ro\n");
  });

  test("the unit of the earlier docs (DynamicUser=yes) cannot read the same files: why the unit changed", async () => {
    await shOk(`cat >/etc/systemd/system/acs-dynamic.service <<'EOF'
[Service]
Type=oneshot
DynamicUser=yes
ConfigurationDirectory=autoscaler-cloudscale
ExecStart=/usr/local/bin/autoscaler-cloudscale validate --offline --config /etc/autoscaler-cloudscale/config.yaml
EOF
systemctl daemon-reload`);
    const r = await sh("systemctl start acs-dynamic.service");
    expect(r.code).not.toBe(0);
    const log = await shOk("journalctl -u acs-dynamic.service --no-pager -o cat");
    expect(log).toMatch(/EACCES|permission denied/i);
  });

  test("CA's way in: NodeGroups over mutual TLS, server name 127.0.0.1, with the walk-through's client certificate", async () => {
    const dir = join(WORK, "systemd-pki");
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const pki: Pki = { dir, caCert: join(dir, "ca.crt"), clientCert: join(dir, "tls.crt"), clientKey: join(dir, "tls.key"), serverCert: "", serverKey: "", rogueCert: "", rogueKey: "" };
    for (const f of ["ca.crt", "tls.crt", "tls.key"]) writeFileSync(join(dir, f), await shOk(`cat pki/cluster-autoscaler/${f}`));
    const res = await callNodeGroups({ port: 8086, pki, serverName: "127.0.0.1" });
    expect(res.nodeGroups.map((g) => `${g.id}[${g.minSize}..${g.maxSize}]`)).toEqual(["workers[0..3]"]);
    expect(callNodeGroups({ port: 8086, pki, serverName: "127.0.0.1", clientCert: false, timeoutMs: 5000 })).rejects.toThrow();
    expect((await httpGet(8087, "/healthz")).status).toBe(200);
    report.push(`NodeGroups over mTLS from outside the container -> ${res.nodeGroups.map((g) => `${g.id}[${g.minSize}..${g.maxSize}]`).join(",")}; without a client certificate: refused`);
  });

  test("renewal as the walk-through does it: the new server certificate is served without a restart", async () => {
    const serial = () => shOk("openssl s_client -connect 127.0.0.1:8086 -servername 127.0.0.1 -cert pki/cluster-autoscaler/tls.crt -key pki/cluster-autoscaler/tls.key -CAfile pki/ca.crt </dev/null 2>/dev/null | openssl x509 -noout -serial");
    const before = await serial();
    const pid = (await shOk(`systemctl show -p MainPID --value ${UNIT}`)).trim();
    const renewal = blocks.filter((b) => b.run).at(-1)!;
    await shOk(renewal.script);
    const expected = await shOk("openssl x509 -noout -serial -in /etc/autoscaler-cloudscale/tls/tls.crt");
    expect(expected).not.toBe(before);
    let now = before;
    for (let i = 0; i < 60 && now !== expected; i++) {
      await Bun.sleep(500);
      now = await serial();
    }
    expect(now).toBe(expected);
    expect((await shOk(`systemctl show -p MainPID --value ${UNIT}`)).trim()).toBe(pid);
    report.push(`renewal: served certificate ${before.trim()} -> ${now.trim()}, same process (pid ${pid} in the container)`);
  }, 60000);

  test("systemctl stop: SIGTERM drains, the process exits 0", async () => {
    await shOk(`systemctl stop ${UNIT}`, 60000);
    const props = await shOk(`systemctl show -p ExecMainStatus -p ExecMainCode -p Result ${UNIT}`);
    expect(props).toContain("ExecMainStatus=0");
    expect(props).toContain("Result=success");
    expect(await portIsFree(8086)).toBe(true);
  }, 90000);
});
