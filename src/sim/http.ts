// HTTP pieces the simulator's handlers share: JSON, HTML and empty answers, the error pages an injected
// fault answers with, reading a JSON body and tag filters from a query string. (Waits use src/clock.ts's
// sleep, cut short by a stopping server or a departing client.)

import type { FaultRule } from "./faults.ts";
import type { Result, TagFilter } from "./records.ts";

const JSON_HEADERS = { "Content-Type": "application/json" };

export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { ...JSON_HEADERS, ...headers } });
}

export function rawJson(status: number, text: string): Response {
  return new Response(text, { status, headers: JSON_HEADERS });
}

export const noContent = (): Response => new Response(null, { status: 204 });

export function html(status: number, text: string): Response {
  return new Response(text, { status, headers: { "Content-Type": "text/html" } });
}

export const NGINX = (code: number, reason: string) =>
  `<html>\r\n<head><title>${code} ${reason}</title></head>\r\n<body>\r\n<center><h1>${code} ${reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n`;

export function fromResult<T>(r: Result<T>, ok: (v: T) => Response): Response {
  return r.ok ? ok(r.value) : json(r.status, r.body);
}

/** A response that makes Bun close the connection before any status line is sent. */
export function dropConnection(): Response {
  return new Response(
    new ReadableStream({
      pull(c) {
        c.error(); // an undefined reason: Bun aborts the socket without logging
      },
    }),
    { status: 200 },
  );
}

/** What a captive portal or a misrouted balancer answers in place of the API: 200, and a page. */
const CAPTIVE_PORTAL =
  "<!DOCTYPE html>\n<html>\n<head><title>Sign in to the network</title></head>\n<body>\n<h1>Welcome</h1>\n<p>Please accept the terms of use to continue.</p>\n</body>\n</html>\n";

/** The answer of a rule that replaces the real one. */
export function faultResponse(rule: FaultRule): Response {
  const status = rule.status ?? (rule.action === "lost-response" ? 502 : 500);
  if (rule.body) {
    const h: Record<string, string> = {};
    if (status === 429 || (status === 503 && rule.retryAfterSeconds !== undefined)) h["Retry-After"] = String(rule.retryAfterSeconds ?? 1);
    return json(status, rule.body, h);
  }
  switch (status) {
    case 429: {
      const ra = rule.retryAfterSeconds ?? 1;
      return json(429, { detail: `Request was throttled. Expected available in ${ra} seconds.` }, { "Retry-After": String(ra) });
    }
    case 503: {
      const h: Record<string, string> = {};
      if (rule.retryAfterSeconds !== undefined) h["Retry-After"] = String(rule.retryAfterSeconds);
      return json(503, { detail: "Service temporarily unavailable, try again later." }, h);
    }
    case 200:
      return html(200, CAPTIVE_PORTAL);
    case 500:
      return html(500, "<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Server Error (500)</title>\n</head>\n<body>\n  <h1>Server Error (500)</h1><p></p>\n</body>\n</html>\n");
    case 502:
      return html(502, NGINX(502, "Bad Gateway"));
    case 504:
      return html(504, NGINX(504, "Gateway Time-out"));
    case 404:
      return json(404, { detail: "Not found." });
    case 409:
      return json(409, { detail: "Conflict." });
    default:
      return json(status, { detail: "Bad request." });
  }
}

export type BodyResult = { ok: true; value: unknown } | { ok: false; response: Response };

export async function readJson(req: Request): Promise<BodyResult> {
  const ct = req.headers.get("content-type");
  const text = await req.text();
  if (text.trim() === "") return { ok: true, value: {} };
  if (ct && !/^application\/(.+\+)?json\b/i.test(ct)) {
    return { ok: false, response: json(415, { detail: `Unsupported media type "${ct}" in request.` }) };
  }
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (e) {
    return { ok: false, response: json(400, { detail: `JSON parse error - ${(e as Error).message}` }) };
  }
}

/** `?tag:<k>=<v>&tag:<k>` → filters; null on a malformed %-escape. */
export function parseTagFilters(search: string): TagFilter[] | null {
  const out: TagFilter[] = [];
  if (search.length <= 1) return out;
  try {
    for (const part of search.slice(1).split("&")) {
      if (!part) continue;
      const eq = part.indexOf("=");
      const dec = (s: string) => decodeURIComponent(s.replace(/\+/g, " "));
      const key = dec(eq < 0 ? part : part.slice(0, eq));
      if (!key.startsWith("tag:")) continue;
      out.push({ key: key.slice(4), value: eq < 0 ? undefined : dec(part.slice(eq + 1)) });
    }
  } catch {
    return null;
  }
  return out;
}

export function tagsMatch(tags: Record<string, string>, f: TagFilter[]): boolean {
  return f.every((t) => tags[t.key] !== undefined && (t.value === undefined || tags[t.key] === t.value));
}
