// The cloudscale.ch API client: the few calls the provider makes, with the
// retry rules that keep them safe. Reads and deletes retry on 429/5xx (the API
// answers 503 during maintenance)/network errors, honouring Retry-After; a
// create is never re-sent blindly (the caller decides after checking the cloud),
// except on 429, which the API answers before doing anything.
import { ofetch, FetchError } from "ofetch";
import { redact } from "./log";
import type { CreateServerRequest, Flavor, Server } from "./types";

export type ErrorKind =
  | "validation" // 400 with field errors: the request is wrong, retrying will not help
  | "quota" // 400/403 quota exceeded
  | "capacity" // the flavor is out of capacity in the zone
  | "auth" // 401/403
  | "not-found" // 404
  | "rate-limit" // 429
  | "server" // 5xx
  | "network" // connection refused/reset, DNS, TLS
  | "timeout" // no answer in time
  | "busy"; // 400 to a DELETE: the server cannot be deleted in its current state (still changing); try later

export class CloudscaleError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    readonly status?: number,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = "CloudscaleError";
  }

  /** True when the request may have taken effect although we saw no success. */
  get ambiguous(): boolean {
    return this.kind === "server" || this.kind === "network" || this.kind === "timeout";
  }

  get retryable(): boolean {
    return this.kind === "rate-limit" || this.ambiguous;
  }
}

export interface ClientOptions {
  url: string;
  token: string;
  /** Per-request timeout in ms. */
  timeoutMs?: number;
  /** Attempts for idempotent calls. */
  attempts?: number;
  /** Upper bound on one backoff sleep in ms. */
  maxBackoffMs?: number;
}

/** The API's error body as one line. Secrets are redacted before any cut, so no piece of one survives. */
function describeBody(data: unknown): string {
  if (data && typeof data === "object") {
    const text = Object.entries(data as Record<string, unknown>)
      .map(([k, v]) => (k === "detail" ? String(v) : `${k}: ${String(v)}`))
      .join("; ");
    return redact(text).slice(0, 500);
  }
  return typeof data === "string" ? redact(data).slice(0, 200) : "";
}

export function classify(e: unknown, what: string): CloudscaleError {
  if (e instanceof CloudscaleError) return e;
  if (e instanceof FetchError) {
    const status = e.response?.status ?? e.status;
    if (status === undefined) {
      const cause = (e.cause as Error | undefined)?.name ?? "";
      const timeout = cause === "TimeoutError" || /timeout|aborted/i.test(e.message);
      return new CloudscaleError(timeout ? "timeout" : "network", `${what}: ${timeout ? "no answer in time" : "cannot reach the API"} (${redact((e.cause as Error | undefined)?.message ?? e.message).slice(0, 300)})`);
    }
    const detail = describeBody(e.data);
    const text = `${what}: HTTP ${status}${detail ? `: ${detail}` : ""}`;
    if (status === 401) return new CloudscaleError("auth", `${what}: the API token was refused (HTTP 401)`, status);
    if (status === 403) return new CloudscaleError(/quota/i.test(detail) ? "quota" : "auth", text, status);
    if (status === 404) return new CloudscaleError("not-found", text, status);
    const retryAfter = e.response?.headers.get("retry-after");
    const ra = retryAfter ? Number(retryAfter) : Number.NaN;
    if (status === 429) return new CloudscaleError("rate-limit", text, status, Number.isFinite(ra) ? ra : undefined);
    if (status >= 500) return new CloudscaleError("server", text, status, status === 503 && Number.isFinite(ra) ? ra : undefined);
    if (/quota/i.test(detail)) return new CloudscaleError("quota", text, status);
    if (/capacity|insufficient|not enough|no more|unavailable in/i.test(detail)) return new CloudscaleError("capacity", text, status);
    return new CloudscaleError("validation", text, status);
  }
  const err = e as Error;
  if (err?.name === "AbortError" || err?.name === "TimeoutError") return new CloudscaleError("timeout", `${what}: ${err.message}`);
  return new CloudscaleError("network", `${what}: ${err?.message ?? String(e)}`);
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(t); reject(signal.reason); }, { once: true });
  });

