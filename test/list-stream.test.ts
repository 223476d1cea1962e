// A list read element by element as its bytes arrive (src/list-stream.ts) must give exactly what
// parsing the whole text gives (src/api-schema.ts parseAnswer): the same servers, the same error
// messages, whatever the chunks are cut like (at every byte, inside strings, escapes and
// multi-byte characters).
import { describe, expect, test } from "bun:test";
import { ListedServer, parseAnswer, ServerListAnswer } from "../src/api-schema";
import { ArraySplitter, readList } from "../src/list-stream";

function server(i: number, extra: Record<string, unknown> = {}) {
  return {
    href: `https://api.example/v1/servers/${i}`,
    uuid: `0000000${i % 10}-aaaa-4bbb-8ccc-${String(i).padStart(12, "0")}`,
    name: `c-pool-${i} "quoted" ]}{[ \\ ünï 🙂`,
    status: "running",
    flavor: { slug: "flex-8-2", name: "Flex-8-2", vcpu_count: 2, memory_gb: 8 },
    image: { slug: "debian-13", operating_system: "Debian" },
    zone: { slug: "lpg1" },
    volumes: [{ type: "ssd", size_gb: 10, uuid: "x" }],
    interfaces: [{ type: "public", addresses: [{ address: "1.2.3.4", version: 4 }] }],
    tags: { "autoscaler-cloudscale-cluster": "c", "autoscaler-cloudscale-group": `pool-${i % 3}` },
    created_at: "2026-01-01T00:00:00Z",
    ...extra,
  };
}

function wholeText(text: string) {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    data = text;
  }
  return parseAnswer(ServerListAnswer, data, "a list of servers");
}

/** The body cut into chunks of the given sizes, cycling. */
function body(text: string, sizes: number[]): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  let at = 0;
  let k = 0;
  return new ReadableStream({
    pull(c) {
      if (at >= bytes.length) return c.close();
      const n = sizes[k++ % sizes.length]!;
      c.enqueue(bytes.slice(at, at + n));
      at += n;
    },
  });
}

async function streamed(text: string, sizes: number[]) {
  const r = await readList(body(text, sizes), ListedServer, "a list of servers", (t) => {
    const w = wholeText(t);
    return w.ok ? { ok: true, value: w.value } : { ok: false, message: w.message, data: undefined };
  });
  return r.ok ? { ok: true, value: r.value } : { ok: false, message: r.message };
}

function expected(text: string) {
  const w = wholeText(text);
  return w.ok ? { ok: true, value: w.value } : { ok: false, message: w.message };
}

const cases: [string, string][] = [
  ["three servers", JSON.stringify([server(1), server(2), server(3)])],
  ["pretty-printed, with white space everywhere", ` \n ${JSON.stringify([server(1), server(2)], null, 2)} \n`],
  ["empty list", "[]"],
  ["empty list with spaces", " [ ] "],
  ["wrong field types in two elements", JSON.stringify([server(1), { uuid: 5, name: "x", status: "running", tags: { a: 1 } }, server(3, { flavor: "flex" })])],
  ["a scalar element", JSON.stringify([server(1), 7])],
  ["a nested list element", JSON.stringify([server(1), [server(2)]])],
  ["an HTML page", "<!DOCTYPE html><html><body>maintenance</body></html>"],
  ["a JSON object", JSON.stringify({ detail: "ok" })],
  ["a JSON string", JSON.stringify("servers")],
  ["nothing", ""],
  ["cut off midway", JSON.stringify([server(1), server(2)]).slice(0, 700)],
  ["cut off after an element", `${JSON.stringify([server(1)]).slice(0, -1)},`],
  ["garbage after the list", `${JSON.stringify([server(1)])} trailing`],
  ["a missing comma", `[${JSON.stringify(server(1))} ${JSON.stringify(server(2))}]`],
  ["a leading comma", `[,${JSON.stringify(server(1))}]`],
  ["a trailing comma", `[${JSON.stringify(server(1))},]`],
  ["an unbalanced brace", `[${JSON.stringify(server(1))}}]`],
];

describe("a list read element by element", () => {
  for (const [name, text] of cases) {
    test(`${name}: the same answer as the whole text, cut at every size`, async () => {
      const want = expected(text);
      for (const sizes of [[1 << 20], [1], [2], [3], [7], [64], [1, 5, 2, 11], [333]]) {
        expect({ sizes, got: await streamed(text, sizes) }).toEqual({ sizes, got: want });
      }
    });
  }

  test("5,000 servers arrive as the schema keeps them, and only that", async () => {
    const list = Array.from({ length: 5000 }, (_, i) => server(i));
    const text = JSON.stringify(list);
    const got = await streamed(text, [65536]);
    expect(got).toEqual(expected(text));
    expect(got.ok && Object.keys(got.value![0] as object).sort()).toEqual(["created_at", "flavor", "name", "status", "tags", "uuid", "zone"]);
  });

  test("the splitter hands over each element's bytes, strings and nesting followed", () => {
    const text = '[{"a":"],}\\"{["}, [1,[2]] ,"x\\\\", 3 ,null]';
    const bytes = new TextEncoder().encode(text);
    for (const size of [1, 2, 5, bytes.length]) {
      const parts: unknown[] = [];
      const s = new ArraySplitter();
      for (let at = 0; at < bytes.length; at += size) {
        s.push(bytes.slice(at, at + size), (b, several) => {
          const t = new TextDecoder().decode(b);
          parts.push(...(several ? (JSON.parse(`[${t}]`) as unknown[]) : [JSON.parse(t)]));
        });
      }
      expect(s.complete).toBe(true);
      expect({ size, parts }).toEqual({ size, parts: JSON.parse(text) });
    }
  });
});
