// Transport: who may talk to the provider. Clients without a certificate, with
// one from another CA, expired, or meant for servers are refused, and so is
// HTTP/1.1; certificates rotated on disk under load (many concurrent callers,
// fresh connections all the time, one rotation deliberately half-written for a
// while) are picked up with no failed call; plaintext needs its explicit flag.
// (provider.test.ts covers the no-certificate and other-CA cases with grpc-js.)
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import tls from "node:tls";
import net from "node:net";
import { copyFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { connect, grpc } from "../helpers/grpc";
import { makePki, newCa, newCert, serverExt, writeBundle, type Pki } from "../helpers/certs";
import { BIN, TEST_TOKEN, record, requireBinary, sleep, startServe, startSim, until, writeConfig, type ServeProc, type SimProc } from "../helpers/procs";
import { checkNoSecretsAtEnd } from "./lib";

checkNoSecretsAtEnd();

const CONFIG = `clusterName: tr
startupGrace: 0s
nodeGroups:
  - {name: pool, flavor: flex-4-2, image: debian-13, zone: lpg1, min: 0, max: 5}
`;

let sim: SimProc;
let pki: Pki;
let clientCaBundle: string;
let serve: ServeProc;
const extraProcs: ServeProc[] = [];

/** A grpc-js client with exactly these credentials and a connection of its own. */
function client(port: number, creds: { cert?: string; key?: string } | "plaintext") {
  const c =
    creds === "plaintext"
      ? connect(port, undefined, { ownConnection: true })
      : connect(port, pki, { ownConnection: true, as: creds.cert && creds.key ? { cert: creds.cert, key: creds.key } : "none" });
  const call = (method: string, req: object = {}, deadlineMs = 5000) => c.call(method, req, { deadlineMs }) as Promise<unknown>;
  return { call, close: c.close };
}
const mine = () => ({ cert: pki.clientCert, key: pki.clientKey });

/** The CN of the certificate the server presents to a new TLS connection. */
function peerCn(port: number) {
  return new Promise<string>((resolve, reject) => {
    const sock = tls.connect({ host: "127.0.0.1", port, servername: "localhost", ca: readFileSync(pki.caCert), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey), ALPNProtocols: ["h2"] }, () => {
      const cn = String(sock.getPeerCertificate().subject.CN);
      sock.end();
      resolve(cn);
    });
    sock.on("error", reject);
    setTimeout(() => {
      sock.destroy();
      reject(new Error("no TLS handshake in 5 s"));
    }, 5000).unref();
  });
}

beforeAll(async () => {
  sim = await startSim(["--boot-seconds", "0"]);
  pki = makePki();
  // The client CA bundle is a file of its own, so it can be rotated without touching what clients trust.
  clientCaBundle = join(pki.dir, "client-ca-bundle.pem");
  copyFileSync(pki.caCert, clientCaBundle);
  serve = await startServe({ configPath: writeConfig(CONFIG), apiUrl: sim.apiUrl, tls: { cert: pki.serverCert, key: pki.serverKey, clientCa: clientCaBundle } });
});

afterAll(async () => {
  await serve?.stop();
  for (const p of extraProcs) await p.stop("SIGKILL");
  await sim?.stop();
});

