// The cloudscale.ch API client: the few calls the provider makes, with the
// retry rules that keep them safe. Reads and deletes retry on 429/5xx (the API
// answers 503 during maintenance)/network errors, honouring Retry-After; a
// create is never re-sent blindly (the caller decides after checking the cloud),
// except on 429, which the API answers before doing anything. Every successful
// answer is parsed against its schema (api-schema.ts) before it is believed.
import { createFetchError, ofetch, FetchError } from "ofetch";
import { sleep } from "./clock";
import {
  CustomImageListAnswer,
  EmptyAnswer,
  FlavorListAnswer,
  ImageListAnswer,
  ListedServer,
  parseAnswer,
  RegionListAnswer,
  ServerAnswer,
  ServerGroupListAnswer,
  ServerListAnswer,
  type AnswerSchema,
} from "./api-schema";
import { readList } from "./list-stream";
import { redact } from "./log";
import type { CreateServerRequest, Flavor, Server } from "./types";

export type HttpMethod = "GET" | "POST" | "PATCH" | "DELETE";

/** What the client reports of each attempt (the composition root records it: metrics.ts apiMetrics). */
export interface ApiRecorder {
  request(method: HttpMethod, endpoint: string, statusClass: string, seconds: number): void;
  retry(method: HttpMethod, endpoint: string, reason: string): void;
}

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
  | "malformed" // a 2xx whose body is not what the API sends (an HTML page, a wrong shape): it may have taken effect
  | "busy"; // 400 to a DELETE: the server cannot be deleted in its current state (still changing); try later

export class CloudscaleError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    readonly status?: number,
    readonly retryAfterSeconds?: number,
    /** The API's error body as it came (parsed JSON, or text), for `check` to compare with what we expect. */
    readonly body?: unknown,
  ) {
    super(message);
    this.name = "CloudscaleError";
  }

  /** True when the request may have taken effect although we saw no success. */
  get ambiguous(): boolean {
    return this.kind === "server" || this.kind === "network" || this.kind === "timeout" || this.kind === "malformed";
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
  /** Recording hook for every attempt (unset: nothing is recorded). */
  record?: ApiRecorder;
}

/** The API's error body as one line. Secrets are redacted before any cut, so no piece of one survives. */
function describeBody(data: unknown): string {
  if (data && typeof data === "object") {
    const text = Object.entries(data as Record<string, unknown>)
      .map(([k, v]) => (k === "detail" ? String(v) : `${k}: ${String(v)}`))
      .join("; ");
    return redact(text).slice(0, 500);
  }
  // A proxy's HTML page on one line: messages end up in logs and in CA's events.
  return typeof data === "string" ? redact(data).replace(/\s+/g, " ").trim().slice(0, 200) : "";
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
    const answer = (kind: ErrorKind, message = text, retryAfterSeconds?: number) => new CloudscaleError(kind, message, status, retryAfterSeconds, e.data);
    if (status === 401) return answer("auth", `${what}: the API token was refused (HTTP 401)`);
    if (status === 403) return answer(/quota/i.test(detail) ? "quota" : "auth");
    if (status === 404) return answer("not-found");
    const retryAfter = e.response?.headers.get("retry-after");
    const ra = retryAfter ? Number(retryAfter) : Number.NaN;
    if (status === 429) return answer("rate-limit", text, Number.isFinite(ra) ? ra : undefined);
    if (status >= 500) return answer("server", text, status === 503 && Number.isFinite(ra) ? ra : undefined);
    if (/quota/i.test(detail)) return answer("quota");
    if (/capacity|insufficient|not enough|no more|unavailable in/i.test(detail)) return answer("capacity");
    return answer("validation");
  }
  const err = e as Error;
  if (err?.name === "AbortError" || err?.name === "TimeoutError") return new CloudscaleError("timeout", `${what}: ${err.message}`);
  return new CloudscaleError("network", `${what}: ${err?.message ?? String(e)}`);
}

