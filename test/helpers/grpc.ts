// The one CloudProvider client of the TypeScript tests, and not ours:
// @grpc/grpc-js with @grpc/proto-loader reading the .proto files, promisified.
import * as grpc from "@grpc/grpc-js";
import * as loader from "@grpc/proto-loader";
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { checkServerIdentity } from "node:tls";
import { join } from "node:path";
import type { Pki } from "./certs";

const PROTO_DIR = join(import.meta.dir, "../../proto");
const definition = loader.loadSync("clusterautoscaler/cloudprovider/v1/externalgrpc/externalgrpc.proto", {
  includeDirs: [PROTO_DIR],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});
const pkg = grpc.loadPackageDefinition(definition) as any;
export const CloudProviderClient = pkg.clusterautoscaler.cloudprovider.v1.externalgrpc.CloudProvider as grpc.ServiceClientConstructor;

export type Call = (method: string, req?: object, opts?: { deadlineMs?: number }) => Promise<any>;

export interface Client {
  call: Call;
  raw: grpc.Client;
  close: () => void;
}

export interface ConnectOptions {
  /** The client certificate to present: ours (default), the other CA's, none, or these files. */
  as?: "client" | "rogue" | "none" | { cert: string; key: string };
  /**
   * The name the server's certificate must carry, as CA takes it from the host of its
   * cloud-config address (default localhost). An IP address is checked against IP SANs.
   */
  serverName?: string;
  /** A connection of its own (grpc-js shares one per target and credentials by default). */
  ownConnection?: boolean;
}

/** A client of the provider at 127.0.0.1:port: plaintext h2c without `pki`, else TLS trusting pki's CA. */
export function connect(port: number, pki?: Pki, opts: ConnectOptions = {}): Client {
  const options: grpc.ChannelOptions = {};
  if (opts.ownConnection) options["grpc.use_local_subchannel_pool"] = 1;
  let creds: grpc.ChannelCredentials;
  if (!pki) creds = grpc.credentials.createInsecure();
  else {
    const as = opts.as ?? "client";
    const pair = as === "none" ? undefined : as === "client" ? { cert: pki.clientCert, key: pki.clientKey } : as === "rogue" ? { cert: pki.rogueCert, key: pki.rogueKey } : as;
    const key = pair ? readFileSync(pair.key) : null;
    const cert = pair ? readFileSync(pair.cert) : null;
    const name = opts.serverName ?? "localhost";
    if (isIP(name)) {
      // An IP address cannot be sent as TLS server name (SNI); Go's client (CA) then checks
      // the certificate's IP SANs, and so does this client.
      creds = grpc.credentials.createSsl(readFileSync(pki.caCert), key, cert, { checkServerIdentity: (_host, peer) => checkServerIdentity(name, peer) });
      options["grpc.ssl_target_name_override"] = "ip-san.invalid";
    } else {
      creds = grpc.credentials.createSsl(readFileSync(pki.caCert), key, cert);
      options["grpc.ssl_target_name_override"] = name;
      options["grpc.default_authority"] = name;
    }
  }
  const raw = new CloudProviderClient(`127.0.0.1:${port}`, creds, options);
  const call: Call = (method, req = {}, o = {}) =>
    new Promise((resolve, reject) => {
      const deadline = new Date(Date.now() + (o.deadlineMs ?? 10_000));
      (raw as any)[method](req, { deadline }, (err: grpc.ServiceError | null, res: unknown) => (err ? reject(err) : resolve(res)));
    });
  return { call, raw, close: () => raw.close() };
}

export { grpc };

/** Expects a gRPC failure with the given status code; returns the error. */
export async function expectCode(p: Promise<unknown>, code: grpc.status): Promise<grpc.ServiceError> {
  try {
    const res = await p;
    throw new Error(`expected gRPC status ${grpc.status[code]}, got success: ${JSON.stringify(res)}`);
  } catch (e) {
    const err = e as grpc.ServiceError;
    if (err.code !== code) throw new Error(`expected gRPC status ${grpc.status[code]}, got ${grpc.status[err.code] ?? err.code}: ${err.message}`);
    return err;
  }
}

/** A grpc-message header as sent (percent-encoded), decoded. */
export function decodeGrpcMessage(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** grpc-js decodes grpc-message with decodeURI, which leaves %3B and friends alone; undo that for assertions. */
export function details(e: { details?: string }): string {
  return decodeGrpcMessage(String(e.details ?? ""));
}

/** CA's calls a test reads answers of, by group. */
export const targetSize = async (c: Client, group: string): Promise<number> => (await c.call("NodeGroupTargetSize", { id: group })).targetSize;

export type Instance = { id: string; status: { instanceState: string; errorInfo: null | { errorCode: string; instanceErrorClass: number; errorMessage: string } } };
export const instances = async (c: Client, group: string): Promise<Instance[]> => (await c.call("NodeGroupNodes", { id: group })).instances ?? [];
