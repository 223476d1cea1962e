// Starts the compiled binary (sim and serve) as real processes and waits for
// their ready lines; the simulator's control API; waiting for a condition.
// Everything listens on 127.0.0.1 with ports the OS picks.
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { tmpdir } from "node:os";
import type { Subprocess } from "bun";
import { CLUSTER_TAG, GROUP_TAG } from "../../src/types";

export const BIN = resolve(process.env.AUTOSCALER_CLOUDSCALE_BIN ?? join(import.meta.dir, "../../dist/autoscaler-cloudscale"));

export function requireBinary() {
  if (!existsSync(BIN)) throw new Error(`${BIN} does not exist: run 'bun run build' first (the tests drive the compiled binary)`);
}

export interface Proc {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  output: () => string;
  stop: (signal?: NodeJS.Signals) => Promise<number>;
}

/** All output of every process the tests started (the secrets test reads it). */
export const allOutput: string[] = [];
// Also appended to one file, so the test script can check every suite's output for secrets.
const PROC_LOG = process.env.TEST_PROC_LOG ?? join(import.meta.dir, "../../.cache/test-logs/processes.log");
mkdirSync(dirname(PROC_LOG), { recursive: true });
export function record(text: string) {
  allOutput.push(text);
  appendFileSync(PROC_LOG, text);
}

async function collect(stream: ReadableStream<Uint8Array>, sink: string[], onLine: (line: string) => void) {
  const decoder = new TextDecoder();
  let buf = "";
  for await (const chunk of stream) {
    const text = decoder.decode(chunk, { stream: true });
    sink.push(text);
    record(text);
    buf += text;
    let i: number;
    while ((i = buf.indexOf("\n")) >= 0) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  }
}

export async function spawnUntil(args: string[], ready: RegExp, env: Record<string, string> = {}, timeoutMs = 15_000, bin = BIN): Promise<Proc & { match: RegExpMatchArray }> {
  if (bin === BIN) requireBinary();
  const proc = Bun.spawn([bin, ...args], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp", ...env },
  });
  const sink: string[] = [];
  let resolveMatch!: (m: RegExpMatchArray) => void;
  const matched = new Promise<RegExpMatchArray>((r) => (resolveMatch = r));
  const onLine = (line: string) => {
    const m = line.match(ready);
    if (m) resolveMatch(m);
  };
  // A stream that errors ends its collection: the exit code and the sink tell the test what happened.
  collect(proc.stdout, sink, onLine).catch(() => {});
  collect(proc.stderr, sink, onLine).catch(() => {});
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${args[0]} did not become ready in ${timeoutMs} ms:\n${sink.join("")}`)), timeoutMs));
  const exited = proc.exited.then((code) => {
    throw new Error(`${args[0]} exited with ${code} before it was ready:\n${sink.join("")}`);
  });
  const match = await Promise.race([matched, timeout, exited]);
  return {
    proc,
    match,
    output: () => sink.join(""),
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      if (proc.exitCode === null) proc.kill(signal);
      const t = setTimeout(() => proc.kill("SIGKILL"), 10_000);
      const code = await proc.exited;
      clearTimeout(t);
      return code;
    },
  };
}

export interface SimServer {
  uuid: string;
  name: string;
  status: string;
  tags: Record<string, string>;
  user_data?: string | null;
  flavor: { slug: string };
  zone: { slug: string };
  created_at?: string;
}

/** The simulator's control API (see src/sim/control.ts), and the servers of a cluster. */
export function simApi(origin: string) {
  const control = async (path: string, body?: unknown, method = body === undefined ? "GET" : "POST") => {
    const res = await fetch(`${origin}${path}`, { method, body: body === undefined ? undefined : JSON.stringify(body), headers: { "content-type": "application/json" } });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${text}`);
    return text ? JSON.parse(text) : undefined;
  };
  return {
    control,
    state: async (): Promise<{ servers: SimServer[]; counters?: Record<string, number>; [k: string]: unknown }> => control("/_sim/state"),
    faults: (body: object) => control("/_sim/faults", body),
    resetFaults: () => control("/_sim/reset-faults", {}),
    reset: () => control("/_sim/reset", {}),
    counters: async (): Promise<Record<string, number>> => control("/_sim/counters"),
    resetCounters: () => control("/_sim/counters/reset", {}),
    servers: async (filter = ""): Promise<SimServer[]> => control(`/_sim/servers${filter}`),
    /** Servers carrying the cluster's tag (the filter the provider lists with), of one group if given. */
    ours: async (cluster: string, group?: string): Promise<SimServer[]> =>
      ((await control(`/_sim/servers?tag:${CLUSTER_TAG}=${encodeURIComponent(cluster)}`)) as SimServer[]).filter((s) => !group || s.tags[GROUP_TAG] === group),
    seed: async (servers: object | object[]): Promise<string[]> => ((await control("/_sim/servers", servers)) as { uuids: string[] }).uuids,
    /** Requests on their way through the simulator, and those a "hold" fault holds. */
    held: async (): Promise<{ inFlight: number; held: { id: number; request: string; rule: string; committed: boolean; heldMs: number }[] }> => control("/_sim/held"),
    /** Releases held requests, oldest first (all, or `count` of them, of one "<METHOD> <pattern>"). */
    release: async (body: { count?: number; request?: string } = {}): Promise<number> => ((await control("/_sim/release", body)) as { released: number }).released,
    /** How often each fault rule fired, in the order they were set. */
    fired: async (): Promise<number[]> => ((await control("/_sim/faults")) as { rules: { fired: number }[] }).rules.map((r) => r.fired),
    /** Deletes a server behind the provider's back. */
    vanish: (uuid: string) => control(`/_sim/servers/${uuid}`, undefined, "DELETE"),
  };
}
export type SimApi = ReturnType<typeof simApi>;