describe("who may connect", () => {
  test("refused: no certificate, another CA's, an expired one, one for servers only, the server's own, plaintext h2c; nothing reaches the cloud", async () => {
    const api = sim;
    const expired = newCert(pki.dir, "ca", "expired-client", { days: 0 });
    const serverUsage = newCert(pki.dir, "ca", "server-usage", { ext: "extendedKeyUsage=serverAuth\n" });
    await sleep(1100); // the expired certificate's single second is over
    await api.resetCounters();
    const cases: [string, ReturnType<typeof client>][] = [
      ["no client certificate", client(serve.port, {})],
      ["a certificate from another CA", client(serve.port, { cert: pki.rogueCert, key: pki.rogueKey })],
      ["an expired certificate from our CA", client(serve.port, expired)],
      ["a certificate from our CA for server authentication only", client(serve.port, serverUsage)],
      ["the server's own certificate", client(serve.port, { cert: pki.serverCert, key: pki.serverKey })],
      ["plaintext h2c", client(serve.port, "plaintext")],
    ];
    const outcomes: Record<string, string> = {};
    for (const [label, cl] of cases) {
      outcomes[label] = await cl.call("NodeGroupIncreaseSize", { id: "pool", delta: 1 }, 3000).then(() => "accepted", (e: grpc.ServiceError) => grpc.status[e.code]!);
      cl.close();
    }
    // Every one is refused before a call is made: grpc-js reports that no connection could be established.
    expect(outcomes).toEqual(Object.fromEntries(cases.map(([l]) => [l, "UNAVAILABLE"])));
    expect((await api.counters())["POST /v1/servers"] ?? 0).toBe(0);
    expect(serve.output()).toContain("TLS handshake refused");
    // And the real client is served.
    const ok = client(serve.port, mine());
    expect(await ok.call("NodeGroups")).toBeTruthy();
    ok.close();
  });

  test("HTTP/1.1 is refused: over TLS with ALPN http/1.1, over TLS without ALPN, and in plaintext", async () => {
    const request = "POST /clusterautoscaler.cloudprovider.v1.externalgrpc.CloudProvider/NodeGroups HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/grpc\r\nTE: trailers\r\nContent-Length: 5\r\n\r\n\0\0\0\0\0";
    const attempt = (shape: 0 | 1 | 2) =>
      new Promise<{ handshake: string; answer: string }>((resolve) => {
        let data = "";
        let handshake = "no";
        const sock: net.Socket =
          shape === 2
            ? net.connect(serve.port, "127.0.0.1", () => sock.write(request))
            : tls.connect({ host: "127.0.0.1", port: serve.port, servername: "localhost", ca: readFileSync(pki.caCert), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey), ALPNProtocols: shape === 0 ? ["http/1.1"] : undefined }, () => {
                handshake = `yes (ALPN ${(sock as tls.TLSSocket).alpnProtocol || "none"})`;
                sock.write(request);
              });
        const t = setTimeout(() => sock.destroy(), 5000);
        sock.on("data", (d) => (data += d.toString("latin1")));
        sock.on("error", (e) => (data ||= `error: ${e.message}`));
        sock.on("close", () => {
          clearTimeout(t);
          resolve({ handshake, answer: data.slice(0, 120) });
        });
      });
    const withAlpn = await attempt(0);
    expect(withAlpn.handshake).toBe("no");
    expect(withAlpn.answer).toMatch(/NO_APPLICATION_PROTOCOL|no application protocol/i);
    const noAlpn = await attempt(1);
    expect(noAlpn.answer).not.toMatch(/grpc-status/i); // no gRPC answer, just a refusal
    expect(noAlpn.answer).toMatch(/^HTTP\/1\.[01] 4\d\d|error|^$/);
    const plain = await attempt(2);
    expect(plain.handshake).toBe("no");
    expect(plain.answer).not.toMatch(/grpc-status|HTTP\/1\.[01] 200/i);
  });
});

