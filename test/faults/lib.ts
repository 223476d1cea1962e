// What only the fault-injection suite needs, beside test/helpers: a seeded PRNG
// with the draws the trials make, snapshots of the cloud for before/after
// comparisons, a raw HTTP/2 gRPC caller for wire-level requests, and the
// suite-wide secrets check.
import { afterAll, expect } from "bun:test";
import http2 from "node:http2";
import { readFileSync } from "node:fs";
import { makeRng as mulberry32 } from "../../src/sim/faults";
import { TEST_TOKEN, allOutput, type SimApi, type SimServer } from "../helpers/procs";
import type { Pki } from "../helpers/certs";
import { decodeGrpcMessage } from "../helpers/grpc";

export const SERVICE = "/clusterautoscaler.cloudprovider.v1.externalgrpc.CloudProvider";

// ------------------------------------------------------------------ randomness

/** The simulator's PRNG (mulberry32, fully determined by its seed) with the draws the trials make. */
export function makeRng(seed: number) {
  const next = mulberry32(seed);
  const rng = {
    next,
    /** Integer in [lo, hi]. */
    int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!,
    chance: (p: number) => next() < p,
    bytes: (n: number) => {
      const b = new Uint8Array(n);
      for (let i = 0; i < n; i++) b[i] = Math.floor(next() * 256);
      return b;
    },
    /** Up to k distinct elements of xs. */
    sample: <T>(xs: readonly T[], k: number): T[] => {
      const copy = [...xs];
      const out: T[] = [];
      while (copy.length && out.length < k) out.push(copy.splice(Math.floor(next() * copy.length), 1)[0]!);
      return out;
    },
  };
  return rng;
}
export type Rng = ReturnType<typeof makeRng>;

/** A seed from the environment (to reproduce a failure) or a fresh one; printed either way. */
export function seedFrom(envName: string, what: string): number {
  const fromEnv = process.env[envName];
  const seed = fromEnv !== undefined && fromEnv !== "" ? Number(fromEnv) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
  console.log(`${what}: seed ${seed} (reproduce with ${envName}=${seed})`);
  return seed;
}

// ------------------------------------------------------------------ the cloud before and after

/** A stable, comparable view of one server: everything a provider could have changed. */
export function fingerprint(s: SimServer): string {
  const tags = Object.keys(s.tags).sort().map((k) => `${k}=${s.tags[k]}`).join(",");
  return `${s.uuid} ${s.name} ${s.status} ${s.flavor.slug} ${s.zone.slug} [${tags}]`;
}

/** uuid → fingerprint of every server in the simulator. */
export async function snapshot(api: SimApi): Promise<Map<string, string>> {
  return new Map((await api.servers()).map((s) => [s.uuid, fingerprint(s)]));
}

/** The uuids whose server appeared, vanished or changed between two snapshots. */
export function changed(before: Map<string, string>, after: Map<string, string>): string[] {
  const out: string[] = [];
  for (const [u, f] of before) if (after.get(u) !== f) out.push(u);
  for (const u of after.keys()) if (!before.has(u)) out.push(u);
  return out;
}

// ------------------------------------------------------------------ raw gRPC over node:http2

export interface RawAnswer {
  /** HTTP status of the response headers, if any arrived. */
  httpStatus?: number;
  /** grpc-status from the headers (trailers-only) or the trailers. */
  grpcStatus?: number;
  grpcMessage?: string;
  /** The status came in the response headers, which ended the stream: gRPC's "Trailers-Only" answer. */
  trailersOnly?: boolean;
  /** RST_STREAM code when the stream was reset; undefined otherwise. */
  rstCode?: number;
  /** Set when the session or stream failed before any answer (e.g. the connection was refused). */
  error?: string;
  body: Buffer;
}

