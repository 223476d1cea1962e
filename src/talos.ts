// Per-server patching of a node group's user-data.
//
// Cluster Autoscaler never applies a template node's labels or taints to the
// real node, so a Talos worker config (generated once with `talosctl gen
// config`) is patched for every server we create: its host name (= the server
// name, the only link between server and Node until the CCM sets the
// providerID), the node labels and the registration taints. Rules, from
// /work/shared/docs/talos.md (checked against siderolabs/talos):
//
// - Host name: if a `HostnameConfig` document exists (Talos ≥ 1.12 `gen config`
//   emits one with `auto: stable`), edit it: remove `auto` and set `hostname`
//   (`auto: stable` together with `hostname` is rejected; a missing `auto` means
//   "off"). Otherwise set `machine.network.hostname` in the v1alpha1 document
//   (deprecated since 1.12 but accepted, and it must not be set beside a
//   HostnameConfig document).
// - Labels: merged over `machine.nodeLabels`. Talos applies them with the
//   kubelet's credentials, so NodeRestriction rejects labels a kubelet may not
//   set on its own Node (`forbiddenNodeLabels`); those are skipped here and
//   refused by config validation.
// - Taints: NOT `machine.nodeTaints` (applied after registration with kubelet
//   credentials, which NodeRestriction forbids on workers), but the kubelet's
//   own `registerWithTaints` through `machine.kubelet.extraConfig`, merged with
//   whatever extraConfig already holds.
// - Talos 1.14 configs may carry a `KubeNodeConfig` document, which replaces
//   `machine.nodeLabels`/`machine.nodeTaints`; Talos refuses those v1alpha1
//   fields beside it. When that document is present, labels go into its
//   `labels` map and taints into its `taints` map (key → "value:Effect"), which
//   Talos 1.14 hands to the kubelet as registerWithTaints itself
//   (kubelet_config.go: RegisterWithTaints = K8sNodeConfig().Taints()). That map
//   holds one taint per key, so one key with two effects is an error there.
// - Every other document, and every part of the patched documents we do not
//   touch, is kept as it was. Documents are split on `---` lines ourselves;
//   untouched documents are copied byte for byte. Inside a patched document only
//   the lines of the changed keys are rewritten (comments elsewhere survive);
//   the result is re-parsed and compared with the intended value, and only if
//   that check fails is the document re-serialised as a whole.
//   (Bun.YAML.parse returns an array for a multi-document stream, which cannot
//   be told from a single document that is a sequence, and Bun.YAML.stringify
//   writes no multi-document streams; hence our own splitter and emitter.)

import type { Taint, UserDataFormat } from "./types";

export interface UserDataPatch {
  hostname: string;
  labels: Record<string, string>;
  taints: Taint[];
}

// ---------------------------------------------------------------------------
// NodeRestriction

/**
 * Label keys a kubelet may set on its own Node although they are in the
 * kubernetes.io / k8s.io namespaces (kubernetes: k8s.io/kubelet
 * pkg/apis/well_known_labels.go, kubeletLabels).
 */
const KUBELET_ALLOWED_LABELS = new Set([
  "kubernetes.io/hostname",
  "kubernetes.io/os",
  "kubernetes.io/arch",
  "beta.kubernetes.io/os",
  "beta.kubernetes.io/arch",
  "beta.kubernetes.io/instance-type",
  "node.kubernetes.io/instance-type",
  "failure-domain.beta.kubernetes.io/zone",
  "failure-domain.beta.kubernetes.io/region",
  "topology.kubernetes.io/zone",
  "topology.kubernetes.io/region",
]);

/** Label namespaces a kubelet may use, including their subdomains (kubeletLabelNamespaces). */
const KUBELET_ALLOWED_NAMESPACES = ["kubelet.kubernetes.io", "node.kubernetes.io"];

function labelNamespace(key: string): string {
  const i = key.indexOf("/");
  return i < 0 ? "" : key.slice(0, i);
}

function inDomain(ns: string, domain: string): boolean {
  return ns === domain || ns.endsWith(`.${domain}`);
}

/**
 * Whether NodeRestriction forbids a kubelet to set this label on its own Node:
 * keys in the kubernetes.io or k8s.io namespaces (or their subdomains, e.g.
 * node-role.kubernetes.io/*), except the well-known kubelet labels
 * (hostname, os, arch, instance-type, zone/region in their topology,
 * failure-domain.beta and beta forms) and the kubelet.kubernetes.io and
 * node.kubernetes.io namespaces with their subdomains.
 */
