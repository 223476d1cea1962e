// Serves connect-es's universal handlers straight from node:http2 `stream`
// events. connect-es still speaks gRPC (envelopes, grpc-timeout, compression,
// size limits, status trailers) and runs the interceptors and the service; this
// module only carries bytes and headers between an HTTP/2 stream and a
// UniversalHandler. It replaces connect-node's path through the node:http2
// compatibility request/response objects, which cost more per call than the
// handler itself (bench/README.md).
import type http2 from "node:http2";
import type { UniversalHandler, UniversalServerRequest, UniversalServerResponse } from "@connectrpc/connect/protocol";
import { log } from "./log";
import { requestHeaders, resetReason, type Fallback } from "./unary-call";

function nodeHeaders(h: Headers | undefined, into: http2.OutgoingHttpHeaders): http2.OutgoingHttpHeaders {
  h?.forEach((value, key) => {
    into[key] = value;
  });
  return into;
}

/**
 * The request body as connect-es consumes it: the stream's chunks as they arrive. When
 * connect-es stops early (an envelope over the size limit, a second message), the rest is
 * not read: the stream is paused and its data is left to flow control. `read` are chunks the
 * lean path read already; with `ended` the stream has no more.
 */
function requestBody(stream: http2.ServerHttp2Stream, read: Uint8Array[] = [], ended = false): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator]() {
      const chunks: Uint8Array[] = read;
      let failed: Error | undefined;
      let wake: (() => void) | undefined;
      const onData = (c: Uint8Array) => {
        chunks.push(c);
        wake?.();
      };
      const onEnd = () => {
        ended = true;
        wake?.();
      };
      const onError = (e: Error) => {
        failed = e;
        wake?.();
      };
      const detach = () => {
        stream.off("data", onData);
        stream.off("end", onEnd);
        stream.off("error", onError);
        stream.off("close", onEnd);
      };
      if (!ended) {
        stream.on("data", onData);
        stream.once("end", onEnd);
        stream.once("error", onError);
        stream.once("close", onEnd); // reset by the client: no "end"; the request signal says why
        if (stream.isPaused()) stream.resume();
      }
      return {
        async next(): Promise<IteratorResult<Uint8Array>> {
          for (;;) {
            if (chunks.length) return { value: chunks.shift()!, done: false };
            if (failed) {
              detach();
              throw failed;
            }
            if (ended) {
              detach();
              return { value: undefined, done: true };
            }
            await new Promise<void>((resolve) => (wake = resolve));
            wake = undefined;
          }
        },
        async return(): Promise<IteratorResult<Uint8Array>> {
          detach();
          if (!ended && !stream.destroyed) stream.pause();
          return { value: undefined, done: true };
        },
      };
    },
  };
}

const H2_INTERNAL_ERROR = 0x2;
const GRPC_INTERNAL = "13";

/**
 * Ends a call whose answer could not be written, so the client learns it now rather than at its
 * deadline: a gRPC INTERNAL (trailers-only) while no headers are out, else a reset of the stream.
 */
function failCall(stream: http2.ServerHttp2Stream, message: string): void {
  if (stream.destroyed) return;
  if (!stream.headersSent) {
    try {
      stream.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": GRPC_INTERNAL, "grpc-message": encodeURIComponent(message) }, { endStream: true });
      return;
    } catch {
      // The headers cannot be sent either: reset below.
    }
  }
  stream.close(H2_INTERNAL_ERROR);
}

/** Writes a universal response to the stream: headers, the body's chunks, then trailers. */
async function respond(stream: http2.ServerHttp2Stream, res: UniversalServerResponse): Promise<void> {
  const it = res.body?.[Symbol.asyncIterator]() as AsyncIterator<Uint8Array> | undefined;
  try {
    // The first chunk before the headers: the handler may still add headers until then.
    let chunk = it ? await it.next() : undefined;
    if (stream.destroyed) return;
    const trailer = res.trailer;
    stream.respond(nodeHeaders(res.header, { ":status": res.status }), { waitForTrailers: trailer !== undefined });
    if (trailer) stream.once("wantTrailers", () => stream.sendTrailers(nodeHeaders(trailer, {})));
    for (; chunk && !chunk.done; chunk = await it!.next()) {
      if (stream.destroyed) return;
      if (!stream.write(chunk.value)) await drained(stream);
    }
    if (!stream.destroyed) stream.end();
  } catch (e) {
    // A write that failed (the client went away) is reported to the handler's pipeline; an answer
    // that could not be produced or sent ends the call with an error the client sees at once.
    if (!stream.destroyed) {
      log.error("gRPC answer could not be sent", { error: (e as Error)?.message ?? String(e) });
      failCall(stream, "the server could not send its answer");
    }
    await it?.throw?.(e).catch(() => {});
  } finally {
    await it?.return?.().catch(() => {});
  }
}

function drained(stream: http2.ServerHttp2Stream): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off("drain", done);
      stream.off("close", done);
      resolve();
    };
    stream.once("drain", done);
    stream.once("close", done);
  });
}

export interface StreamAdapterOptions {
  handlers: readonly UniversalHandler[];
  /** The lean path (unary-call.ts): true when it took the call. */
  unary?: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, path: string, url: string, fallback: Fallback) => boolean;
  /** Called for a path no handler serves. */
  fallback: (stream: http2.ServerHttp2Stream, path: string) => void;
}

/** A `stream` listener for an Http2Server that serves the given universal handlers. */
export function streamAdapter(opts: StreamAdapterOptions) {
  const byPath = new Map<string, UniversalHandler>();
  for (const h of opts.handlers) byPath.set(h.requestPath, h);
  return function onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    const path = headers[":path"] ?? "";
    const q = path.indexOf("?");
    const route = q < 0 ? path : path.slice(0, q);
    const handler = byPath.get(route);
    if (!handler) return opts.fallback(stream, path);
    const url = `${headers[":scheme"] ?? "https"}://${headers[":authority"] ?? headers.host ?? "localhost"}${path}`;
    const connect = (read?: Uint8Array[], rest?: http2.ServerHttp2Stream) => serveWith(handler, stream, headers, url, read, read !== undefined && rest === undefined);
    if (opts.unary?.(stream, headers, route, url, connect)) return;
    connect();
  };
}

/** One call through connect-es's universal handler. */
function serveWith(handler: UniversalHandler, stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, url: string, read: Uint8Array[] | undefined, ended: boolean) {
    const abort = new AbortController();
    if (stream.closed) abort.abort(resetReason(stream.rstCode ?? 0));
    else stream.once("close", () => abort.abort(resetReason(stream.rstCode ?? 0)));
    const req: UniversalServerRequest = {
      httpVersion: "2.0",
      method: headers[":method"] ?? "",
      url,
      header: requestHeaders(headers),
      body: requestBody(stream, read, ended),
      signal: abort.signal,
    };
    handler(req)
      .then((res) => respond(stream, res))
      .catch((e) => {
        // connect-es turns every failure of the call into a status, and respond() ends the call
        // itself when its answer fails; should the handler still reject, the call ends now too.
        log.error("gRPC stream failed", { method: handler.method.name, error: (e as Error)?.message ?? String(e) });
        failCall(stream, "the server could not answer this call");
      });
}
