// Where the provider's memory goes, by type: a heap snapshot after the view is built, with no
// servers and with N of ours (default 5,000 in 50 groups, as the benchmark seeds them).
//   bun scripts/heap-by-type.ts [--servers 5000] [--top 25] [--binary dist/autoscaler-cloudscale]
// The simulator runs as the compiled binary (a child process); the provider runs in this process,
// from source (createProvider, start, Refresh), so that the snapshot is of its heap only. Each
// snapshot is taken after a full collection and grouped by node type and constructor name (self
// sizes), and the two are printed side by side with the difference per server.
import { parseArgs } from "node:util";
import { createClient } from "../src/cloudscale";
import { parseConfig } from "../src/config";
import { createProvider } from "../src/provider";

const { values } = parseArgs({
  options: {
    servers: { type: "string", default: "5000" },
    groups: { type: "string", default: "50" },
    top: { type: "string", default: "25" },
    binary: { type: "string", default: "dist/autoscaler-cloudscale" },
  },
});
const servers = Number(values.servers);
const groups = Number(values.groups);
const token = "heap-token";

interface Row {
  count: number;
  bytes: number;
}
type ByType = Map<string, Row>;

/** A V8-format heap snapshot grouped by "type: name" (objects by constructor; strings, arrays, code by type). */
function snapshotByType(): { byType: ByType; total: number } {
  Bun.gc(true);
  Bun.gc(true);
  const snap = JSON.parse(Bun.generateHeapSnapshot("v8")) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const [iType, iName, iSize] = ["type", "name", "self_size"].map((f) => fields.indexOf(f));
  const byType: ByType = new Map();
  let total = 0;
  for (let i = 0; i < snap.nodes.length; i += fields.length) {
    const type = types[snap.nodes[i + iType!]!]!;
    const name = type === "object" || type === "closure" || type === "native" ? snap.strings[snap.nodes[i + iName!]!]! : "";
    const key = name ? `${type}: ${name.slice(0, 60)}` : type;
    const size = snap.nodes[i + iSize!]!;
    const row = byType.get(key) ?? { count: 0, bytes: 0 };
    row.count++;
    row.bytes += size;
    byType.set(key, row);
    total += size;
  }
  return { byType, total };
}

async function startSim(): Promise<{ url: string; stop: () => void }> {
  const proc = Bun.spawn([values.binary!, "sim", "--listen", "127.0.0.1:0", "--boot-seconds", "0"], { stdout: "pipe", stderr: "pipe" });
  const reader = proc.stdout.getReader();
  let text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`simulator exited: ${text}`);
    text += new TextDecoder().decode(value);
    const m = /listening on (http:\/\/\S+)/.exec(text);
    if (m) return { url: m[1]!, stop: () => proc.kill() };
  }
}

async function seed(url: string, n: number): Promise<void> {
  const flavors = ["flex-4-1", "flex-8-2", "flex-16-4", "plus-8-2", "plus-16-4"];
  for (let off = 0; off < n; off += 1000) {
    const batch = [];
    for (let i = off; i < Math.min(n, off + 1000); i++) {
      const g = i % groups;
      const group = `pool-${String(g + 1).padStart(2, "0")}`;
      batch.push({ name: `bench-${group}-${i.toString(36).padStart(8, "0")}`, flavor: flavors[g % 5], image: "debian-13", zone: g % 2 ? "rma1" : "lpg1", status: "running", tags: { "autoscaler-cloudscale-cluster": "bench", "autoscaler-cloudscale-group": group } });
    }
    const res = await fetch(`${url}/_sim/servers`, { method: "POST", body: JSON.stringify({ servers: batch }) });
    if (!res.ok) throw new Error(`seeding: HTTP ${res.status} ${await res.text()}`);
  }
}

function configText(): string {
  const flavors = ["flex-4-1", "flex-8-2", "flex-16-4", "plus-8-2", "plus-16-4"];
  let s = "clusterName: bench\nstartupGrace: 0s\nnodeGroups:\n";
  for (let g = 0; g < groups; g++) {
    const name = `pool-${String(g + 1).padStart(2, "0")}`;
    s += `  - name: ${name}\n    flavor: ${flavors[g % 5]}\n    image: debian-13\n    zone: ${g % 2 ? "rma1" : "lpg1"}\n    min: 0\n    max: 1000\n    labels: {pool: ${name}}\n`;
  }
  return s;
}

async function measure(n: number): Promise<{ byType: ByType; total: number; rss: number }> {
  const sim = await startSim();
  try {
    await seed(sim.url, n);
    const config = parseConfig(configText());
    const provider = createProvider({ config, cloud: createClient({ url: `${sim.url}/v1`, token }) });
    await provider.start();
    for (let i = 0; i < 3; i++) await provider.reconciler.refresh();
    // JavaScriptCore scans the stack conservatively: a stale pointer left by the last Refresh keeps
    // its list text alive until the stack has been reused. Some unrelated work first.
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 20));
      for (let j = 0; j < 1000; j++) JSON.parse(JSON.stringify({ a: [j, j + 1] }));
    }
    const snap = snapshotByType();
    provider.stop();
    return { ...snap, rss: process.memoryUsage().rss };
  } finally {
    sim.stop();
  }
}

const mib = (b: number) => (b / 1048576).toFixed(2);
const empty = await measure(0);
const full = await measure(servers);
const keys = [...new Set([...empty.byType.keys(), ...full.byType.keys()])];
const rows = keys
  .map((k) => ({ k, a: empty.byType.get(k) ?? { count: 0, bytes: 0 }, b: full.byType.get(k) ?? { count: 0, bytes: 0 } }))
  .sort((x, y) => y.b.bytes - y.a.bytes - (x.b.bytes - x.a.bytes));
console.log(`heap (self sizes, after a full collection): ${mib(empty.total)} MiB with no servers, ${mib(full.total)} MiB with ${servers}: +${mib(full.total - empty.total)} MiB, ${((full.total - empty.total) / Math.max(1, servers)).toFixed(0)} bytes per server`);
console.log(`| type | count at 0 | count at ${servers} | bytes at 0 | bytes at ${servers} | difference | per server |`);
console.log("|---|---:|---:|---:|---:|---:|---:|");
for (const r of rows.slice(0, Number(values.top))) {
  const d = r.b.bytes - r.a.bytes;
  console.log(`| ${r.k} | ${r.a.count} | ${r.b.count} | ${mib(r.a.bytes)} MiB | ${mib(r.b.bytes)} MiB | ${d >= 0 ? "+" : ""}${mib(d)} MiB | ${(d / Math.max(1, servers)).toFixed(1)} B |`);
}