describe("certificates rotated on disk", () => {
  test("under load (16 callers, fresh connections all along): server certificate three times, one of them half-written for 3 s, then a new client CA; no failed call", async () => {
    const port = serve.port;
    const failures: string[] = [];
    let calls = 0;
    let fresh = 0;
    let stop = false;
    const longLived = [client(port, mine()), client(port, mine())];
    const methods = ["NodeGroups", "NodeGroupTargetSize", "NodeGroupNodes", "Refresh", "NodeGroupTemplateNodeInfo"];
    const callers = Array.from({ length: 16 }, (_, i) =>
      (async () => {
        for (let n = 0; !stop && n < 20_000; n++) {
          const m = methods[(i + n) % methods.length]!;
          calls++;
          await longLived[i % 2]!.call(m, m === "NodeGroups" || m === "Refresh" ? {} : { id: "pool" }).catch((e: grpc.ServiceError) => failures.push(`${m}: ${grpc.status[e.code]} ${e.details}`));
        }
      })(),
    );
    // New connections all the time: each one is a TLS handshake against whatever is loaded right now.
    const handshakes = (async () => {
      for (let n = 0; !stop && n < 5000; n++) {
        const cl = client(port, mine());
        fresh++;
        await cl.call("NodeGroups").catch((e: grpc.ServiceError) => failures.push(`fresh connection: ${grpc.status[e.code]} ${e.details}`));
        cl.close();
        await sleep(20);
      }
    })();

    const issueServer = (cn: string) => newCert(pki.dir, "ca", cn, { cn, ext: serverExt(["127.0.0.1", "localhost"]) });
    const replace = (from: string, to: string) => writeBundle(to, [from]);
    for (let i = 1; i <= 3; i++) {
      const cn = `rotated-${i}`;
      const next = issueServer(cn);
      replace(next.key, pki.serverKey);
      // The second rotation stays half-written (new key, old certificate) for longer than the 2 s check interval.
      if (i === 2) await sleep(3000);
      replace(next.cert, pki.serverCert);
      await until(`the server presents ${cn}`, async () => (await peerCn(port)) === cn, 15_000, 250);
    }

    // A new client CA: refused before the bundle names it, accepted after, with the old clients still served.
    newCa(pki.dir, "ca2");
    const client2 = newCert(pki.dir, "ca2", "client2");
    const c2 = () => client(port, client2);
    const before = c2();
    const refusedBefore = await before.call("NodeGroups").then(() => "accepted", (e: grpc.ServiceError) => grpc.status[e.code]);
    before.close();
    writeBundle(clientCaBundle, [pki.caCert, join(pki.dir, "ca2.crt")]);
    await until("a client of the new CA is accepted", async () => {
      const cl = c2();
      try {
        return await cl.call("NodeGroups", {}, 2000).then(() => true, () => false);
      } finally {
        cl.close();
      }
    }, 15_000, 250);
    // Enough traffic went through the rotations, however slow this machine is today (bounded).
    await until("500 calls and 20 fresh connections", async () => calls > 500 && fresh > 20, 60_000, 100);
    stop = true;
    await Promise.all([...callers, handshakes]);
    for (const l of longLived) l.close();

    console.log(`rotation under load: ${calls} calls on 2 connections by 16 callers, ${fresh} fresh connections, ${failures.length} failures`);
    expect(refusedBefore).toBe("UNAVAILABLE");
    expect(calls).toBeGreaterThan(500);
    expect(fresh).toBeGreaterThan(20);
    expect(failures.slice(0, 10)).toEqual([]);
    expect(serve.output().match(/TLS certificates reloaded/g)?.length ?? 0).toBeGreaterThanOrEqual(4);
    expect(serve.output()).toContain("TLS certificates changed but cannot be loaded yet; keeping the previous ones"); // the half-written one

    // Dropping the old CA from the bundle: new connections of its clients are refused from then on.
    writeBundle(clientCaBundle, [join(pki.dir, "ca2.crt")]);
    await until("an old-CA client is refused", async () => {
      const cl = client(port, mine());
      try {
        return await cl.call("NodeGroups", {}, 2000).then(() => false, (e: grpc.ServiceError) => e.code === grpc.status.UNAVAILABLE);
      } finally {
        cl.close();
      }
    }, 15_000, 250);
    const still = c2();
    expect(await still.call("NodeGroups")).toBeTruthy();
    still.close();
  }, 120_000);
});

describe("plaintext needs its explicit flag", () => {
  const configPath = () => writeConfig(CONFIG);
  async function run(args: string[]): Promise<{ code: number | null; out: string }> {
    requireBinary();
    const p = Bun.spawn([BIN, "serve", "--config", configPath(), "--listen", "127.0.0.1:0", ...args], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", CLOUDSCALE_API_TOKEN: TEST_TOKEN, CLOUDSCALE_API_URL: sim.apiUrl },
      stdout: "pipe",
      stderr: "pipe",
    });
    const timer = setTimeout(() => p.kill("SIGKILL"), 10_000);
    const code = await p.exited;
    clearTimeout(timer);
    const out = (await new Response(p.stdout).text()) + (await new Response(p.stderr).text());
    record(out);
    return { code, out };
  }

  test("without TLS flags and without --insecure-plaintext it refuses to start, naming both", async () => {
    const r = await run([]);
    expect(r.code).toBe(2);
    for (const flag of ["--tls-cert", "--tls-key", "--tls-client-ca", "--insecure-plaintext"]) expect(r.out).toContain(flag);
    expect(r.out).not.toContain("serving gRPC");
  });

  test("with only some TLS flags it refuses too; --insecure-plaintext with TLS flags is refused", async () => {
    const partial = await run(["--tls-cert", pki.serverCert, "--tls-key", pki.serverKey]);
    expect(partial.code).toBe(2);
    expect(partial.out).toContain("--tls-client-ca");
    expect(partial.out).toContain("--insecure-plaintext");
    const both = await run(["--insecure-plaintext", "--tls-cert", pki.serverCert]);
    expect(both.code).toBe(2);
    expect(both.out).toMatch(/--insecure-plaintext cannot be combined/);
  });

  test("with --insecure-plaintext it serves h2c only: a plaintext client is served, a TLS client is not", async () => {
    const p = await startServe({ configPath: configPath(), apiUrl: sim.apiUrl });
    extraProcs.push(p);
    expect(p.output()).toContain("plaintext h2c");
    const plain = client(p.port, "plaintext");
    expect(await plain.call("NodeGroups")).toBeTruthy();
    plain.close();
    const tlsClient = client(p.port, mine());
    const e = await tlsClient.call("NodeGroups", {}, 3000).then(() => null, (x: grpc.ServiceError) => x);
    tlsClient.close();
    expect(e?.code).toBe(grpc.status.UNAVAILABLE);
  });
});
