// Test PKI made with the openssl CLI: a CA, a server certificate for
// 127.0.0.1/localhost, a client certificate, and a second, unrelated CA.
import { mkdtempSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";

export interface Pki {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A client certificate signed by a different CA. */
  rogueCert: string;
  rogueKey: string;
}

function openssl(args: string[], cwd: string) {
  const r = Bun.spawnSync(["openssl", ...args], { cwd, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`openssl ${args.join(" ")} failed: ${r.stderr.toString()}`);
}

function issue(dir: string, ca: string, name: string, cn: string, ext: string) {
  openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${cn}`], dir);
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(["x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.crt`, "-CAkey", `${ca}.key`, "-CAcreateserial", "-out", `${name}.crt`, "-days", "2", "-extfile", `${name}.ext`, "-sha256"], dir);
}

function makeCa(dir: string, name: string) {
  openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.crt`, "-days", "2", "-subj", `/CN=${name}`, "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"], dir);
}

export function makePki(dir = mkdtempSync(join(tmpdir(), "pki-"))): Pki {
  makeCa(dir, "ca");
  makeCa(dir, "rogue-ca");
  issue(dir, "ca", "server", "autoscaler-cloudscale", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  issue(dir, "ca", "client", "cluster-autoscaler", "extendedKeyUsage=clientAuth\n");
  issue(dir, "rogue-ca", "rogue", "cluster-autoscaler", "extendedKeyUsage=clientAuth\n");
  const p = (f: string) => join(dir, f);
  return {
    dir,
    caCert: p("ca.crt"),
    serverCert: p("server.crt"),
    serverKey: p("server.key"),
    clientCert: p("client.crt"),
    clientKey: p("client.key"),
    rogueCert: p("rogue.crt"),
    rogueKey: p("rogue.key"),
  };
}

/** Issues a fresh server certificate into the same paths (rotation). */
export function rotateServerCert(pki: Pki, cn = "autoscaler-cloudscale-rotated") {
  issue(pki.dir, "ca", "server-next", cn, "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  // Key first, then certificate, each replaced atomically: the server must tolerate the window
  // in which the two do not match and keep serving with the previous pair.
  writeFileSync(`${pki.serverKey}.tmp`, readFileSync(join(pki.dir, "server-next.key")));
  renameSync(`${pki.serverKey}.tmp`, pki.serverKey);
  writeFileSync(`${pki.serverCert}.tmp`, readFileSync(join(pki.dir, "server-next.crt")));
  renameSync(`${pki.serverCert}.tmp`, pki.serverCert);
}
