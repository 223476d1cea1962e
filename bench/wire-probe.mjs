// Wire probe: a fixed set of requests against `serve` of one binary (mutual TLS and h2c), sent with Node's own
// HTTP/2 client, and what came back on the wire, one line per case: response headers (without date), whether
// they ended the stream (trailers-only), the response bytes, the trailers, the reset code; then TLS and
// HTTP/1.1 refusals and draining on SIGTERM. It asserts nothing: run it against the binary before and after a
// change to the server and compare (the simulator's random UUIDs differ between runs):
//
//   node bench/wire-probe.mjs OLD_BINARY > old.txt; node bench/wire-probe.mjs NEW_BINARY > new.txt
//   diff <(node bench/wire-probe.mjs --normalize old.txt) <(node bench/wire-probe.mjs --normalize new.txt)
//
// Needs Node.js (real node:http2, not Bun's) and openssl on PATH; everything listens on 127.0.0.1.
import http2 from "node:http2";
import tls from "node:tls";
import net from "node:net";
import zlib from "node:zlib";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";

if (process.argv[2] === "--normalize") {
  // UUIDs appear as hex-encoded ASCII inside the response bytes.
  const text = (await import("node:fs")).readFileSync(process.argv[3], "utf8");
  const hexChar = "(?:3[0-9]|6[1-6])";
  const uuid = new RegExp(`${hexChar}{8}2d${hexChar}{4}2d${hexChar}{4}2d${hexChar}{4}2d${hexChar}{12}`, "g");
  process.stdout.write(text.replace(uuid, "UUIDHEX"));
  process.exit(0);
}
const BIN = process.argv[2];
const dir = mkdtempSync(join(tmpdir(), "wireprobe-"));
const ossl = (args) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
function makeCa(n) {
  ossl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${n}.key`, "-out", `${n}.crt`, "-days", "2", "-subj", `/CN=${n}`, "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
}
function issue(ca, n, cn, ext) {
  ossl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${n}.key`, "-out", `${n}.csr`, "-subj", `/CN=${cn}`]);
  writeFileSync(join(dir, `${n}.ext`), ext);
  ossl(["x509", "-req", "-in", `${n}.csr`, "-CA", `${ca}.crt`, "-CAkey", `${ca}.key`, "-CAcreateserial", "-out", `${n}.crt`, "-days", "2", "-extfile", `${n}.ext`, "-sha256"]);
}
makeCa("ca");
makeCa("rogue");
issue("ca", "server", "srv", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
issue("ca", "client", "cli", "extendedKeyUsage=clientAuth\n");
issue("rogue", "rclient", "cli", "extendedKeyUsage=clientAuth\n");
const f = (n) => join(dir, n);

function start(args, re) {
  return new Promise((resolve, reject) => {
    const p = spawn(BIN, args, { env: { ...process.env, CLOUDSCALE_API_TOKEN: "probe-token-1234567890", CLOUDSCALE_API_URL: globalThis.API ?? "" } });
    let out = "";
    const on = (d) => {
      out += d;
      const m = out.match(re);
      if (m) resolve({ p, m, out: () => out });
    };
    p.stdout.on("data", on);
    p.stderr.on("data", on);
    p.on("exit", (c) => reject(new Error(`exit ${c}: ${out}`)));
    setTimeout(() => reject(new Error("timeout " + out)), 15000);
  });
}

const sim = await start(["sim", "--listen", "127.0.0.1:0", "--boot-seconds", "0"], /listening on (http:\/\/\S+)/);
const origin = sim.m[1];
globalThis.API = origin + "/v1";
const T = (g) => ({ "autoscaler-cloudscale-cluster": "wp", "autoscaler-cloudscale-group": g });
const seedRes = await fetch(origin + "/_sim/servers", {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ servers: [
    { name: "wp-pool-aaaaaaaa", flavor: "flex-4-1", image: "debian-13", zone: "lpg1", status: "running", tags: T("pool") },
    { name: "wp-pool-bbbbbbbb", flavor: "flex-4-1", image: "debian-13", zone: "lpg1", status: "running", tags: T("pool") },
    { name: "wp-other-cccccccc", flavor: "flex-4-1", image: "debian-13", zone: "lpg1", status: "running", tags: T("other") },
  ] }),
});
const uuids = (await seedRes.json()).uuids;
writeFileSync(f("cfg.yaml"), `clusterName: wp
startupGrace: 0s
nodeGroups:
  - {name: pool, flavor: flex-4-1, image: debian-13, zone: lpg1, min: 2, max: 5}
  - {name: other, flavor: flex-4-1, image: debian-13, zone: lpg1, min: 0, max: 3, options: {scaleDownUtilizationThreshold: 0.4}}
`);
const tlsSrv = await start(["serve", "--config", f("cfg.yaml"), "--listen", "127.0.0.1:0", "--tls-cert", f("server.crt"), "--tls-key", f("server.key"), "--tls-client-ca", f("ca.crt")], /serving gRPC.*listen=127\.0\.0\.1:(\d+)/);
const h2cSrv = await start(["serve", "--config", f("cfg.yaml"), "--listen", "127.0.0.1:0", "--insecure-plaintext"], /serving gRPC.*listen=127\.0\.0\.1:(\d+)/);
const tlsPort = Number(tlsSrv.m[1]);
const h2cPort = Number(h2cSrv.m[1]);