function parseBody(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export type Cloudscale = ReturnType<typeof createClient>;

/** An API call as the metrics name it (the endpoint is a template, never a UUID), and what its
 *  successful answer must be. */
interface Route<T> {
  method: HttpMethod;
  endpoint: string;
  answer: AnswerSchema<T>;
  /** The answer in words, for the error when it is something else. */
  expected: string;
  /** A list read element by element as it arrives (list-stream.ts): the schema of one element. */
  element?: AnswerSchema<unknown>;
}
const LIST_SERVERS: Route<Server[]> = { method: "GET", endpoint: "/v1/servers", answer: ServerListAnswer, expected: "a list of servers", element: ListedServer };
const CREATE_SERVER: Route<Server> = { method: "POST", endpoint: "/v1/servers", answer: ServerAnswer, expected: "a server" };
const GET_SERVER: Route<Server> = { method: "GET", endpoint: "/v1/servers/{uuid}", answer: ServerAnswer, expected: "a server" };
const DELETE_SERVER: Route<unknown> = { method: "DELETE", endpoint: "/v1/servers/{uuid}", answer: EmptyAnswer, expected: "no content" };
const PATCH_SERVER: Route<unknown> = { method: "PATCH", endpoint: "/v1/servers/{uuid}", answer: EmptyAnswer, expected: "no content" };
const FLAVORS: Route<Flavor[]> = { method: "GET", endpoint: "/v1/flavors", answer: FlavorListAnswer, expected: "a list of flavors" };
const IMAGES: Route<ImageRef[]> = { method: "GET", endpoint: "/v1/images", answer: ImageListAnswer, expected: "a list of images" };
const CUSTOM_IMAGES: Route<CustomImageRef[]> = { method: "GET", endpoint: "/v1/custom-images", answer: CustomImageListAnswer, expected: "a list of custom images" };
const REGIONS: Route<RegionRef[]> = { method: "GET", endpoint: "/v1/regions", answer: RegionListAnswer, expected: "a list of regions" };
const SERVER_GROUPS: Route<ServerGroupRef[]> = { method: "GET", endpoint: "/v1/server-groups", answer: ServerGroupListAnswer, expected: "a list of server groups" };

type ImageRef = { slug: string; zones?: { slug: string }[] };
type CustomImageRef = { uuid: string; slug: string; zones?: { slug: string }[]; user_data_handling?: string };
type RegionRef = { slug: string; zones: { slug: string }[] };
type ServerGroupRef = { uuid: string; name: string; zone: { slug: string }; servers?: { uuid: string }[] };

interface RequestOptions {
  query?: Record<string, string>;
  body?: CreateServerRequest | { tags: Record<string, string> };
  signal?: AbortSignal;
}

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

  /** One attempt, counted and timed by method, endpoint template and status class; its answer parsed. */
  async function request<T>(what: string, route: Route<T>, path: string, options: RequestOptions): Promise<T> {
    const started = performance.now();
    let outcome = "2xx";
    try {
      if (route.element) return await readListAnswer(what, route, path, options);
      const res = await api.raw(path, { ...options, method: route.method });
      const parsed = parseAnswer(route.answer, res._data, route.expected);
      if (parsed.ok) return parsed.value;
      throw new CloudscaleError("malformed", `${what}: the HTTP ${res.status} answer is not the API's: ${redact(parsed.message)}`, res.status, undefined, res._data);
    } catch (e) {
      const err = classify(e, "");
      outcome = err.status !== undefined ? `${Math.floor(err.status / 100)}xx` : err.kind; // "network" or "timeout": no answer
      throw e;
    } finally {
      opts.record?.request(route.method, route.endpoint, outcome, (performance.now() - started) / 1000);
    }
  }

  /**
   * A list answer read from the body as it arrives (list-stream.ts), never as one text. An error
   * status is read whole and thrown as ofetch throws it, so that it is classified alike.
   */
  async function readListAnswer<T>(what: string, route: Route<T>, path: string, options: RequestOptions): Promise<T> {
    const res = await api.raw(path, { ...options, method: route.method, parseResponse: undefined, responseType: "stream", ignoreResponseError: true });
    if (res.status >= 400) {
      (res as { _data?: unknown })._data = parseBody(await res.text());
      throw createFetchError({ request: path, options: { ...options, method: route.method } as never, response: res });
    }
    const parsed = await readList(res.body, route.element!, route.expected, (text) => {
      const data = parseBody(text);
      const whole = parseAnswer(route.answer, data, route.expected);
      return whole.ok ? { ok: true, value: whole.value as unknown[] } : { ok: false, message: whole.message, data };
    });
    if (parsed.ok) return parsed.value as T;
    throw new CloudscaleError("malformed", `${what}: the HTTP ${res.status} answer is not the API's: ${redact(parsed.message)}`, res.status, undefined, parsed.data);
  }

  /** Runs a call with retries on rate limits and transient failures (by default; creates pass `retryOn`). */
  async function withRetry<T>(what: string, route: Route<T>, path: string, options: RequestOptions, retryOn: (e: CloudscaleError) => boolean = (e) => e.retryable): Promise<T> {
    const signal = options.signal;
    let last: CloudscaleError | undefined;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        return await request(what, route, path, options);
      } catch (e) {
        last = classify(e, what);
        if (!retryOn(last) || attempt === attempts || signal?.aborted) throw last;
        const backoff = last.retryAfterSeconds !== undefined
          ? Math.min(last.retryAfterSeconds * 1000, maxBackoffMs * 4)
          : Math.min(maxBackoffMs, 200 * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
        opts.record?.retry(route.method, route.endpoint, last.kind);
        await sleep(backoff, signal);
        if (signal?.aborted) throw last;
      }
    }
    throw last!;
  }

  return {
    async listServers(tags: Record<string, string>, signal?: AbortSignal): Promise<Server[]> {
      const query: Record<string, string> = {};
      for (const [k, v] of Object.entries(tags)) query[`tag:${k}`] = v;
      return withRetry("listing servers", LIST_SERVERS, "/servers", { query, signal });
    },

    /** The server, or null when it does not exist. */
    async getServer(uuid: string, signal?: AbortSignal): Promise<Server | null> {
      try {
        return await withRetry(`reading server ${uuid}`, GET_SERVER, `/servers/${encodeURIComponent(uuid)}`, { signal });
      } catch (e) {
        if (e instanceof CloudscaleError && e.kind === "not-found") return null;
        throw e;
      }
    },

    /** One create attempt (retried only on 429, which the API answers before acting). */
    createServer(body: CreateServerRequest, signal?: AbortSignal): Promise<Server> {
      return withRetry(`creating server ${body.name}`, CREATE_SERVER, "/servers", { body, signal }, (e) => e.kind === "rate-limit");
    },

    /**
     * Replaces a server's tags (PATCH with the whole map: the API sets exactly the tags it is
     * given, one attribute per request). Idempotent, so retried like a read.
     */
    async updateServerTags(uuid: string, tags: Record<string, string>, signal?: AbortSignal): Promise<void> {
      await withRetry(`changing the tags of server ${uuid}`, PATCH_SERVER, `/servers/${encodeURIComponent(uuid)}`, { body: { tags }, signal });
    },

    /** Deletes a server; "gone" when it was already deleted. A server still `changing` fails as "busy". */
    async deleteServer(uuid: string, signal?: AbortSignal): Promise<"deleted" | "gone"> {
      try {
        await withRetry(`deleting server ${uuid}`, DELETE_SERVER, `/servers/${encodeURIComponent(uuid)}`, { signal });
        return "deleted";
      } catch (e) {
        // A DELETE whose earlier response was lost answers 404 on the next try: that is success.
        if (e instanceof CloudscaleError && e.kind === "not-found") return "gone";
        // A DELETE has no body to be wrong: a 400 is the API refusing it in the server's
        // current state (it answers so while the server is still being created).
        if (e instanceof CloudscaleError && e.status === 400) throw new CloudscaleError("busy", e.message, 400, undefined, e.body);
        throw e;
      }
    },

    listFlavors(signal?: AbortSignal): Promise<Flavor[]> {
      return withRetry("listing flavors", FLAVORS, "/flavors", { signal });
    },
    listImages(signal?: AbortSignal): Promise<ImageRef[]> {
      return withRetry("listing images", IMAGES, "/images", { signal });
    },
    listCustomImages(signal?: AbortSignal): Promise<CustomImageRef[]> {
      return withRetry("listing custom images", CUSTOM_IMAGES, "/custom-images", { signal });
    },
    listRegions(signal?: AbortSignal): Promise<RegionRef[]> {
      return withRetry("listing regions", REGIONS, "/regions", { signal });
    },
    listServerGroups(signal?: AbortSignal): Promise<ServerGroupRef[]> {
      return withRetry("listing server groups", SERVER_GROUPS, "/server-groups", { signal });
    },
  };
}
