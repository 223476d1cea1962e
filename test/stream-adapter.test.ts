// The stream adapter between node:http2 and connect-es's handlers, with handlers whose answer fails:
// before its headers are out (the first chunk of the body cannot be produced, or the headers cannot
// be sent), or after. The client, grpc-js, must get an error at once, not wait for its deadline.
import { afterAll, beforeAll, expect, test } from "bun:test";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { UniversalHandler, UniversalServerResponse } from "@connectrpc/connect/protocol";
import { configureLog } from "../src/log";
import { streamAdapter } from "../src/stream-adapter";
import { grpc } from "./helpers/grpc";

configureLog({ level: "error" });

/** A body whose first chunk is `first` (or fails), and whose next one fails. */
async function* body(first: Uint8Array | Error): AsyncIterable<Uint8Array> {
  if (first instanceof Error) throw first;
  yield first;
  throw new Error("the answer broke after its first chunk");
}

const GRPC_OK_FRAME = new Uint8Array([0, 0, 0, 0, 0]);
const answers: Record<string, () => UniversalServerResponse> = {
  // The first chunk cannot be produced: nothing has been sent yet.
  "/t.S/FirstChunkFails": () => ({ status: 200, header: new Headers({ "content-type": "application/grpc" }), body: body(new Error("cannot encode the answer")), trailer: new Headers({ "grpc-status": "0" }) }),
  // The headers cannot be sent (HTTP/2 has no status 99).
  "/t.S/HeadersRefused": () => ({ status: 99, header: new Headers({ "content-type": "application/grpc" }), body: body(GRPC_OK_FRAME), trailer: new Headers({ "grpc-status": "0" }) }),
  // Headers and a first message are out, then the body fails.
  "/t.S/BodyFailsLater": () => ({ status: 200, header: new Headers({ "content-type": "application/grpc" }), body: body(GRPC_OK_FRAME), trailer: new Headers({ "grpc-status": "0" }) }),
  // A well-formed answer, so the test sees the adapter work at all.
  "/t.S/Fine": () => ({ status: 200, header: new Headers({ "content-type": "application/grpc" }), body: (async function* () { yield GRPC_OK_FRAME; })(), trailer: new Headers({ "grpc-status": "0" }) }),
};

function handler(path: string, answer: () => UniversalServerResponse): UniversalHandler {
  const h = (async () => answer()) as unknown as UniversalHandler;
  Object.assign(h, { requestPath: path, method: { name: path.split("/").pop() }, protocolNames: ["grpc"], allowedMethods: ["POST"], supportedContentType: () => true });
  return h;
}

let server: http2.Http2Server;
let client: grpc.Client;
beforeAll(async () => {
  server = http2.createServer();
  const serve = streamAdapter({ handlers: Object.entries(answers).map(([p, a]) => handler(p, a)), fallback: (s) => s.close(0x7) });
  server.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    stream.on("error", () => {}); // a reset stream reports it; as the gRPC server does (server.ts)
    serve(stream, headers);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  client = new grpc.Client(`127.0.0.1:${(server.address() as AddressInfo).port}`, grpc.credentials.createInsecure());
});
afterAll(async () => {
  client?.close();
  await new Promise<void>((r) => server.close(() => r()));
});

// Well inside the test's own timeout, so a call left hanging shows as DEADLINE_EXCEEDED.
const DEADLINE_MS = 4_000;
function call(path: string): Promise<{ code: grpc.status; details: string }> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), new grpc.Metadata(), { deadline: Date.now() + DEADLINE_MS }, (err) => {
      resolve(err ? { code: err.code, details: err.details } : { code: grpc.status.OK, details: "" });
    });
  });
}

test("an answer that works is served", async () => {
  expect(await call("/t.S/Fine")).toEqual({ code: grpc.status.OK, details: "" });
});

for (const [path, details] of [
  ["/t.S/FirstChunkFails", "the server could not send its answer"],
  ["/t.S/HeadersRefused", "the server could not send its answer"],
] as const) {
  test(`${path.split("/").pop()}: before the headers are out, the client gets INTERNAL at once, not its deadline`, async () => {
    expect(await call(path)).toEqual({ code: grpc.status.INTERNAL, details });
  }, 10_000);
}

test("BodyFailsLater: after the headers, the stream is reset and the client gets an error at once, not its deadline", async () => {
  const r = await call("/t.S/BodyFailsLater");
  expect(r.code).toBe(grpc.status.INTERNAL);
  expect(r.details).toMatch(/RST_STREAM/);
}, 10_000);