export function isForbiddenNodeLabel(key: string): boolean {
  const ns = labelNamespace(key);
  if (!inDomain(ns, "kubernetes.io") && !inDomain(ns, "k8s.io")) return false;
  if (KUBELET_ALLOWED_LABELS.has(key)) return false;
  if (KUBELET_ALLOWED_NAMESPACES.some((d) => inDomain(ns, d))) return false;
  return true;
}

/** The keys of `labels` a kubelet may not set on its own Node (sorted); empty when all are fine. */
export function forbiddenNodeLabels(labels: Record<string, string>): string[] {
  return Object.keys(labels).filter(isForbiddenNodeLabel).sort();
}

// ---------------------------------------------------------------------------
// Format detection

const CLOUD_INIT_PREFIXES = [
  "#cloud-config",
  "#cloud-boothook",
  "#include",
  "#part-handler",
  "#upstart-job",
  "#!",
  "## template: jinja",
  "content-type:",
  "mime-version:",
];

/**
 * What kind of user-data this is.
 * - "none": empty or whitespace only.
 * - "cloud-init": starts like a cloud-init payload (#cloud-config, a #! script,
 *   #include, MIME multipart, …) — and also anything we do not recognise as
 *   Talos, since such user-data is passed through unchanged.
 * - "talos": a YAML stream with a Talos v1alpha1 machine config (`version:
 *   v1alpha1` with `machine`/`cluster`) or a Talos config document
 *   (`apiVersion: v1alpha1` + `kind`). A stream that fails to parse but has the
 *   v1alpha1 top-level keys is still "talos", so that patching reports the error.
 */