// protobuf helpers
const varint = (n) => {
  const b = [];
  n = BigInt(n);
  while (n > 127n) { b.push(Number(n & 127n) | 128); n >>= 7n; }
  b.push(Number(n));
  return Buffer.from(b);
};
const str = (no, s) => { const v = Buffer.from(s); return Buffer.concat([varint((no << 3) | 2), varint(v.length), v]); };
const msg = (no, m) => Buffer.concat([varint((no << 3) | 2), varint(m.length), m]);
const frame = (m, flag = 0) => { const h = Buffer.alloc(5); h[0] = flag; h.writeUInt32BE(m.length, 1); return Buffer.concat([h, m]); };
const S = "/clusterautoscaler.cloudprovider.v1.externalgrpc.CloudProvider/";

function session(port, secure, opts = {}) {
  return secure
    ? http2.connect(`https://127.0.0.1:${port}`, { ca: readFileSync(f("ca.crt")), cert: readFileSync(f(opts.cert ?? "client.crt")), key: readFileSync(f(opts.key ?? "client.key")), servername: "localhost", ...opts.extra })
    : http2.connect(`http://127.0.0.1:${port}`, opts.extra ?? {});
}

function call(sess, path, body, headers = {}, { endAfterMs, rstAfterMs, rstCode, chunks } = {}) {
  return new Promise((resolve) => {
    const h = { ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers", ...headers };
    for (const k of Object.keys(h)) if (h[k] === undefined) delete h[k];
    const out = { resp: null, respEndStream: false, data: [], trailers: null };
    let req;
    try {
      req = sess.request(h, { endStream: false });
    } catch (e) {
      return resolve({ error: String(e.code ?? e.message) });
    }
    req.on("response", (hd, flags) => {
      const c = { ...hd };
      delete c.date;
      out.resp = c;
      out.respEndStream = (flags & 1) === 1;
    });
    req.on("data", (d) => out.data.push(d));
    req.on("trailers", (t) => { out.trailers = { ...t }; });
    req.on("error", (e) => { out.error = e.code ?? e.message; });
    let done = false;
    const fin = () => {
      if (done) return;
      done = true;
      out.rst = req.rstCode;
      const data = Buffer.concat(out.data);
      out.data = data.length ? `${data.length}B:${data.toString("hex")}` : "";
      resolve(out);
    };
    req.on("close", fin);
    if (chunks) {
      let i = 0;
      const next = () => {
        if (i < chunks.length) { req.write(chunks[i++]); setTimeout(next, 20); } else req.end();
      };
      next();
    } else if (body !== null) {
      if (endAfterMs) { req.write(body); setTimeout(() => req.end(), endAfterMs); }
      else req.end(body);
    }
    if (rstAfterMs) setTimeout(() => req.close(rstCode ?? http2.constants.NGHTTP2_CANCEL), rstAfterMs);
    setTimeout(() => { if (!done) { out.timeout = true; req.close(http2.constants.NGHTTP2_CANCEL); fin(); } }, 5000);
  });
}

const tgt = (id) => frame(str(1, id));
const cases = [
  ["targetsize ok", S + "NodeGroupTargetSize", tgt("pool")],
  ["targetsize notfound", S + "NodeGroupTargetSize", tgt("nope")],
  ["targetsize empty id", S + "NodeGroupTargetSize", tgt("")],
  ["nodegroups", S + "NodeGroups", frame(Buffer.alloc(0))],
  ["nodes", S + "NodeGroupNodes", tgt("pool")],
  ["template", S + "NodeGroupTemplateNodeInfo", tgt("pool")],
  ["fornode id", S + "NodeGroupForNode", frame(msg(1, str(1, "cloudscale://" + uuids[0])))],
  ["fornode name", S + "NodeGroupForNode", frame(msg(1, str(2, "wp-other-cccccccc")))],
  ["fornode none", S + "NodeGroupForNode", frame(msg(1, str(2, "nobody")))],
  ["getoptions unimpl", S + "NodeGroupGetOptions", tgt("pool")],
  ["getoptions ok", S + "NodeGroupGetOptions", tgt("other")],
  ["gpulabel", S + "GPULabel", frame(Buffer.alloc(0))],
  ["gputypes", S + "GetAvailableGPUTypes", frame(Buffer.alloc(0))],
  ["increase bad delta", S + "NodeGroupIncreaseSize", tgt("pool")],
  ["decrease bad", S + "NodeGroupDecreaseTargetSize", tgt("pool")],
  ["unknown method", S + "Nope", frame(Buffer.alloc(0))],
  ["unknown service", "/x.Y/Z", frame(Buffer.alloc(0))],
  ["path with query", S + "NodeGroups?x=1", frame(Buffer.alloc(0))],
  ["wrong ct json", S + "NodeGroupTargetSize", tgt("pool"), { "content-type": "application/json" }],
  ["wrong ct text", S + "NodeGroupTargetSize", tgt("pool"), { "content-type": "text/plain" }],
  ["no ct", S + "NodeGroupTargetSize", tgt("pool"), { "content-type": undefined }],
  ["ct grpc+proto", S + "NodeGroupTargetSize", tgt("pool"), { "content-type": "application/grpc+proto" }],
  ["ct grpc+json", S + "NodeGroupTargetSize", frame(Buffer.from('{"id":"pool"}')), { "content-type": "application/grpc+json" }],
  ["grpc+json nodes", S + "NodeGroupNodes", frame(Buffer.from('{"id":"pool"}')), { "content-type": "application/grpc+json" }],
  ["grpc+json nodegroups", S + "NodeGroups", frame(Buffer.from('{}')), { "content-type": "application/grpc+json" }],
  ["grpc+json template", S + "NodeGroupTemplateNodeInfo", frame(Buffer.from('{"id":"pool"}')), { "content-type": "application/grpc+json; charset=utf-8" }],
  ["grpc+json fornode", S + "NodeGroupForNode", frame(Buffer.from('{"node":{"name":"wp-other-cccccccc"}}')), { "content-type": "application/grpc+JSON" }],
  ["grpc+json fornode none", S + "NodeGroupForNode", frame(Buffer.from('{"node":{"name":"x"}}')), { "content-type": "application/grpc+json" }],
  ["targetsize other", S + "NodeGroupTargetSize", tgt("other")],
  ["nodes other", S + "NodeGroupNodes", tgt("other")],
  ["nodes notfound", S + "NodeGroupNodes", tgt("nope")],
  ["template notfound", S + "NodeGroupTemplateNodeInfo", tgt("nope")],
  ["targetsize again", S + "NodeGroupTargetSize", tgt("pool")],
  ["nodes again", S + "NodeGroupNodes", tgt("pool")],
  ["template again", S + "NodeGroupTemplateNodeInfo", tgt("pool")],
  ["nodegroups again", S + "NodeGroups", frame(Buffer.alloc(0))],
  ["ct grpc-web", S + "NodeGroupTargetSize", tgt("pool"), { "content-type": "application/grpc-web" }],
  ["method GET", S + "NodeGroupTargetSize", tgt("pool"), { ":method": "GET" }],
  ["method PUT", S + "NodeGroupTargetSize", tgt("pool"), { ":method": "PUT" }],
  ["no te", S + "NodeGroupTargetSize", tgt("pool"), { te: undefined }],
  ["compressed no enc", S + "NodeGroupTargetSize", frame(str(1, "pool"), 1)],
  ["gzip", S + "NodeGroupTargetSize", frame(zlib.gzipSync(str(1, "pool")), 1), { "grpc-encoding": "gzip" }],
  ["gzip accept nodes", S + "NodeGroupNodes", tgt("pool"), { "grpc-accept-encoding": "gzip" }],
  ["gzip accept template", S + "NodeGroupTemplateNodeInfo", tgt("pool"), { "grpc-accept-encoding": "gzip" }],
  ["br", S + "NodeGroupTargetSize", frame(zlib.brotliCompressSync(str(1, "pool")), 1), { "grpc-encoding": "br" }],
  ["snappy", S + "NodeGroupTargetSize", frame(str(1, "pool"), 1), { "grpc-encoding": "snappy" }],
  ["identity enc", S + "NodeGroupTargetSize", frame(str(1, "pool")), { "grpc-encoding": "identity" }],
  ["random bytes", S + "NodeGroupTargetSize", frame(Buffer.from([0x0f, 1, 2, 3]))],
  ["empty body", S + "NodeGroupTargetSize", Buffer.alloc(0)],
  ["partial envelope", S + "NodeGroupTargetSize", Buffer.from([0, 0, 0])],
  ["truncated message", S + "NodeGroupTargetSize", Buffer.concat([Buffer.from([0, 0, 0, 0, 20]), str(1, "pool")])],
  ["two messages", S + "NodeGroupTargetSize", Buffer.concat([tgt("pool"), tgt("pool")])],
  ["over 4MiB declared", S + "NodeGroupTargetSize", Buffer.from([0, 0, 0x50, 0, 0, 1, 2, 3])],
  ["over 4MiB real", S + "NodeGroupTargetSize", frame(str(1, "x".repeat(4 * 1024 * 1024 + 10)))],
  ["just under 4MiB", S + "NodeGroupTargetSize", frame(str(1, "x".repeat(4 * 1024 * 1024 - 10)))],
  ["timeout ok", S + "NodeGroupTargetSize", tgt("pool"), { "grpc-timeout": "5S" }],
  ["timeout bad", S + "NodeGroupTargetSize", tgt("pool"), { "grpc-timeout": "abc" }],
  ["timeout too long", S + "NodeGroupTargetSize", tgt("pool"), { "grpc-timeout": "123456789S" }],
  ["timeout 1n refresh", S + "Refresh", frame(Buffer.alloc(0)), { "grpc-timeout": "1n" }],
  ["timeout 1m refresh slow body", S + "Refresh", frame(Buffer.alloc(0)), { "grpc-timeout": "20m" }, { endAfterMs: 300 }],
  ["refresh ok", S + "Refresh", frame(Buffer.alloc(0))],
  ["custom metadata", S + "NodeGroupTargetSize", tgt("pool"), { "x-foo": "bar", "grpc-trace-bin": "AAA" }],
  ["chunked body", S + "NodeGroupTargetSize", null, {}, { chunks: [Buffer.from([0]), Buffer.from([0, 0, 0]), Buffer.concat([Buffer.from([6]), str(1, "pool")])] }],
  ["pricing bad interval", S + "PricingNodePrice", frame(Buffer.concat([msg(1, str(2, "x")), msg(2, Buffer.from([8, 100])), msg(3, Buffer.from([8, 50]))]))],
  ["podprice no pod", S + "PricingPodPrice", frame(Buffer.alloc(0))],
  ["long id", S + "NodeGroupTargetSize", tgt("g".repeat(300))],
  ["unicode notfound", S + "NodeGroupTargetSize", tgt("pööl\n🙂%")],
];

const lines = [];
for (const secure of [true, false]) {
  const port = secure ? tlsPort : h2cPort;
  const sess = session(port, secure);
  sess.on("error", () => {});
  for (const [name, path, body, headers, extra] of cases) {
    const r = await call(sess, path, body, headers, extra);
    lines.push(`${secure ? "tls" : "h2c"} ${name}: ${JSON.stringify(r)}`);
  }
  // Client cancels mid-call, then the session still works.
  const r1 = await call(sess, S + "Refresh", frame(Buffer.alloc(0)), {}, { endAfterMs: 500, rstAfterMs: 50 });
  const r2 = await call(sess, S + "NodeGroupTargetSize", tgt("pool"));
  lines.push(`${secure ? "tls" : "h2c"} cancel then call: ${JSON.stringify(r1)} ${JSON.stringify(r2)}`);
  for (const code of [http2.constants.NGHTTP2_INTERNAL_ERROR, http2.constants.NGHTTP2_PROTOCOL_ERROR, http2.constants.NGHTTP2_REFUSED_STREAM]) {
    const a = await call(sess, S + "Refresh", frame(Buffer.alloc(0)), {}, { endAfterMs: 500, rstAfterMs: 50, rstCode: code });
    const b = await call(sess, S + "NodeGroupDeleteNodes", null, {}, { endAfterMs: 500, rstAfterMs: 10, rstCode: code, chunks: [Buffer.from([0, 0])] });
    const c = await call(sess, S + "NodeGroupTargetSize", tgt("pool"));
    lines.push(`${secure ? "tls" : "h2c"} reset ${code} then call: ${JSON.stringify(a)} ${JSON.stringify(b)} ${JSON.stringify(c)}`);
  }
  // Server settings as seen by the client.
  lines.push(`${secure ? "tls" : "h2c"} remoteSettings: ${JSON.stringify(sess.remoteSettings)}`);
  sess.close();
}

// TLS-level: no client cert, rogue cert, ALPN http/1.1, plaintext to TLS port, h2 to h2c with TLS.
async function tlsTry(opts) {
  return new Promise((resolve) => {
    const s = tls.connect({ host: "127.0.0.1", port: tlsPort, servername: "localhost", ca: readFileSync(f("ca.crt")), ...opts }, () => {
      s.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    });
    let data = "";
    s.on("data", (d) => (data += d.toString("latin1")));
    s.on("error", (e) => { data += `|error ${e.code}`; });
    s.on("close", () => resolve(`alpn=${s.alpnProtocol} ${JSON.stringify(data.slice(0, 60).replace(/[^\x20-\x7e|]/g, "."))}`));
    setTimeout(() => s.destroy(), 2000);
  });
}
lines.push(`tls no client cert: ${await tlsTry({ ALPNProtocols: ["h2"] })}`);
lines.push(`tls rogue cert: ${await tlsTry({ ALPNProtocols: ["h2"], cert: readFileSync(f("rclient.crt")), key: readFileSync(f("rclient.key")) })}`);
lines.push(`tls alpn http/1.1: ${await tlsTry({ ALPNProtocols: ["http/1.1"], cert: readFileSync(f("client.crt")), key: readFileSync(f("client.key")) })}`);
lines.push(`tls no alpn: ${await tlsTry({ cert: readFileSync(f("client.crt")), key: readFileSync(f("client.key")) })}`);
lines.push(`tls alpn h2: ${await tlsTry({ ALPNProtocols: ["h2"], cert: readFileSync(f("client.crt")), key: readFileSync(f("client.key")) })}`);
lines.push(`tls TLSv1.1: ${await tlsTry({ ALPNProtocols: ["h2"], maxVersion: "TLSv1.1", minVersion: "TLSv1", cert: readFileSync(f("client.crt")), key: readFileSync(f("client.key")) })}`);
const plain = await new Promise((resolve) => {
  const s = net.connect(tlsPort, "127.0.0.1", () => s.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
  let data = "";
  s.on("data", (d) => (data += d.toString("latin1")));
  s.on("error", (e) => { data += `|error ${e.code}`; });
  s.on("close", () => resolve(JSON.stringify(data.slice(0, 40).replace(/[^\x20-\x7e|]/g, "."))));
  setTimeout(() => s.destroy(), 2000);
});
lines.push(`plaintext h2 to TLS port: ${plain}`);
const h1 = await new Promise((resolve) => {
  const s = net.connect(h2cPort, "127.0.0.1", () => s.write("POST " + S + "NodeGroups HTTP/1.1\r\nHost: x\r\nContent-Type: application/grpc\r\nContent-Length: 5\r\n\r\n\0\0\0\0\0"));
  let data = "";
  s.on("data", (d) => (data += d.toString("latin1")));
  s.on("error", (e) => { data += `|error ${e.code}`; });
  s.on("close", () => resolve(JSON.stringify(data.slice(0, 80).replace(/[^\x20-\x7e|]/g, "."))));
  setTimeout(() => s.destroy(), 2000);
});
lines.push(`http/1.1 to h2c port: ${h1}`);

// Draining: a slow Refresh in flight, SIGTERM, then a new call on the same session.
await fetch(origin + "/_sim/faults", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ rules: [{ method: "GET", path: "/v1/servers", latencyMs: 1500 }] }) });
{
  const sess = session(tlsPort, true);
  sess.on("error", () => {});
  await call(sess, S + "NodeGroups", frame(Buffer.alloc(0)));
  const inflight = call(sess, S + "Refresh", frame(Buffer.alloc(0)));
  await new Promise((r) => setTimeout(r, 300));
  tlsSrv.p.kill("SIGTERM");
  await new Promise((r) => setTimeout(r, 200));
  const during = await call(sess, S + "NodeGroupTargetSize", tgt("pool"));
  const r = await inflight;
  lines.push(`drain: inflight ${JSON.stringify({ status: r.trailers?.["grpc-status"] ?? r.resp?.["grpc-status"], err: r.error })} new ${JSON.stringify(during)}`);
  const code = await new Promise((res) => tlsSrv.p.on("exit", res));
  lines.push(`drain: exit code ${code}; log mentions drain: ${/draining/.test(tlsSrv.out())}`);
  sess.destroy();
}
h2cSrv.p.kill("SIGTERM");
sim.p.kill("SIGTERM");
console.log(lines.join("\n").replaceAll(uuids[0], "UUID0"));
process.exit(0);