/** A gRPC frame: compressed flag 0, big-endian length, the bytes. */
export function grpcFrame(msg: Uint8Array, compressed = false): Buffer {
  const b = Buffer.alloc(5 + msg.length);
  b[0] = compressed ? 1 : 0;
  b.writeUInt32BE(msg.length, 1);
  Buffer.from(msg.buffer, msg.byteOffset, msg.byteLength).copy(b, 5);
  return b;
}

export function h2Session(port: number, pki?: Pki): http2.ClientHttp2Session {
  const s = pki
    ? http2.connect(`https://127.0.0.1:${port}`, { ca: readFileSync(pki.caCert), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey), servername: "localhost" })
    : http2.connect(`http://127.0.0.1:${port}`);
  s.on("error", () => {}); // reported per request
  return s;
}

/**
 * One request on a raw HTTP/2 session. Resolves when the answer is complete
 * (trailers, a trailers-only response, or the stream closing), bounded by timeoutMs.
 */
export function rawCall(session: http2.ClientHttp2Session, opts: { path: string; headers?: Record<string, string | undefined>; body?: Buffer; timeoutMs?: number }): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const headers: Record<string, string> = { ":method": "POST", ":path": opts.path, "content-type": "application/grpc", te: "trailers" };
    for (const [k, v] of Object.entries(opts.headers ?? {})) {
      if (v === undefined) delete headers[k];
      else headers[k] = v;
    }
    const ans: RawAnswer = { body: Buffer.alloc(0) };
    const chunks: Buffer[] = [];
    let done = false;
    let st: http2.ClientHttp2Stream;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      ans.body = Buffer.concat(chunks);
      if (!st.closed && !st.destroyed) st.close(http2.constants.NGHTTP2_CANCEL);
      resolve(ans);
    };
    const timer = setTimeout(() => {
      ans.error ??= `no complete answer within ${opts.timeoutMs ?? 10_000} ms`;
      finish();
    }, opts.timeoutMs ?? 10_000);
    const grpcHeaders = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-status"] !== undefined) {
        ans.grpcStatus = Number(h["grpc-status"]);
        const m = h["grpc-message"];
        ans.grpcMessage = typeof m === "string" ? decodeGrpcMessage(m) : undefined;
      }
    };
    try {
      st = session.request(headers);
    } catch (e) {
      ans.error = (e as Error).message;
      done = true;
      clearTimeout(timer);
      return resolve(ans);
    }
    st.on("response", (h) => {
      ans.httpStatus = Number(h[":status"]);
      grpcHeaders(h);
      if (ans.grpcStatus !== undefined) {
        ans.trailersOnly = true;
        finish();
      }
    });
    st.on("trailers", (h) => {
      grpcHeaders(h);
      finish();
    });
    st.on("data", (d: Buffer) => chunks.push(d));
    st.on("error", (e) => {
      ans.error ??= e.message;
    });
    st.on("close", () => {
      if (st.rstCode && st.rstCode !== http2.constants.NGHTTP2_NO_ERROR) ans.rstCode = st.rstCode;
      finish();
    });
    st.end(opts.body ?? grpcFrame(new Uint8Array(0)));
  });
}

// ------------------------------------------------------------------ secrets

/** Every secret a test in this suite hands to a process. */
export const SECRETS = new Set<string>([TEST_TOKEN]);

/**
 * Registers, in the calling test file, a final check over every byte of output
 * any process of this test run printed so far. Whichever file runs last covers
 * the whole suite (bun runs the files of one invocation in one process).
 */
export function checkNoSecretsAtEnd(): void {
  afterAll(() => {
    const everything = allOutput.join("");
    for (const s of SECRETS) {
      const at = everything.indexOf(s);
      if (at >= 0) throw new Error(`a secret appears in process output: …${everything.slice(Math.max(0, at - 200), at + s.length + 50)}…`);
    }
    expect(everything.length).toBeGreaterThan(0);
  });
}

// ------------------------------------------------------------------ misc

/** Runs fn over items with at most `limit` at once. */
export async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}