export interface SimProc extends Proc, SimApi {
  origin: string;
  apiUrl: string;
}

/** The simulator as a process of the binary (`bin`: another build of it, e.g. the packaging proofs' own). */
export async function startSim(extra: string[] = [], opts: { bin?: string } = {}): Promise<SimProc> {
  const p = await spawnUntil(["sim", "--listen", "127.0.0.1:0", ...extra], /sim: listening on (http:\/\/[^\s]+)/, {}, 15_000, opts.bin);
  const origin = p.match[1]!;
  return { ...p, ...simApi(origin), origin, apiUrl: `${origin}/v1` };
}

export interface ServeProc extends Proc {
  port: number;
  configPath: string;
}

export function writeConfig(text: string, dir = mkdtempSync(join(tmpdir(), "cfg-"))): string {
  const path = join(dir, "config.yaml");
  writeFileSync(path, text);
  return path;
}

export const TEST_TOKEN = "test-token-7f3a9c2e51b84d06";

/**
 * `serve` as a process: TLS with `tls`, else --insecure-plaintext (unless `extra` has TLS
 * flags); --log-level debug unless `extra` names a level. Its ready line is matched in
 * text and in JSON logs.
 */
export async function startServe(opts: { configPath: string; apiUrl: string; tls?: { cert: string; key: string; clientCa: string }; extra?: string[]; env?: Record<string, string> }): Promise<ServeProc> {
  const extra = opts.extra ?? [];
  const args = ["serve", "--config", opts.configPath, "--listen", "127.0.0.1:0"];
  if (!extra.includes("--log-level")) args.push("--log-level", "debug");
  if (opts.tls) args.push("--tls-cert", opts.tls.cert, "--tls-key", opts.tls.key, "--tls-client-ca", opts.tls.clientCa);
  else if (!extra.some((a) => a.startsWith("--tls-"))) args.push("--insecure-plaintext");
  args.push(...extra);
  const p = await spawnUntil(args, /serving gRPC.*(?:listen=|"listen":")127\.0\.0\.1:(\d+)/, { CLOUDSCALE_API_TOKEN: TEST_TOKEN, CLOUDSCALE_API_URL: opts.apiUrl, ...opts.env });
  return { ...p, port: Number(p.match[1]), configPath: opts.configPath };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until fn() is truthy (errors count as not yet), at most timeoutMs; returns the value or throws naming `what`. */
export async function until<T>(what: string, fn: () => Promise<T | undefined | false | null>, timeoutMs = 20_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (let i = 0; i < 100_000; i++) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) break;
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
}

/** Waits until the simulator holds `n` requests (of one "<METHOD> <pattern>" if given); returns them. */
export async function untilHeld(api: SimApi, n: number, request?: string, timeoutMs = 10_000) {
  return until(`${n} held request(s)${request ? ` ${request}` : ""}`, async () => {
    const h = (await api.held()).held.filter((x) => request === undefined || x.request === request);
    return h.length === n && h;
  }, timeoutMs, 10);
}

/** Runs the binary to its end (without blocking this process: the simulator may be answering it); its output is recorded. */
export async function runBin(args: string[], env: Record<string, string> = {}, cwd?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  requireBinary();
  const proc = Bun.spawn([BIN, ...args], { cwd, stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp", ...env } });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  record(stdout + stderr);
  return { code, stdout, stderr };
}

/** A loopback port nothing listens on (it was free a moment ago). */
export function closedPort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}
