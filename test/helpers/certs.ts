// Test certificates, made with the openssl CLI: the one certificate maker of the
// TypeScript tests. makePki gives a CA, a server certificate (for 127.0.0.1 and
// localhost unless other names are asked for), a client certificate, and a client
// certificate from a second, unrelated CA; newCa/newCert make more in the same
// directory (expired ones, ones for the wrong purpose, new client CAs).
import { mkdirSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from "node:fs";
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

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

/** Extensions of a server certificate for these names (DNS names or IP addresses), as cert-manager issues them. */
export function serverExt(sans: string[]): string {
  const san = sans.map((s) => (/^[0-9.]+$|:/.test(s) ? `IP:${s}` : `DNS:${s}`)).join(",");
  return `subjectAltName=${san}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n`;
}
export const CLIENT_EXT = "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n";

/** A new self-signed CA `name` (name.crt, name.key) in dir; returns the certificate's path. */
export function newCa(dir: string, name: string): string {
  openssl(["req", "-x509", ...EC, "-keyout", `${name}.key`, "-out", `${name}.crt`, "-days", "2", "-subj", `/CN=${name}`, "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"], dir);
  return join(dir, `${name}.crt`);
}

/** A certificate `name` signed by CA `ca` (both in dir): a client certificate unless `ext` says otherwise; days 0 expires at once. */
export function newCert(dir: string, ca: string, name: string, opts: { cn?: string; ext?: string; days?: number } = {}): { cert: string; key: string } {
  openssl(["req", ...EC, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${opts.cn ?? name}`], dir);
  writeFileSync(join(dir, `${name}.ext`), opts.ext ?? CLIENT_EXT);
  openssl(["x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.crt`, "-CAkey", `${ca}.key`, "-CAcreateserial", "-out", `${name}.crt`, "-days", String(opts.days ?? 2), "-extfile", `${name}.ext`, "-sha256"], dir);
  return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
}

export function makePki(opts: { dir?: string; serverSans?: string[]; serverCn?: string } = {}): Pki {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), "pki-"));
  mkdirSync(dir, { recursive: true });
  newCa(dir, "ca");
  newCa(dir, "rogue-ca");
  const server = newCert(dir, "ca", "server", { cn: opts.serverCn ?? opts.serverSans?.[0] ?? "autoscaler-cloudscale", ext: serverExt(opts.serverSans ?? ["127.0.0.1", "localhost"]) });
  const client = newCert(dir, "ca", "client", { cn: "cluster-autoscaler" });
  const rogue = newCert(dir, "rogue-ca", "rogue", { cn: "cluster-autoscaler" });
  return { dir, caCert: join(dir, "ca.crt"), serverCert: server.cert, serverKey: server.key, clientCert: client.cert, clientKey: client.key, rogueCert: rogue.cert, rogueKey: rogue.key };
}

/** Replaces `target` atomically with the concatenation of `sources` (a certificate, a key, or a CA bundle). */
export function writeBundle(target: string, sources: string[]): void {
  writeFileSync(`${target}.tmp`, sources.map((s) => readFileSync(s, "utf8")).join(""));
  renameSync(`${target}.tmp`, target);
}

/** Issues a fresh server certificate into the same paths (rotation): key first, then certificate, each atomically. */
export function rotateServerCert(pki: Pki, cn = "autoscaler-cloudscale-rotated"): void {
  const next = newCert(pki.dir, "ca", cn, { cn, ext: serverExt(["127.0.0.1", "localhost"]) });
  // The server must tolerate the window in which the two do not match and keep serving with the previous pair.
  writeBundle(pki.serverKey, [next.key]);
  writeBundle(pki.serverCert, [next.cert]);
}
