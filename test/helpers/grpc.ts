// A CloudProvider client that is not ours: @grpc/grpc-js with
// @grpc/proto-loader reading the .proto files, promisified.
import * as grpc from "@grpc/grpc-js";
import * as loader from "@grpc/proto-loader";
import { readFileSync } from "node:fs";
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

/** Node messages for decoding nodeBytes with grpc's own stack (protobufjs via proto-loader). */
const k8sDefinition = loader.loadSync("k8s.io/api/core/v1/generated.proto", { includeDirs: [PROTO_DIR], keepCase: true, longs: String, defaults: true });
export const k8sTypes = k8sDefinition;

export type Call = (method: string, req?: object, opts?: { deadlineMs?: number }) => Promise<any>;

export interface Client {
  call: Call;
  raw: grpc.Client;
  close: () => void;
}

export function connect(port: number, pki?: Pki, which: "client" | "rogue" | "none" = "client"): Client {
  let creds: grpc.ChannelCredentials;
  if (!pki) creds = grpc.credentials.createInsecure();
  else {
    const ca = readFileSync(pki.caCert);
    creds =
      which === "none"
        ? grpc.credentials.createSsl(ca)
        : grpc.credentials.createSsl(ca, readFileSync(which === "client" ? pki.clientKey : pki.rogueKey), readFileSync(which === "client" ? pki.clientCert : pki.rogueCert));
  }
  const raw = new CloudProviderClient(`127.0.0.1:${port}`, creds, { "grpc.ssl_target_name_override": "localhost", "grpc.default_authority": "localhost" });
  const call: Call = (method, req = {}, opts = {}) =>
    new Promise((resolve, reject) => {
      const deadline = new Date(Date.now() + (opts.deadlineMs ?? 10_000));
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
