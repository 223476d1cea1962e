// The expiry of the TLS material as metrics: the serving certificate's and the
// client CA bundle's notAfter, as openssl reads them from the files, follow a
// renewal without a restart, and exist only when the server speaks TLS. The
// alert in deploy/monitoring/alerts.yaml and the docs name only these families.
import { afterAll, describe, expect, test } from "bun:test";
import { copyFileSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { makePki, newCa, newCert, serverExt } from "./helpers/certs";
import { sampleValue, scrape } from "./helpers/metrics";
import { startServe, startSim, until, writeConfig, type ServeProc, type SimProc } from "./helpers/procs";

const P = "autoscaler_cloudscale_";
const SERVING = `${P}tls_serving_cert_expiry_timestamp_seconds`;
const CLIENT_CA = `${P}tls_client_ca_expiry_timestamp_seconds`;
const config = `clusterName: tls\nnodeGroups:\n  - {name: pool, flavor: flex-4-2, image: debian-13, zone: lpg1, min: 0, max: 2}\n`;
const procs: (ServeProc | SimProc)[] = [];
afterAll(async () => {
  for (const p of procs) await p.stop();
});

/** notAfter as openssl prints it, in Unix seconds. */
function enddate(file: string): number {
  const r = Bun.spawnSync(["openssl", "x509", "-noout", "-enddate", "-in", file], { stdout: "pipe" });
  return Date.parse(r.stdout.toString().trim().replace(/^notAfter=/, "")) / 1000;
}

async function serve(tls: { cert: string; key: string; clientCa: string } | undefined) {
  const sim = await startSim();
  procs.push(sim);
  const s = await startServe({ configPath: writeConfig(config), apiUrl: sim.apiUrl, tls, extra: ["--health-listen", "127.0.0.1:0"] });
  procs.push(s);
  return Number(/health=127\.0\.0\.1:(\d+)/.exec(s.output())![1]);
}

describe("TLS expiry metrics", () => {
  test("the serving certificate's and the client CA bundle's notAfter; a renewal moves them without a restart", async () => {
    const pki = makePki();
    // The client CA bundle holds two CAs; the earlier expiry counts.
    const other = newCa(pki.dir, "other-ca");
    const bundle = join(pki.dir, "bundle.crt");
    writeFileSync(bundle, readFileSync(pki.caCert, "utf8") + readFileSync(other, "utf8"));
    const health = await serve({ cert: pki.serverCert, key: pki.serverKey, clientCa: bundle });
    let f = (await scrape(health)).families;
    expect(sampleValue(f, SERVING)).toBe(enddate(pki.serverCert));
    expect(sampleValue(f, CLIENT_CA)).toBe(Math.min(enddate(pki.caCert), enddate(other)));

    // Renew the server certificate for 30 days, written the way cert-manager's volume swaps files.
    const renewed = newCert(pki.dir, "ca", "server-renewed", { ext: serverExt(["127.0.0.1", "localhost"]), days: 30 });
    copyFileSync(renewed.key, `${pki.serverKey}.new`);
    copyFileSync(renewed.cert, `${pki.serverCert}.new`);
    renameSync(`${pki.serverKey}.new`, pki.serverKey);
    renameSync(`${pki.serverCert}.new`, pki.serverCert);
    const want = enddate(renewed.cert);
    await until("the renewed certificate's expiry in /metrics", async () => sampleValue((await scrape(health)).families, SERVING) === want, 15000);
    f = (await scrape(health)).families;
    expect(sampleValue(f, SERVING)).toBe(want);
    expect(want - Date.now() / 1000).toBeGreaterThan(29 * 86400);
  }, 60000);

  test("a plaintext server exports neither family", async () => {
    const health = await serve(undefined);
    const f = (await scrape(health)).families;
    expect(f.has(SERVING)).toBe(false);
    expect(f.has(CLIENT_CA)).toBe(false);
  }, 30000);

  test("the alert and the docs name exactly these two TLS families", () => {
    for (const file of ["deploy/monitoring/alerts.yaml", "docs/operating.md"]) {
      const text = readFileSync(join(import.meta.dir, "..", file), "utf8");
      const named = new Set(text.match(/\bautoscaler_cloudscale_tls_[a-z0-9_]*[a-z0-9]\b/g) ?? []);
      expect({ file, named: [...named].sort() }).toEqual({ file, named: [CLIENT_CA, SERVING].sort() });
    }
  });
});
