// A strict reader of the Prometheus text exposition format (version 0.0.4), for
// tests that scrape /metrics: every line must parse, every sample must belong
// to a family declared by # TYPE, histogram buckets must be cumulative and end
// in +Inf = _count, and no series may appear twice.

export type MetricType = "counter" | "gauge" | "histogram" | "summary" | "untyped";

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: MetricType;
  help?: string;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function parseValue(text: string, where: string): number {
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  if (text === "NaN") return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`${where}: "${text}" is not a sample value`);
  return Number(text);
}

/** Reads `{a="x",b="y\"z"}` starting at text[i] === "{"; returns the labels and the index after "}". */
function parseLabels(text: string, i: number, where: string): [Record<string, string>, number] {
  const labels: Record<string, string> = {};
  i++; // "{"
  for (;;) {
    if (text[i] === "}") return [labels, i + 1];
    const eq = text.indexOf("=", i);
    if (eq < 0) throw new Error(`${where}: label without "="`);
    const name = text.slice(i, eq).trim();
    if (!LABEL.test(name)) throw new Error(`${where}: bad label name "${name}"`);
    if (name in labels) throw new Error(`${where}: label "${name}" twice`);
    if (text[eq + 1] !== '"') throw new Error(`${where}: label "${name}" value is not quoted`);
    let value = "";
    let j = eq + 2;
    for (; j < text.length && text[j] !== '"'; j++) {
      if (text[j] !== "\\") {
        value += text[j];
        continue;
      }
      const next = text[++j];
      if (next === "n") value += "\n";
      else if (next === "\\" || next === '"') value += next;
      else throw new Error(`${where}: bad escape "\\${next}" in label "${name}"`);
    }
    if (j >= text.length) throw new Error(`${where}: unterminated value of label "${name}"`);
    labels[name] = value;
    i = j + 1;
    if (text[i] === ",") i++;
    else if (text[i] !== "}") throw new Error(`${where}: expected "," or "}" after label "${name}"`);
  }
}

/** The family a sample name belongs to, given the declared families. */
function familyOf(sample: string, labels: Record<string, string>, families: Map<string, Family>): Family | undefined {
  const exact = families.get(sample);
  if (exact && exact.type !== "histogram") return exact;
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (!sample.endsWith(suffix)) continue;
    const f = families.get(sample.slice(0, -suffix.length));
    if (f?.type === "histogram" && (suffix !== "_bucket" || "le" in labels)) return f;
    if (f?.type === "summary" && suffix !== "_bucket") return f;
  }
  return undefined;
}

export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const typed = new Set<string>();
  const seen = new Set<string>();
  const closed = new Set<Family>(); // a family's samples come in one block
  let current: Family | undefined;
  const lines = text.split("\n");
  lines.forEach((raw, index) => {
    const where = `line ${index + 1} ("${raw.slice(0, 120)}")`;
    const line = raw.trim();
    if (!line) return;
    if (line.startsWith("#")) {
      const m = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s+(.*))?$/.exec(line);
      if (!m) return; // a plain comment
      const [, kind, name, rest = ""] = m;
      if (!NAME.test(name!)) throw new Error(`${where}: bad metric name`);
      const f = families.get(name!) ?? { name: name!, type: "untyped" as MetricType, samples: [] };
      if (kind === "TYPE") {
        if (!["counter", "gauge", "histogram", "summary", "untyped"].includes(rest)) throw new Error(`${where}: unknown type "${rest}"`);
        if (f.samples.length) throw new Error(`${where}: TYPE after samples of ${name}`);
        if (typed.has(name!)) throw new Error(`${where}: second TYPE for ${name}`);
        typed.add(name!);
        f.type = rest as MetricType;
      } else {
        if (f.help !== undefined) throw new Error(`${where}: second HELP for ${name}`);
        f.help = rest.replace(/\\(n|\\)/g, (_, c) => (c === "n" ? "\n" : "\\"));
      }
      families.set(name!, f);
      return;
    }
    const nameEnd = line.search(/[{\s]/);
    if (nameEnd <= 0) throw new Error(`${where}: not a sample`);
    const name = line.slice(0, nameEnd);
    if (!NAME.test(name)) throw new Error(`${where}: bad metric name "${name}"`);
    let labels: Record<string, string> = {};
    let i = nameEnd;
    if (line[i] === "{") [labels, i] = parseLabels(line, i, where);
    const parts = line.slice(i).trim().split(/\s+/);
    if (parts.length < 1 || parts.length > 2 || !parts[0]) throw new Error(`${where}: expected a value and an optional timestamp`);
    const value = parseValue(parts[0], where);
    if (parts[1] !== undefined && !/^-?\d+$/.test(parts[1])) throw new Error(`${where}: bad timestamp`);
    const family = familyOf(name, labels, families);
    if (!family || !typed.has(family.name)) throw new Error(`${where}: sample ${name} belongs to no family declared with # TYPE`);
    if (family !== current) {
      if (closed.has(family)) throw new Error(`${where}: samples of ${family.name} are split by another family`);
      if (current) closed.add(current);
      current = family;
    }
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seen.has(key)) throw new Error(`${where}: series ${key} appears twice`);
    seen.add(key);
    family.samples.push({ name, labels, value });
  });
  for (const f of families.values()) if (f.type === "histogram") checkHistogram(f);
  return families;
}

/** Buckets of every series are cumulative, include +Inf, and +Inf equals _count. */
function checkHistogram(f: Family) {
  const series = new Map<string, { buckets: [number, number][]; count?: number; sum?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const e = series.get(key) ?? { buckets: [] };
    if (s.name.endsWith("_bucket")) e.buckets.push([parseValue(le!, `${f.name} le`), s.value]);
    else if (s.name.endsWith("_count")) e.count = s.value;
    else e.sum = s.value;
    series.set(key, e);
  }
  for (const [key, e] of series) {
    const sorted = [...e.buckets].sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < sorted.length; i++) if (sorted[i]![1] < sorted[i - 1]![1]) throw new Error(`${f.name}${key}: buckets are not cumulative`);
    const inf = sorted.at(-1);
    if (!inf || inf[0] !== Infinity) throw new Error(`${f.name}${key}: no +Inf bucket`);
    if (e.count === undefined || e.sum === undefined) throw new Error(`${f.name}${key}: _count or _sum missing`);
    if (inf[1] !== e.count) throw new Error(`${f.name}${key}: +Inf bucket ${inf[1]} != _count ${e.count}`);
  }
}

/** The value of the one sample named `name` whose labels are exactly `labels`; undefined when absent. */
export function sampleValue(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = JSON.stringify(Object.entries(labels).sort());
  for (const f of families.values()) {
    for (const s of f.samples) if (s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want) return s.value;
  }
  return undefined;
}

/** Scrapes http://127.0.0.1:PORT/metrics and parses it; also returns the content type. */
export async function scrape(port: number): Promise<{ families: Map<string, Family>; contentType: string; text: string }> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}: ${text.slice(0, 300)}`);
  return { families: parseExposition(text), contentType: res.headers.get("content-type") ?? "", text };
}