export function detectUserDataFormat(text: string): UserDataFormat {
  const trimmed = text.replace(/^\uFEFF/, "").trimStart();
  if (trimmed.length === 0) return "none";
  const firstLine = trimmed.split(/\r?\n/, 1)[0]!.toLowerCase();
  if (CLOUD_INIT_PREFIXES.some((p) => firstLine.startsWith(p))) return "cloud-init";

  try {
    for (const doc of splitDocuments(text).docs) {
      const value = parseDocument(doc.lines.join("\n"));
      if (isTalosDocument(value)) return "talos";
    }
  } catch {
    if (/^version:\s*v1alpha1\b/m.test(text) && /^(machine|cluster):/m.test(text)) return "talos";
  }
  return "cloud-init";
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isV1Alpha1Config(v: unknown): v is Record<string, unknown> {
  return isMap(v) && v.version === "v1alpha1" && !("kind" in v) && ("machine" in v || "cluster" in v);
}

function isKind(v: unknown, kind: string): v is Record<string, unknown> {
  return isMap(v) && v.kind === kind && v.apiVersion === "v1alpha1";
}

function isTalosDocument(v: unknown): boolean {
  return isV1Alpha1Config(v) || (isMap(v) && v.apiVersion === "v1alpha1" && typeof v.kind === "string");
}

// ---------------------------------------------------------------------------
// Document splitting

interface RawDocument {
  /** The `---` line that opens this document (without "\n"), or null for the part before the first marker. */
  marker: string | null;
  /** The document's lines (split on "\n"; a "\r" stays at the end of its line). */
  lines: string[];
}

const DOC_MARKER = /^---(?:[ \t].*)?\r?$/;
const DOC_END = /^\.\.\.(?:[ \t].*)?\r?$/;

function splitDocuments(text: string): { docs: RawDocument[] } {
  const docs: RawDocument[] = [{ marker: null, lines: [] }];
  for (const line of text.split("\n")) {
    if (DOC_MARKER.test(line)) docs.push({ marker: line, lines: [] });
    else docs[docs.length - 1]!.lines.push(line);
  }
  return { docs };
}

function joinDocuments(docs: RawDocument[]): string {
  const out: string[] = [];
  for (const d of docs) {
    if (d.marker !== null) out.push(d.marker);
    out.push(...d.lines);
  }
  return out.join("\n");
}

function parseDocument(body: string): unknown {
  const value: unknown = Bun.YAML.parse(body);
  return value === undefined ? null : value;
}

// ---------------------------------------------------------------------------
// Value helpers

function clone<T>(v: T): T {
  return v === undefined ? v : (structuredClone(v) as T);
}

function getIn(obj: unknown, path: readonly string[]): unknown {
  let cur: unknown = obj;
  for (const k of path) {
    if (!isMap(cur)) return undefined;
    cur = cur[k];
  }
  return cur;
}

/** Sets obj[path] = value, creating mappings on the way; a null on the way becomes a mapping. */
function setIn(obj: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let cur = obj;
  for (let i = 0; i < path.length - 1; i++) {
    const k = path[i]!;
    const next = cur[k];
    if (next === undefined || next === null) {
      cur[k] = {};
    } else if (!isMap(next)) {
      throw new Error(
        `Cannot patch the Talos user-data: ${path.slice(0, i + 1).join(".")} is not a mapping.`,
      );
    }
    cur = cur[k] as Record<string, unknown>;
  }
  cur[path[path.length - 1]!] = value;
}

function deleteIn(obj: Record<string, unknown>, path: readonly string[]): void {
  const parent = getIn(obj, path.slice(0, -1));
  if (isMap(parent)) delete parent[path[path.length - 1]!];
}

type Op = { kind: "set"; path: string[]; value: unknown } | { kind: "delete"; path: string[] };

// ---------------------------------------------------------------------------
// Line-level editing of one block-style YAML document

function bare(line: string): string {
  return line.endsWith("\r") ? line.slice(0, -1) : line;
}

function indentOf(line: string): number {
  const m = /^ */.exec(line);
  return m ? m[0].length : 0;
}

/** A line that carries YAML content (not blank, not a comment). */
function isContent(line: string): boolean {
  const t = bare(line).trim();
  return t.length > 0 && !t.startsWith("#");
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** If `line` (at `indent`) is the key line of `key`, returns the text after the colon, else null. */
function keyRest(line: string, indent: number, key: string): string | null {
  const b = bare(line);
  if (indentOf(b) !== indent) return null;
  const k = escapeRegExp(key);
  const m = new RegExp(`^(?:${k}|"${k}"|'${k}')[ \\t]*:(?:[ \\t]+(.*))?$`).exec(b.slice(indent));
  if (!m) return null;
  return m[1] ?? "";
}

// A small YAML emitter for what we write. Strings are written plain only when
// no YAML 1.1 or 1.2 reader (Bun's, or go-yaml v3 in Talos, which decodes
// machine.kubelet.extraConfig into untyped values) could take them for anything
// but a string; otherwise they are written as JSON strings, which are valid
// YAML double-quoted scalars. So "1_000", "2001-01-01", "yes" or "0644" stay
// strings.

const PLAIN_SAFE = /^[A-Za-z_][A-Za-z0-9._/-]*$/;
const YAML_WORDS = /^(?:y|n|yes|no|on|off|true|false|null)$/i;

function scalar(v: unknown): string {
  if (typeof v === "string") return PLAIN_SAFE.test(v) && !YAML_WORDS.test(v) ? v : JSON.stringify(v);
  if (typeof v === "number") {
    if (Number.isFinite(v)) return String(v);
    return Number.isNaN(v) ? ".nan" : v > 0 ? ".inf" : "-.inf";
  }
  if (typeof v === "boolean") return v ? "true" : "false";
  if (v === null || v === undefined) return "null";
  if (Array.isArray(v)) return "[]";
  if (isMap(v)) return "{}";
  return JSON.stringify(String(v));
}

function isBlock(v: unknown): boolean {
  return (Array.isArray(v) && v.length > 0) || (isMap(v) && Object.keys(v).length > 0);
}

/** Lines (without line ends) of `key: value` at `indent`, nested blocks indented by `unit`. */
function renderEntry(key: string, value: unknown, indent: number, unit: number): string[] {
  const head = `${" ".repeat(indent)}${scalar(key)}:`;
  if (!isBlock(value)) return [`${head} ${scalar(value)}`];
  return [head, ...renderBlock(value, indent + unit, unit)];
}

/** Lines of a non-empty mapping or sequence whose items start at `indent`. */
function renderBlock(value: unknown, indent: number, unit: number): string[] {
  if (Array.isArray(value)) {
    return value.flatMap((item) => {
      if (!isBlock(item)) return [`${" ".repeat(indent)}- ${scalar(item)}`];
      const lines = renderBlock(item, indent + 2, unit);
      lines[0] = `${" ".repeat(indent)}- ${lines[0]!.slice(indent + 2)}`;
      return lines;
    });
  }
  if (isMap(value)) return Object.entries(value).flatMap(([k, v]) => renderEntry(k, v, indent, unit));
  return [`${" ".repeat(indent)}${scalar(value)}`];
}

/** A block-mapping line with a plain, double- or single-quoted key: `key: …`, `"key":`, `'key':`. */
const SIMPLE_KEY_LINE = /^(?:"(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s?\-#'"{}[\],&*!|><%@`][^#]*?)[ \t]*:(?:[ \t]|$)/;

class DocumentEditor {
  readonly lines: string[];
  private readonly eol: string;
  private readonly unit: number;
  constructor(lines: string[]) {
    this.lines = [...lines];
    this.eol = lines.some((l) => l.endsWith("\r")) ? "\r" : "";
    const firstNested = this.lines.slice(0, this.end()).find((l) => isContent(l) && indentOf(l) > 0);
    this.unit = firstNested ? Math.min(indentOf(firstNested), 8) : 4;
  }

  /** One past the last line of the document body (before a `...` end marker). */
  private end(): number {
    const i = this.lines.findIndex((l) => DOC_END.test(l));
    return i < 0 ? this.lines.length : i;
  }

  private firstContent(lo: number, hi: number): number {
    for (let i = lo; i < hi; i++) if (isContent(this.lines[i]!)) return i;
    return -1;
  }

  private lastContent(lo: number, hi: number): number {
    for (let i = hi - 1; i >= lo; i--) if (isContent(this.lines[i]!)) return i;
    return -1;
  }

  /** Exclusive end of the entry whose key line is `k` (its value's lines, not trailing comments). */
  private entryEnd(k: number, hi: number, indent: number, inline: boolean): number {
    let end = k + 1;
    for (let i = k + 1; i < hi; i++) {
      const l = this.lines[i]!;
      if (!isContent(l)) continue;
      const ind = indentOf(l);
      const seqItem = ind === indent && /^-(?:[ \t]|$)/.test(bare(l).slice(indent));
      if (ind > indent || (!inline && seqItem)) {
        end = i + 1;
        continue;
      }
      break;
    }
    return end;
  }

  private render(key: string, value: unknown, indent: number): string[] {
    return renderEntry(key, value, indent, this.unit).map((l) => l + this.eol);
  }

  private findKey(lo: number, hi: number, indent: number, key: string): { line: number; inline: boolean } | null {
    for (let i = lo; i < hi; i++) {
      const l = this.lines[i]!;
      if (!isContent(l) || indentOf(l) !== indent) continue;
      const rest = keyRest(l, indent, key);
      if (rest === null) continue;
      const r = rest.trim();
      return { line: i, inline: !(r.length === 0 || r.startsWith("#")) };
    }
    return null;
  }

  /**
   * Whether every line at `indent` in [lo, hi) is a plain `key:` line (or a
   * compact sequence item belonging to the key above). Anything else (explicit
   * `? key` entries, anchors or tags in key position, …) could hide a key from
   * `findKey`, so such blocks are left to the re-serialising fallback.
   */
  private simpleBlock(lo: number, hi: number, indent: number): boolean {
    for (let i = lo; i < hi; i++) {
      const l = this.lines[i]!;
      if (!isContent(l) || indentOf(l) !== indent) continue;
      const t = bare(l).slice(indent);
      if (!SIMPLE_KEY_LINE.test(t) && !/^-(?:[ \t]|$)/.test(t)) return false;
    }
    return true;
  }

  /** Applies one op; `target` is the intended document value (for the subtree to write). Returns false if it cannot. */
  apply(op: Op, target: unknown): boolean {
    let lo = 0;
    let hi = this.end();
    let parentIndent = -this.unit;
    for (let d = 0; d < op.path.length; d++) {
      const key = op.path[d]!;
      const first = this.firstContent(lo, hi);
      const indent = first >= 0 ? indentOf(this.lines[first]!) : parentIndent + this.unit;
      if (!this.simpleBlock(lo, hi, indent)) return false;
      const found = this.findKey(lo, hi, indent, key);
      const last = d === op.path.length - 1;
      if (!found) {
        if (op.kind === "delete") return true; // nothing to delete
        const at = first >= 0 ? this.lastContent(lo, hi) + 1 : lo;
        const value = getIn(target, op.path.slice(0, d + 1));
        this.lines.splice(at, 0, ...this.render(key, value, indent));
        return true;
      }
      const end = this.entryEnd(found.line, hi, indent, found.inline);
      if (last || found.inline) {
        if (op.kind === "delete") {
          if (!last) return false; // the parent is written inline; let the fallback handle it
          this.lines.splice(found.line, end - found.line);
          return true;
        }
        const value = getIn(target, op.path.slice(0, d + 1));
        this.lines.splice(found.line, end - found.line, ...this.render(key, value, indent));
        return true;
      }
      lo = found.line + 1;
      hi = end;
      parentIndent = indent;
    }
    return false;
  }
}

/** Applies ops to one document: value first, then the text; verified by re-parsing. */
function patchDocument(doc: RawDocument, value: unknown, ops: Op[], index: number): RawDocument {
  if (ops.length === 0) return doc;
  const target = isMap(value) ? clone(value) : {};
  for (const op of ops) {
    if (op.kind === "set") setIn(target, op.path, op.value);
    else deleteIn(target, op.path);
  }

  const editor = new DocumentEditor(doc.lines);
  let ok = true;
  for (const op of ops) {
    if (!editor.apply(op, target)) {
      ok = false;
      break;
    }
  }
  if (ok) {
    try {
      if (Bun.deepEquals(parseDocument(editor.lines.join("\n")), target)) {
        return { marker: doc.marker, lines: editor.lines };
      }
    } catch {
      // fall through to re-serialisation
    }
  }

  // Fallback: re-serialise the whole document (comments in it are lost).
  const eol = doc.lines.some((l) => l.endsWith("\r")) ? "\r" : "";
  const trailingNewline = doc.lines.length > 0 && doc.lines[doc.lines.length - 1] === "";
  const rendered = renderBlock(target, 0, 4);
  if (!Bun.deepEquals(parseDocument(rendered.join("\n")), target)) {
    throw new Error(`Could not write the patched Talos configuration document ${index + 1} back as YAML.`);
  }
  const lines = rendered.map((l) => l + eol);
  if (trailingNewline) lines.push("");
  return { marker: doc.marker, lines };
}

// ---------------------------------------------------------------------------
// The patch

function mergeRegisterWithTaints(existing: unknown, taints: Taint[]): unknown[] {
  if (existing !== undefined && existing !== null && !Array.isArray(existing)) {
    throw new Error(
      "Cannot patch the Talos user-data: machine.kubelet.extraConfig.registerWithTaints is not a list.",
    );
  }
  const ours = new Set(taints.map((t) => `${t.key}\u0000${t.effect}`));
  const kept = ((existing as unknown[] | null | undefined) ?? []).filter(
    (t) => !(isMap(t) && ours.has(`${String(t.key)}\u0000${String(t.effect)}`)),
  );
  const added = taints.map((t) => (t.value ? { key: t.key, value: t.value, effect: t.effect } : { key: t.key, effect: t.effect }));
  return [...kept, ...added];
}

/**
 * Patches a Talos machine configuration (multi-document YAML) for one server:
 * host name, node labels and registration taints, following the rules in the
 * module comment. Labels NodeRestriction would refuse are skipped. Throws an
 * Error with a plain sentence when the YAML cannot be parsed or has no v1alpha1
 * machine configuration where one is needed.
 */
export function patchTalosUserData(userData: string, p: UserDataPatch): string {
  if (!p.hostname) throw new Error("Cannot patch the Talos user-data: the host name is empty.");
  const { docs } = splitDocuments(userData);
  // Documents as a reader counts them: the part before the first `---` only if it has content.
  const isReal = docs.map((d) => d.marker !== null || d.lines.some(isContent));
  const total = isReal.filter(Boolean).length;
  const values = docs.map((d, i) => {
    try {
      return parseDocument(d.lines.join("\n"));
    } catch (e) {
      const reason = e instanceof Error ? e.message : String(e);
      const ordinal = isReal.slice(0, i + 1).filter(Boolean).length;
      throw new Error(`The Talos user-data is not valid YAML (document ${ordinal} of ${total}): ${reason}`);
    }
  });

  const find = (pred: (v: unknown) => boolean): number[] =>
    values.flatMap((v, i) => (pred(v) ? [i] : []));
  const v1alpha1 = find(isV1Alpha1Config);
  const hostnameDocs = find((v) => isKind(v, "HostnameConfig"));
  const kubeNodeDocs = find((v) => isKind(v, "KubeNodeConfig"));
  if (v1alpha1.length > 1) {
    throw new Error("The Talos user-data has more than one v1alpha1 machine configuration document.");
  }
  if (kubeNodeDocs.length > 1) {
    throw new Error("The Talos user-data has more than one KubeNodeConfig document.");
  }
  const needV1alpha1 = (why: string): number => {
    if (v1alpha1.length === 0) {
      throw new Error(
        `The Talos user-data has no v1alpha1 machine configuration (a document with "version: v1alpha1"), which is needed to set the ${why}.`,
      );
    }
    return v1alpha1[0]!;
  };

  const ops = new Map<number, Op[]>();
  const add = (doc: number, op: Op) => ops.set(doc, [...(ops.get(doc) ?? []), op]);
  /** Merges `entries` into the mapping at `path`, one key at a time (so existing entries and their comments stay). */
  const setEach = (doc: number, path: string[], what: string, entries: Record<string, string>) => {
    const existing = getIn(values[doc], path);
    if (existing !== undefined && existing !== null && !isMap(existing)) {
      throw new Error(`Cannot patch the Talos user-data: ${what} is not a mapping.`);
    }
    for (const [k, v] of Object.entries(entries)) add(doc, { kind: "set", path: [...path, k], value: v });
  };

  // Host name.
  if (hostnameDocs.length > 0) {
    for (const d of hostnameDocs) {
      add(d, { kind: "delete", path: ["auto"] });
      add(d, { kind: "set", path: ["hostname"], value: p.hostname });
    }
  } else {
    add(needV1alpha1("host name"), { kind: "set", path: ["machine", "network", "hostname"], value: p.hostname });
  }

  // Labels, without the ones NodeRestriction refuses a kubelet.
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(p.labels)) if (!isForbiddenNodeLabel(k)) labels[k] = v;

  if (kubeNodeDocs.length > 0) {
    // Talos 1.14 style: a KubeNodeConfig document owns node labels and taints
    // (machine.nodeLabels/nodeTaints are refused beside it); its `taints` map is
    // key → "value:Effect" and reaches the kubelet as registerWithTaints.
    const d = kubeNodeDocs[0]!;
    setEach(d, ["labels"], "KubeNodeConfig.labels", labels);
    if (p.taints.length > 0) {
      const taintMap: Record<string, string> = {};
      for (const t of p.taints) {
        if (t.key in taintMap) {
          throw new Error(
            `Taint "${t.key}" appears with two effects; a KubeNodeConfig document can hold only one taint per key.`,
          );
        }
        taintMap[t.key] = `${t.value}:${t.effect}`;
      }
      setEach(d, ["taints"], "KubeNodeConfig.taints", taintMap);
    }
  } else {
    if (Object.keys(labels).length > 0) {
      setEach(needV1alpha1("node labels"), ["machine", "nodeLabels"], "machine.nodeLabels", labels);
    }
    if (p.taints.length > 0) {
      const d = needV1alpha1("node taints");
      const path = ["machine", "kubelet", "extraConfig", "registerWithTaints"];
      add(d, { kind: "set", path, value: mergeRegisterWithTaints(getIn(values[d], path), p.taints) });
    }
  }

  const out = docs.map((doc, i) => patchDocument(doc, values[i], ops.get(i) ?? [], i));
  return joinDocuments(out);
}

/** Patches user-data of the given format: Talos configs are patched, cloud-init and empty user-data pass through unchanged. */
export function patchUserData(format: UserDataFormat, userData: string, params: UserDataPatch): string {
  if (format === "talos") return patchTalosUserData(userData, params);
  return userData;
}

/**
 * The kubelet configuration a Talos machine config sets (`machine.kubelet.extraConfig`
 * of the v1alpha1 document), so the template can reserve what this kubelet will reserve.
 * Undefined when the config has none or cannot be read.
 */
export function talosKubeletConfig(userData: string): Record<string, unknown> | undefined {
  try {
    for (const doc of splitDocuments(userData).docs) {
      const value = parseDocument(doc.lines.join("\n"));
      if (!isV1Alpha1Config(value)) continue;
      const extra = (value.machine as { kubelet?: { extraConfig?: unknown } } | undefined)?.kubelet?.extraConfig;
      return isMap(extra) ? extra : undefined;
    }
  } catch {
    return undefined;
  }
  return undefined;
}
