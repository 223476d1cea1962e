// The lean path for the calls Cluster Autoscaler makes: unary, protobuf, not compressed.
// connect-es's universal handler runs every call through a pipeline of async-iterable
// transforms, builds a handler context with three Headers and linked AbortControllers, and
// aborts it when the call ends; on this runtime that is about a fifth of the CPU of a call
// (bench/results.md). For a plain unary call this path does the same with connect-es's own
// parts: the method's serialization (the same size limits and "parse binary" errors), the same
// interceptors around the same implementation, setTrailerStatus for a failed call, and a context
// that makes its signal and headers only when the implementation reads them. Whatever is not a
// plain call (JSON, a compressed request, a bad timeout, an envelope that is not exactly one message)
// goes to connect-es's handler with the bytes read so far.
import type http2 from "node:http2";
import { create, isMessage, type DescMessage, type DescMethodUnary, type DescService } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextValues,
  type ContextValues,
  type HandlerContext,
  type Interceptor,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { createDeadlineSignal, createLinkedAbortController, createMethodSerializationLookup, type Serialization } from "@connectrpc/connect/protocol";
import { parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { log } from "./log";

/** The content types a plain call carries; connect-es answers both as application/grpc+proto. */
const PLAIN = new Set(["application/grpc", "application/grpc+proto"]);
const ANSWER_TYPE = "application/grpc+proto";

export interface UnaryPathOptions {
  /** The services as registered on the router: each unary method gets the lean path. */
  services: { service: DescService; impl: Record<string, unknown> }[];
  interceptors: Interceptor[];
  readMaxBytes: number;
  writeMaxBytes: number;
  shutdownSignal: AbortSignal;
}

/** What the lean path needs of the stream's owner: to hand a call it does not take to connect-es. */
export type Fallback = (read: Uint8Array[], rest: http2.ServerHttp2Stream | undefined) => void;

interface Route {
  method: DescMethodUnary;
  impl: (req: unknown, ctx: HandlerContext) => Promise<unknown>;
  input: Serialization<unknown>;
  output: Serialization<unknown>;
}

type Next = (req: UnaryRequest) => Promise<UnaryResponse>;

/** The lean path's routes by request path (/package.Service/Method). */
export function unaryPath(opts: UnaryPathOptions) {
  const routes = new Map<string, Route>();
  for (const { service, impl } of opts.services) {
    for (const method of service.methods as DescMethodUnary[]) {
      const fn = impl[method.localName];
      if (method.methodKind !== "unary" || typeof fn !== "function") continue;
      const ser = createMethodSerializationLookup(method, undefined, undefined, opts);
      routes.set(`/${service.typeName}/${method.name}`, { method, impl: fn.bind(impl) as Route["impl"], input: ser.getI(true) as Serialization<unknown>, output: ser.getO(true) as Serialization<unknown> });
    }
  }

  /** Takes the call when its headers make it a plain one; false leaves it to connect-es. */
  return function serve(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, path: string, url: string, fallback: Fallback): boolean {
    const route = routes.get(path);
    if (!route || headers[":method"] !== "POST") return false;
    const ct = headers["content-type"];
    if (typeof ct !== "string" || !PLAIN.has(ct)) return false;
    const enc = headers["grpc-encoding"];
    // A client that accepts compressed answers (CA's binary links grpc-go's gzip, so each of its calls says
    // "grpc-accept-encoding: gzip") still gets a plain one: the header allows, it does not ask. grpc-go's
    // server answers uncompressed too, unless the request itself was compressed.
    if (enc !== undefined && enc !== "identity") return false;
    const t = headers["grpc-timeout"];
    const timeout = parseTimeout(typeof t === "string" ? t : null, Number.MAX_SAFE_INTEGER);
    if (timeout.error || (t !== undefined && typeof t !== "string")) return false;
    // The deadline runs from the headers, as connect-es's does, not from the end of the body.
    const deadline = timeout.timeoutMs === undefined ? undefined : Date.now() + timeout.timeoutMs;
    readBody(stream, opts.readMaxBytes + 5, (chunks, size, ended) => {
      if (!ended) return fallback(chunks, stream);
      const body = chunks.length === 1 ? chunks[0]! : concat(chunks, size);
      const len = size >= 5 ? ((body[1]! << 24) | (body[2]! << 16) | (body[3]! << 8) | body[4]!) >>> 0 : -1;
      // Not exactly one uncompressed message: connect-es says what is wrong with it.
      if (body[0] !== 0 || len !== size - 5 || len > opts.readMaxBytes) return fallback(chunks, undefined);
      call(route, stream, headers, url, deadline, body.subarray(5)).catch((e) => {
        // The call itself ends in an answer; what reaches here is a stream that broke under us.
        log.error("gRPC stream failed", { method: route.method.name, error: (e as Error)?.message ?? String(e) });
        if (!stream.destroyed) stream.close(0x2 /* INTERNAL_ERROR */);
      });
    });
    return true;
  };

  async function call(route: Route, stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, url: string, deadline: number | undefined, payload: Uint8Array) {
    const ctx = new CallContext(route, stream, headers, url, deadline, opts.shutdownSignal);
    let answer: Uint8Array | undefined;
    let error: ConnectError | undefined;
    try {
      // A request that does not parse is answered before the interceptors, as connect-es does.
      const message = route.input.parse(payload);
      const context = ctx.context;
      // The interceptors around the implementation, outermost first, as connect-es applies them.
      const last: Next = async (req) => {
        const out = await route.impl(req.message, context);
        return {
          stream: false,
          message: normalize(route.method.output, out),
          method: route.method,
          service: route.method.parent,
          get header() {
            return context.responseHeader;
          },
          get trailer() {
            return context.responseTrailer;
          },
        } as UnaryResponse;
      };
      const invoke = opts.interceptors.reduceRight<Next>((next, i) => i(next as never) as Next, last);
      const res = await invoke({
        stream: false,
        message,
        method: route.method,
        service: route.method.parent,
        requestMethod: "POST",
        url,
        get signal() {
          return context.signal;
        },
        get header() {
          return context.requestHeader;
        },
        get contextValues() {
          return context.values;
        },
      } as UnaryRequest);
      const bytes = route.output.serialize(res.message);
      answer = new Uint8Array(5 + bytes.length);
      answer[1] = bytes.length >>> 24;
      answer[2] = (bytes.length >>> 16) & 0xff;
      answer[3] = (bytes.length >>> 8) & 0xff;
      answer[4] = bytes.length & 0xff;
      answer.set(bytes, 5);
    } catch (e) {
      error = e instanceof ConnectError ? e : new ConnectError("internal error", Code.Internal, undefined, undefined, e);
    } finally {
      ctx.end(error);
    }
    if (stream.destroyed) return;
    const head: http2.OutgoingHttpHeaders = { ":status": 200, "content-type": ANSWER_TYPE };
    ctx.extraHeaders(head);
    const trailer = trailerOf(ctx, error);
    if (!answer) {
      // A failed call has no message: gRPC's "Trailers-Only" answer, the status in the one HEADERS frame
      // that ends the stream (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md), instead of
      // headers, an empty DATA frame and trailers. CA asks NodeGroupGetOptions twice per node per loop
      // and most groups answer UNIMPLEMENTED: one frame and one write instead of three.
      stream.respond({ ...head, ...trailer }, { endStream: true });
      return;
    }
    stream.respond(head, { waitForTrailers: true });
    stream.once("wantTrailers", () => stream.sendTrailers({ ...trailer }));
    stream.end(answer);
  }
}

/** The trailers of an error, kept per error: an error thrown again and again is worded once. */
const errorTrailers = new WeakMap<ConnectError, http2.OutgoingHttpHeaders>();

/** The call's trailers: its status, and what an interceptor or the implementation added. */
function trailerOf(ctx: CallContext, error: ConnectError | undefined): http2.OutgoingHttpHeaders {
  const added = ctx.addedTrailer();
  if (!error && !added) return { "grpc-status": "0" };
  if (error && !added && errorTrailers.has(error)) return errorTrailers.get(error)!;
  const trailer = added ?? new Headers({ "grpc-status": "0" });
  if (error) setTrailerStatus(trailer, error);
  const out: http2.OutgoingHttpHeaders = {};
  trailer.forEach((value, key) => {
    out[key] = value;
  });
  if (error && !added) errorTrailers.set(error, out);
  return out;
}

/**
 * The handler context of one call, made lazily: the implementations read `signal` only for
 * calls that wait (Refresh, deletions, templates) and the request headers only to pick a codec.
 */
class CallContext {
  private signal_?: { controller: AbortController; cleanup: () => void; detach: () => void };
  private requestHeader_?: Headers;
  private responseHeader_?: Headers;
  private responseTrailer_?: Headers;
  private values_?: ContextValues;
  readonly context: HandlerContext;

  constructor(route: Route, private stream: http2.ServerHttp2Stream, private headers: http2.IncomingHttpHeaders, url: string, deadline: number | undefined, private shutdownSignal: AbortSignal) {
    const self = this;
    this.context = {
      method: route.method,
      service: route.method.parent,
      requestMethod: "POST",
      protocolName: "grpc",
      url,
      timeoutMs: () => (deadline === undefined ? undefined : deadline - Date.now()),
      get signal() {
        return self.makeSignal(deadline).controller.signal;
      },
      get requestHeader() {
        return (self.requestHeader_ ??= requestHeaders(self.headers));
      },
      get responseHeader() {
        return (self.responseHeader_ ??= new Headers({ "content-type": ANSWER_TYPE }));
      },
      get responseTrailer() {
        return (self.responseTrailer_ ??= new Headers({ "grpc-status": "0" }));
      },
      get values() {
        return (self.values_ ??= createContextValues());
      },
      abort(reason?: unknown) {
        self.end(reason);
      },
    } as HandlerContext;
  }

  /** connect-es's context signal: the deadline, the client resetting the stream, the server shutting down. */
  private makeSignal(deadlineAt: number | undefined) {
    if (!this.signal_) {
      const deadline = createDeadlineSignal(deadlineAt === undefined ? undefined : deadlineAt - Date.now());
      const request = new AbortController();
      const onClose = () => request.abort(resetReason(this.stream.rstCode ?? 0));
      if (this.stream.closed) onClose();
      else this.stream.once("close", onClose);
      const controller = createLinkedAbortController(deadline.signal, request.signal, this.shutdownSignal);
      this.signal_ = { controller, cleanup: deadline.cleanup, detach: () => this.stream.off("close", onClose) };
    }
    return this.signal_;
  }

  /** The call is over: as connect-es does, its signal (if anyone made it) aborts. */
  end(reason?: unknown) {
    const s = this.signal_;
    if (!s) return;
    s.cleanup();
    s.detach();
    if (!s.controller.signal.aborted) s.controller.abort(reason);
  }

  /** The trailer headers, if anyone made them (an interceptor or the implementation may add to them). */
  addedTrailer(): Headers | undefined {
    return this.responseTrailer_;
  }

  /** Headers an interceptor or the implementation added to the answer. */
  extraHeaders(into: http2.OutgoingHttpHeaders) {
    this.responseHeader_?.forEach((value, key) => {
      into[key] = value;
    });
  }
}

function normalize(schema: DescMessage, out: unknown) {
  return isMessage(out, schema) ? out : create(schema, out as never);
}

/** Reads the request body up to `limit` bytes; `ended` false when the limit came first (the rest is left unread). */
function readBody(stream: http2.ServerHttp2Stream, limit: number, done: (chunks: Uint8Array[], size: number, ended: boolean) => void) {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const finish = (ended: boolean) => {
    stream.off("data", onData);
    stream.off("end", onEnd);
    if (!ended && !stream.destroyed) stream.pause();
    done(chunks, size, ended);
  };
  const onData = (c: Uint8Array) => {
    chunks.push(c);
    size += c.length;
    if (size > limit) finish(false);
  };
  const onEnd = () => finish(true);
  stream.on("data", onData);
  stream.once("end", onEnd);
}

function concat(chunks: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** The request headers as connect-es reads them, pseudo-headers left out. */
export function requestHeaders(h: http2.IncomingHttpHeaders): Headers {
  const out = new Headers();
  for (const k in h) {
    if (k.charCodeAt(0) === 58 /* ":" */) continue;
    const v = h[k];
    if (v === undefined) continue;
    if (typeof v === "string") out.append(k, v);
    else for (const e of v) out.append(k, e);
  }
  return out;
}

// HTTP/2 error codes (RFC 9113, section 7) a client may reset a stream with.
const H2_REFUSED_STREAM = 0x7;
const H2_CANCEL = 0x8;
const H2_ENHANCE_YOUR_CALM = 0xb;

/** Why a call's request signal aborts when the client resets its stream. */
export function resetReason(rstCode: number): ConnectError | undefined {
  if (rstCode === 0) return undefined;
  const code = rstCode === H2_CANCEL ? Code.Canceled : rstCode === H2_REFUSED_STREAM ? Code.Unavailable : rstCode === H2_ENHANCE_YOUR_CALM ? Code.ResourceExhausted : Code.Internal;
  return new ConnectError(`http/2 stream closed with error code 0x${rstCode.toString(16)}`, code);
}
