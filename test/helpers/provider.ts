// The provider under test as CA meets it: a configuration, `serve` processes a
// test file starts and stops, and a client connected to each.
import { connect, type Client, type ConnectOptions } from "./grpc";
import type { Pki } from "./certs";
import { startServe, writeConfig, type ServeProc } from "./procs";

/** A minimal Talos worker machine configuration (v1alpha1), as user-data the provider patches per server. */
export const TALOS_WORKER = `version: v1alpha1
machine:
  type: worker
  token: abc.def
cluster:
  controlPlane:
    endpoint: https://cp:6443
`;

/** One node group as a YAML flow mapping: `pool` of flex-4-2 in lpg1 unless told otherwise. */
export function nodeGroup(o: { name?: string; flavor?: string; min?: number; max?: number; extra?: string } = {}): string {
  return `{name: ${o.name ?? "pool"}, flavor: ${o.flavor ?? "flex-4-2"}, image: debian-13, zone: lpg1, min: ${o.min ?? 0}, max: ${o.max ?? 20}${o.extra ? `, ${o.extra}` : ""}}`;
}

/**
 * A configuration: the cluster, settings (startupGrace 0s unless given: a test's first
 * process has no predecessor whose requests could still land), and node groups.
 */
export function providerConfig(cluster: string, settings: Record<string, string | number | undefined> = {}, groups: string[] = [nodeGroup()]): string {
  const lines = [`clusterName: ${cluster}`];
  for (const [k, v] of Object.entries({ startupGrace: "0s", ...settings })) if (v !== undefined) lines.push(`${k}: ${v}`);
  lines.push("nodeGroups:", ...groups.map((g) => `  - ${g}`));
  return `${lines.join("\n")}\n`;
}

export interface Served {
  s: ServeProc;
  c: Client;
  /** GET /readyz of the health listener (only with `health`). */
  ready: () => Promise<{ status: number; text: string }>;
  healthPort?: number;
}

/** The `serve` processes of one test file and their clients, stopped together by stopAll(). */
export function providers() {
  const procs: ServeProc[] = [];
  const clients: Client[] = [];
  return {
    async start(o: { apiUrl: string; config: string; pki?: Pki; health?: boolean; extra?: string[]; env?: Record<string, string>; client?: ConnectOptions }): Promise<Served> {
      const extra = [...(o.extra ?? []), ...(o.health ? ["--health-listen", "127.0.0.1:0"] : [])];
      const tls = o.pki ? { cert: o.pki.serverCert, key: o.pki.serverKey, clientCa: o.pki.caCert } : undefined;
      const s = await startServe({ configPath: writeConfig(o.config), apiUrl: o.apiUrl, tls, extra, env: o.env });
      procs.push(s);
      const c = connect(s.port, o.pki, o.client);
      clients.push(c);
      const healthPort = o.health ? Number(/health\W+127\.0\.0\.1:(\d+)/.exec(s.output())?.[1]) : undefined;
      const ready = async () => {
        const r = await fetch(`http://127.0.0.1:${healthPort}/readyz`);
        return { status: r.status, text: await r.text() };
      };
      return { s, c, ready, healthPort };
    },
    /** A client of one more connection to `s`, closed by stopAll(). */
    connect(port: number, pki?: Pki, opts?: ConnectOptions): Client {
      const c = connect(port, pki, opts);
      clients.push(c);
      return c;
    },
    /** A process started elsewhere, stopped by stopAll(). */
    track(s: ServeProc): ServeProc {
      procs.push(s);
      return s;
    },
    forget(s: ServeProc): void {
      const i = procs.indexOf(s);
      if (i >= 0) procs.splice(i, 1);
    },
    async stopAll(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
      for (const c of clients.splice(0)) c.close();
      for (const s of procs.splice(0)) await s.stop(signal);
    },
  };
}
