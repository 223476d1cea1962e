// The gRPC server: HTTP/2 with mutual TLS by default (client certificate
// required, ALPN h2 as grpc-go demands), plaintext h2c only when asked for.
// Certificates are re-read when their files change; SIGTERM drains in-flight
// calls and exits within a bounded time.
import http2 from "node:http2";
import { readFileSync, statSync } from "node:fs";
import { createHash, X509Certificate } from "node:crypto";
import { Code, ConnectError, createConnectRouter, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";
import { log, redact } from "./log";
import { grpcMetricsInterceptor, metricsResponse, recordTlsExpiry, type TlsExpiry } from "./metrics";
import { streamAdapter } from "./stream-adapter";
import { unaryPath, type UnaryPathOptions } from "./unary-call";

export interface TlsFiles {
  cert: string;
  key: string;
  clientCa: string;
}

export interface ServerOptions {
  host: string;
  port: number;
  tls?: TlsFiles;
  routes: (router: ConnectRouter) => void;
  /** How often certificate files are checked for changes (ms). */
  certCheckIntervalMs?: number;
}

export interface RunningServer {
  port: number;
  inFlight(): number;
  /** Stops accepting calls, waits for in-flight ones up to `graceMs`, then closes. */
  shutdown(graceMs: number): Promise<void>;
}

const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
const MAX_ERROR_MESSAGE = 1024;

function readTls(files: TlsFiles) {
  const read = (what: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (e) {
      throw new Error(`cannot read the ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
  };
  return { cert: read("TLS certificate", files.cert), key: read("TLS key", files.key), ca: read("client CA bundle", files.clientCa) };
}

/** notAfter (Unix seconds) of each certificate in a PEM bundle, in order. */
function notAfter(pem: Buffer): number[] {
  const blocks = pem.toString("utf8").match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new X509Certificate(b).validToDate.getTime() / 1000);
}

function tlsExpiry(material: { cert: Buffer; ca: Buffer }): TlsExpiry | undefined {
  try {
    const serving = notAfter(material.cert);
    const ca = notAfter(material.ca);
    if (!serving.length || !ca.length) return undefined;
    return { servingCert: serving[0]!, clientCa: Math.min(...ca) };
  } catch {
    // The TLS stack judges the files; the expiry metrics only follow what parses.
    return undefined;
  }
}

function fingerprint(files: TlsFiles): string {
  const h = createHash("sha256");
  for (const p of [files.cert, files.key, files.clientCa]) {
    try {
      const st = statSync(p);
      h.update(`${p}:${st.mtimeMs}:${st.size}:${st.ino};`);
    } catch {
      h.update(`${p}:missing;`);
    }
  }
  return h.digest("hex");
}

/** Bounds error messages, hides internals, keeps secrets out, and logs each failed call. */
function errorInterceptor(): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    try {
      const res = await next(req);
      if (log.enabled("debug")) log.debug("call", { method: req.method.name, ms: Math.round(performance.now() - started) });
      return res;
    } catch (e) {
      const err = e instanceof ConnectError ? e : new ConnectError(`internal error: ${(e as Error)?.message ?? String(e)}`, Code.Internal);
      const message = redact(err.rawMessage).slice(0, MAX_ERROR_MESSAGE);
      if (err.code !== Code.Unimplemented) log.warn("call failed", { method: req.method.name, code: Code[err.code], error: message });
      if (!(e instanceof ConnectError)) log.error("unexpected error", { method: req.method.name, stack: (e as Error)?.stack?.split("\n").slice(0, 4).join(" | ") });
      // A plain ConnectError with nothing to hide or cut goes out as it is (CA asks NodeGroupGetOptions
      // of every group twice a loop and is answered UNIMPLEMENTED: no need for a second error each time).
      if (e === err && message === err.rawMessage && err.details.length === 0 && err.cause === undefined && isEmpty(err.metadata)) throw err;
      throw new ConnectError(message, err.code);
    }
  };
}

function isEmpty(h: Headers): boolean {
  for (const _ of h.keys()) return false;
  return true;
}

/** A gRPC "trailers-only" answer: one HEADERS frame carrying the status, ending the stream. */
function trailersOnly(stream: http2.ServerHttp2Stream, code: Code, message: string) {
  const headers = { ":status": 200, "content-type": "application/grpc", "grpc-status": String(code), "grpc-message": encodeURIComponent(message) };
  if (!stream.headersSent && !stream.destroyed) stream.respond(headers, { endStream: true });
  else if (!stream.destroyed) stream.end();
}

/**
 * connect-node's gzip or brotli, loaded with node:zlib on the first compressed message: CA sends
 * none, and loading them costs every start.
 */
function lazyCompression(name: "gzip" | "br"): Compression {
  const load = async () => {
    const m = await import("@connectrpc/connect-node");
    return name === "gzip" ? m.compressionGzip : m.compressionBrotli;
  };
  return {
    name,
    compress: async (bytes) => (await load()).compress(bytes),
    decompress: async (bytes, readMaxBytes) => (await load()).decompress(bytes, readMaxBytes),
  };
}

export async function startGrpcServer(opts: ServerOptions): Promise<RunningServer> {
  let inFlight = 0;
  let draining = false;
  const drained = new Set<() => void>();
  const shutdownController = new AbortController();
  // connect-es serves gRPC only; the universal handlers are what connect-node's adapter would
  // serve, with the same options (and the same compressions it would accept by default).
  const interceptors = [grpcMetricsInterceptor(), errorInterceptor()];
  const router = createConnectRouter({
    grpc: true,
    grpcWeb: false,
    connect: false,
    readMaxBytes: MAX_MESSAGE_BYTES,
    writeMaxBytes: MAX_MESSAGE_BYTES,
    shutdownSignal: shutdownController.signal,
    interceptors,
    acceptCompression: [lazyCompression("gzip"), lazyCompression("br")],
  });
  // The services as registered, for the lean path of plain unary calls (unary-call.ts).
  const services: UnaryPathOptions["services"] = [];
  opts.routes({
    ...router,
    service(service, impl, options) {
      services.push({ service, impl: impl as Record<string, unknown> });
      return router.service(service, impl, options);
    },
  });
  const serve = streamAdapter({
    handlers: router.handlers,
    unary: unaryPath({ services, interceptors, readMaxBytes: MAX_MESSAGE_BYTES, writeMaxBytes: MAX_MESSAGE_BYTES, shutdownSignal: shutdownController.signal }),
    // An unknown method gets a proper gRPC UNIMPLEMENTED, not a bare HTTP 404.
    fallback(stream, path) {
      trailersOnly(stream, Code.Unimplemented, `method ${path.slice(0, 200)} is not implemented by autoscaler-cloudscale`);
    },
  });
  const tracked = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    // A stream the client resets with an error code emits "error"; the call's signal already says why.
    stream.on("error", (e) => log.debug("HTTP/2 stream error", { error: e.message }));
    if (draining) return trailersOnly(stream, Code.Unavailable, "the server is shutting down");
    inFlight++;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      inFlight--;
      if (draining && inFlight === 0) for (const f of drained) f();
    };
    stream.once("finish", finish);
    stream.once("close", finish);
    serve(stream, headers);
  };

  let server: http2.Http2Server | http2.Http2SecureServer;
  let certTimer: ReturnType<typeof setInterval> | undefined;
  if (opts.tls) {
    const tls = opts.tls;
    const material = readTls(tls);
    const expiry = tlsExpiry(material);
    if (expiry) recordTlsExpiry(expiry);
    server = http2.createSecureServer(
      {
        ...material,
        requestCert: true,
        rejectUnauthorized: true,
        allowHTTP1: false,
        ALPNProtocols: ["h2"],
        minVersion: "TLSv1.2",
      },
    );
    let seen = fingerprint(tls);
    certTimer = setInterval(() => {
      const now = fingerprint(tls);
      if (now === seen) return;
      try {
        const next = readTls(tls);
        (server as http2.Http2SecureServer).setSecureContext({ ...next, minVersion: "TLSv1.2" } as never);
        seen = now;
        const renewed = tlsExpiry(next);
        if (renewed) recordTlsExpiry(renewed);
        log.info("TLS certificates reloaded", { cert: tls.cert, notAfter: renewed ? new Date(renewed.servingCert * 1000).toISOString() : undefined });
      } catch (e) {
        // A rotation may be half-written; keep serving with the old certificates and try again.
        log.warn("TLS certificates changed but cannot be loaded yet; keeping the previous ones", { error: (e as Error).message });
      }
    }, opts.certCheckIntervalMs ?? 2000);
    certTimer.unref?.();
  } else {
    server = http2.createServer({});
  }
  server.on("stream", tracked);
  server.on("sessionError", (e) => log.debug("HTTP/2 session error", { error: (e as Error).message }));
  (server as http2.Http2SecureServer).on?.("tlsClientError", (e: Error) => log.warn("TLS handshake refused", { error: e.message }));

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : opts.port;

  return {
    port,
    inFlight: () => inFlight,
    async shutdown(graceMs: number) {
      draining = true;
      if (certTimer) clearInterval(certTimer);
      server.close();
      if (inFlight > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, graceMs);
          drained.add(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      shutdownController.abort();
    },
  };
}

/** Plain HTTP health endpoints: /healthz (process up), /readyz (from the first good list until shutdown; docs/operating.md), /metrics (Prometheus) and /status (JSON for `status`). */
export function startHealthServer(host: string, port: number, ready: () => { ok: boolean; detail: string }, status: () => unknown) {
  return Bun.serve({
    hostname: host,
    port,
    fetch(req) {
      const path = new URL(req.url).pathname;
      if (path === "/healthz" || path === "/livez") return new Response("ok\n");
      if (path === "/readyz") {
        const r = ready();
        return new Response(`${r.detail}\n`, { status: r.ok ? 200 : 503 });
      }
      if (path === "/metrics") return metricsResponse();
      if (path === "/status") return Response.json(status(), { headers: { "cache-control": "no-store" } });
      return new Response("not found\n", { status: 404 });
    },
  });
}

export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host === "[::1]" || /^127\./.test(host);
}
