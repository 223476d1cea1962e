// More certificates for the transport tests, made with the openssl CLI in a
// PKI directory from helpers/certs.ts: another client CA, client certificates
// that are expired or meant for servers, and rotations of the client CA bundle.
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

function openssl(args: string[], cwd: string) {
  const r = Bun.spawnSync(["openssl", ...args], { cwd, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`openssl ${args.join(" ")} failed: ${r.stderr.toString()}`);
}

/** A new self-signed CA `name` (name.crt, name.key) in dir. */
export function newCa(dir: string, name: string): string {
  openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.crt`, "-days", "2", "-subj", `/CN=${name}`, "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"], dir);
  return join(dir, `${name}.crt`);
}

/** A certificate `name` signed by CA `ca` (both in dir); days 0 makes one that expires at once. */
export function newCert(dir: string, ca: string, name: string, opts: { cn?: string; ext?: string; days?: number } = {}): { cert: string; key: string } {
  openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${opts.cn ?? name}`], dir);
  writeFileSync(join(dir, `${name}.ext`), opts.ext ?? "extendedKeyUsage=clientAuth\n");
  openssl(["x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.crt`, "-CAkey", `${ca}.key`, "-CAcreateserial", "-out", `${name}.crt`, "-days", String(opts.days ?? 2), "-extfile", `${name}.ext`, "-sha256"], dir);
  return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
}

/** Replaces `target` atomically with the concatenation of `sources` (a CA bundle). */
export function writeBundle(target: string, sources: string[]): void {
  writeFileSync(`${target}.tmp`, sources.map((s) => readFileSync(s, "utf8")).join(""));
  renameSync(`${target}.tmp`, target);
}