function parseBody(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export type Cloudscale = ReturnType<typeof createClient>;

export function createClient(opts: ClientOptions) {
  const attempts = opts.attempts ?? 4;
  const maxBackoffMs = opts.maxBackoffMs ?? 5000;
  const api = ofetch.create({
    baseURL: opts.url,
    headers: { Authorization: `Bearer ${opts.token}`, Accept: "application/json" },
    retry: 0,
    timeout: opts.timeoutMs ?? 30_000,
    // JSON.parse, not ofetch's default destr: destr scans the whole text with two regular
    // expressions (prototype-pollution checks JSON.parse does not need) before parsing.
    // Error bodies that are not JSON (a proxy's HTML 502) stay text, as with destr.
    parseResponse: parseBody,
  });

  /** Runs an idempotent call with retries on rate limits and transient failures. */
  async function withRetry<T>(what: string, call: () => Promise<T>, signal?: AbortSignal, retryOn: (e: CloudscaleError) => boolean = (e) => e.retryable): Promise<T> {
    let last: CloudscaleError | undefined;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        return await call();
      } catch (e) {
        last = classify(e, what);
        if (!retryOn(last) || attempt === attempts || signal?.aborted) throw last;
        const backoff = last.retryAfterSeconds !== undefined
          ? Math.min(last.retryAfterSeconds * 1000, maxBackoffMs * 4)
          : Math.min(maxBackoffMs, 200 * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
        await sleep(backoff, signal);
      }
    }
    throw last!;
  }

  return {
    listServers(tags: Record<string, string>, signal?: AbortSignal): Promise<Server[]> {
      const query: Record<string, string> = {};
      for (const [k, v] of Object.entries(tags)) query[`tag:${k}`] = v;
      return withRetry("listing servers", () => api<Server[]>("/servers", { query, signal }), signal);
    },

    /** The server, or null when it does not exist. */
    async getServer(uuid: string, signal?: AbortSignal): Promise<Server | null> {
      try {
        return await withRetry(`reading server ${uuid}`, () => api<Server>(`/servers/${encodeURIComponent(uuid)}`, { signal }), signal);
      } catch (e) {
        if (e instanceof CloudscaleError && e.kind === "not-found") return null;
        throw e;
      }
    },

    /** One create attempt (retried only on 429, which the API answers before acting). */
    createServer(body: CreateServerRequest, signal?: AbortSignal): Promise<Server> {
      return withRetry(`creating server ${body.name}`, () => api<Server>("/servers", { method: "POST", body, signal }), signal, (e) => e.kind === "rate-limit");
    },

    /** Deletes a server; "gone" when it was already deleted. A server still `changing` fails as "busy". */
    async deleteServer(uuid: string, signal?: AbortSignal): Promise<"deleted" | "gone"> {
      try {
        await withRetry(`deleting server ${uuid}`, () => api(`/servers/${encodeURIComponent(uuid)}`, { method: "DELETE", signal }), signal);
        return "deleted";
      } catch (e) {
        // A DELETE whose earlier response was lost answers 404 on the next try: that is success.
        if (e instanceof CloudscaleError && e.kind === "not-found") return "gone";
        // A DELETE has no body to be wrong: a 400 is the API refusing it in the server's
        // current state (it answers so while the server is still being created).
        if (e instanceof CloudscaleError && e.status === 400) throw new CloudscaleError("busy", e.message, 400);
        throw e;
      }
    },

    listFlavors(signal?: AbortSignal): Promise<Flavor[]> {
      return withRetry("listing flavors", () => api<Flavor[]>("/flavors", { signal }), signal);
    },
    listImages(signal?: AbortSignal): Promise<{ slug: string; zones?: { slug: string }[] }[]> {
      return withRetry("listing images", () => api("/images", { signal }), signal);
    },
    listCustomImages(signal?: AbortSignal): Promise<{ uuid: string; slug: string; zones?: { slug: string }[] }[]> {
      return withRetry("listing custom images", () => api("/custom-images", { signal }), signal);
    },
    listRegions(signal?: AbortSignal): Promise<{ slug: string; zones: { slug: string }[] }[]> {
      return withRetry("listing regions", () => api("/regions", { signal }), signal);
    },
    listServerGroups(signal?: AbortSignal): Promise<{ uuid: string; name: string; zone: { slug: string } }[]> {
      return withRetry("listing server groups", () => api("/server-groups", { signal }), signal);
    },
  };
}
