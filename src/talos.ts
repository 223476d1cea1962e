// Per-server patching of a node group's user-data.
//
// Cluster Autoscaler never applies a template node's labels or taints to the
// real node, so a Talos worker config (generated once with `talosctl gen
// config`) is patched for every server we create: its host name (= the server
// name, the only link between server and Node until the CCM sets the
// providerID), the node labels and the registration taints. Rules, from Talos'
// configuration reference (https://www.talos.dev/) and its source
// (https://github.com/siderolabs/talos):
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
// - Every other document is kept byte for byte. A patched document is edited
//   through the `yaml` package's Document API, which keeps its comments, blank
//   lines, quoting and layout. It is read with the failsafe schema: every scalar
//   stays the string it was written as, so untouched values are written back
//   exactly (with the default schema `permissions: 0644` would come back as `644`,
//   which Talos, reading YAML with go-yaml, takes as decimal; see talos.test.ts).
//   What we write is quoted wherever go-yaml could read it as anything but a string.

import { Document, isMap, isScalar, isSeq, parseAllDocuments, Scalar, YAMLMap, YAMLSeq, type Node as YamlNode } from "yaml";
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
export const detectUserDataFormat = perText(function detectFormat(text: string): UserDataFormat {
  const trimmed = text.replace(/^\uFEFF/, "").trimStart();
  if (trimmed.length === 0) return "none";
  const firstLine = trimmed.split(/\r?\n/, 1)[0]!.toLowerCase();
  if (CLOUD_INIT_PREFIXES.some((p) => firstLine.startsWith(p))) return "cloud-init";

  const { values, error } = readDocuments(text);
  if (values.some(isTalosDocument)) return "talos";
  if (error && /^version:\s*v1alpha1\b/m.test(text) && /^(machine|cluster):/m.test(text)) return "talos";
  return "cloud-init";
});

/**
 * A function of a user-data text, its answers kept per text. Every node group of an entry, and
 * often every entry, has the same user-data, and each reading parses the YAML anew: on a cold start
 * tens of milliseconds each, which made a configuration of 50 Talos groups take over a second to
 * load. Answers are shared: callers must not change them.
 */
function perText<R>(fn: (text: string) => R): (text: string) => R {
  const kept = new Map<string, R>();
  return (text) => {
    if (kept.has(text)) return kept.get(text)!;
    if (kept.size >= 64) kept.clear();
    const answer = fn(text);
    kept.set(text, answer);
    return answer;
  };
}

function isMapValue(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isV1Alpha1Config(v: unknown): v is Record<string, unknown> {
  return isMapValue(v) && v.version === "v1alpha1" && !("kind" in v) && ("machine" in v || "cluster" in v);
}

function isKind(v: unknown, kind: string): v is Record<string, unknown> {
  return isMapValue(v) && v.kind === kind && v.apiVersion === "v1alpha1";
}

function isTalosDocument(v: unknown): boolean {
  return isV1Alpha1Config(v) || (isMapValue(v) && v.apiVersion === "v1alpha1" && typeof v.kind === "string");
}

// ---------------------------------------------------------------------------
// Reading and editing documents

/** The documents of a YAML stream, read for their values (core schema: numbers are numbers). */
function readDocuments(text: string): { values: unknown[]; error?: { index: number; message: string } } {
  const docs = parseAllDocuments(text);
  const values: unknown[] = [];
  for (const [i, d] of docs.entries()) {
    if (d.errors.length) return { values, error: { index: i, message: d.errors[0]!.message.split("\n")[0]! } };
    values.push(d.toJS() ?? null);
  }
  return { values };
}

/** A stream opened for editing: the failsafe schema keeps every untouched scalar as written. */
function openForEditing(text: string): Document[] {
  return parseAllDocuments(text, { schema: "failsafe" }) as Document[];
}

/** The text of document i in `text`: from the end of the previous one to its own end (the last one: to the end). */
function documentSpan(docs: Document[], i: number, text: string): [number, number] {
  const start = i === 0 ? 0 : (docs[i - 1]!.range?.[2] ?? 0);
  const end = i === docs.length - 1 ? text.length : (docs[i]!.range?.[2] ?? text.length);
  return [start, end];
}

/** Writes the stream back: untouched documents byte for byte, edited ones re-rendered in their own style. */
function writeDocuments(text: string, docs: Document[], edited: Set<number>): string {
  let out = "";
  for (let i = 0; i < docs.length; i++) {
    const [start, end] = documentSpan(docs, i, text);
    const original = text.slice(start, end);
    if (!edited.has(i)) {
      out += original;
      continue;
    }
    let rendered = docs[i]!.toString({ indent: indentOf(original), lineWidth: 0, minContentWidth: 0 });
    if (!original.endsWith("\n")) rendered = rendered.replace(/\n$/, "");
    out += original.includes("\r\n") ? rendered.replace(/\r?\n/g, "\r\n") : rendered;
  }
  return out;
}

/** The indentation step a document uses (its first indented content line), 4 when it has none. */
function indentOf(text: string): number {
  const m = /^( +)[^\s#]/m.exec(text);
  return m ? Math.min(m[1]!.length, 8) : 4;
}

/** A plain scalar with no value ("key:" or "key: ~" or null). */
function isNullNode(n: unknown): boolean {
  return isScalar(n) && n.type === "PLAIN" && ["", "~", "null", "Null", "NULL"].includes(String(n.value));
}

// Strings are written plain only when no YAML 1.1 or 1.2 reader (go-yaml v3 in Talos
// decodes machine.kubelet.extraConfig into untyped values) could take them for anything
// but a string; otherwise double-quoted. So "1_000", "2001-01-01", "yes" or "0644" stay strings.
const PLAIN_SAFE = /^[A-Za-z_][A-Za-z0-9._/-]*$/;
const YAML_WORDS = /^(?:y|n|yes|no|on|off|true|false|null)$/i;

/** A YAML node for a value we write (strings, maps and lists of them), quoted where needed. */
function node(value: unknown): YamlNode {
  if (typeof value === "string") {
    const s = new Scalar(value);
    s.type = PLAIN_SAFE.test(value) && !YAML_WORDS.test(value) ? "PLAIN" : "QUOTE_DOUBLE";
    return s;
  }
  if (Array.isArray(value)) {
    const seq = new YAMLSeq();
    for (const v of value) seq.items.push(node(v));
    return seq;
  }
  if (isMapValue(value)) {
    const map = new YAMLMap();
    for (const [k, v] of Object.entries(value)) map.set(node(k), node(v));
    return map;
  }
  throw new Error(`cannot write ${typeof value} into a Talos configuration`);
}

/** The mapping at `path` of a document, made where it is missing or empty; throws when something else is there. */
function mapAt(doc: Document, path: readonly string[]): YAMLMap {
  if (!isMap(doc.contents)) {
    if (doc.contents !== null && !isNullNode(doc.contents)) throw new Error("Cannot patch the Talos user-data: a document is not a mapping.");
    doc.contents = new YAMLMap();
  }
  let cur = doc.contents as YAMLMap;
  for (let i = 0; i < path.length; i++) {
    const next = cur.get(path[i]!, true);
    if (next === undefined || isNullNode(next)) {
      const made = new YAMLMap();
      cur.set(node(path[i]!), made);
      cur = made;
    } else if (isMap(next)) {
      cur = next;
    } else {
      throw new Error(`Cannot patch the Talos user-data: ${path.slice(0, i + 1).join(".")} is not a mapping.`);
    }
  }
  return cur;
}

/** Sets map[key] = value; an existing scalar is changed in place, so a comment on its line stays. */
function setString(map: YAMLMap, key: string, value: string): void {
  const fresh = node(value) as Scalar;
  const old = map.get(key, true);
  if (isScalar(old)) {
    old.value = fresh.value;
    old.type = fresh.type;
  } else {
    map.set(node(key), fresh);
  }
  if (map.flow && map.items.length === 1) map.flow = false; // an empty `{}` we fill becomes a block
}

// ---------------------------------------------------------------------------
// The patch

/** Merges our taints into machine.kubelet.extraConfig.registerWithTaints: same key and effect replaced, others kept. */
function mergeRegisterWithTaints(extraConfig: YAMLMap, taints: Taint[]): void {
  const existing: unknown = extraConfig.get("registerWithTaints", true);
  if (existing !== undefined && !isNullNode(existing) && !isSeq(existing)) {
    throw new Error("Cannot patch the Talos user-data: machine.kubelet.extraConfig.registerWithTaints is not a list.");
  }
  const ours = new Set(taints.map((t) => `${t.key}\u0000${t.effect}`));
  const seq: YAMLSeq = isSeq(existing) ? existing : new YAMLSeq();
  seq.items = seq.items.filter((t) => !(isMap(t) && ours.has(`${String(t.get("key"))}\u0000${String(t.get("effect"))}`)));
  for (const t of taints) seq.items.push(node(t.value ? { key: t.key, value: t.value, effect: t.effect } : { key: t.key, effect: t.effect }));
  if (seq.flow && seq.items.length === taints.length) seq.flow = false;
  if (seq !== existing) extraConfig.set(node("registerWithTaints"), seq);
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
  const docs = openForEditing(userData);
  const bad = docs.findIndex((d) => d.errors.length > 0);
  if (bad >= 0) {
    throw new Error(`The Talos user-data is not valid YAML (document ${bad + 1} of ${docs.length}): ${docs[bad]!.errors[0]!.message.split("\n")[0]!.replace(/:$/, "")}`);
  }
  const values = docs.map((d) => d.toJS() as unknown);

  const find = (pred: (v: unknown) => boolean): number[] => values.flatMap((v, i) => (pred(v) ? [i] : []));
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
  const edited = new Set<number>();
  /** Merges `entries` into the mapping at `path`, one key at a time (so existing entries and their comments stay). */
  const setEach = (i: number, path: string[], entries: Record<string, string>) => {
    const map = mapAt(docs[i]!, path);
    for (const [k, v] of Object.entries(entries)) setString(map, k, v);
    edited.add(i);
  };

  // Host name.
  if (hostnameDocs.length > 0) {
    for (const i of hostnameDocs) {
      const map = mapAt(docs[i]!, []);
      map.delete("auto");
      setString(map, "hostname", p.hostname);
      edited.add(i);
    }
  } else {
    setEach(needV1alpha1("host name"), ["machine", "network"], { hostname: p.hostname });
  }

  // Labels, without the ones NodeRestriction refuses a kubelet.
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(p.labels)) if (!isForbiddenNodeLabel(k)) labels[k] = v;

  if (kubeNodeDocs.length > 0) {
    // Talos 1.14 style: a KubeNodeConfig document owns node labels and taints
    // (machine.nodeLabels/nodeTaints are refused beside it); its `taints` map is
    // key → "value:Effect" and reaches the kubelet as registerWithTaints.
    const d = kubeNodeDocs[0]!;
    setEach(d, ["labels"], labels);
    if (p.taints.length > 0) {
      const taintMap: Record<string, string> = {};
      for (const t of p.taints) {
        if (t.key in taintMap) {
          throw new Error(`Taint "${t.key}" appears with two effects; a KubeNodeConfig document can hold only one taint per key.`);
        }
        taintMap[t.key] = `${t.value}:${t.effect}`;
      }
      setEach(d, ["taints"], taintMap);
    }
  } else {
    if (Object.keys(labels).length > 0) setEach(needV1alpha1("node labels"), ["machine", "nodeLabels"], labels);
    if (p.taints.length > 0) {
      const d = needV1alpha1("node taints");
      mergeRegisterWithTaints(mapAt(docs[d]!, ["machine", "kubelet", "extraConfig"]), p.taints);
      edited.add(d);
    }
  }

  return writeDocuments(userData, docs, edited);
}

/**
 * Why this Talos user-data cannot be patched for a server (as every creation does), or undefined:
 * tried once per group at load, so what would fail every creation fails the configuration instead.
 */
export function talosPatchProblem(userData: string, format: UserDataFormat, sample: UserDataPatch): string | undefined {
  const failure = talosPatchFailure(userData, sample);
  if (failure === undefined) return undefined;
  const forced = format === "talos" && detectUserDataFormat(userData) !== "talos" ? " (userDataFormat is talos, but this does not read as a Talos machine configuration)" : "";
  return `cannot be patched for a server, so every creation would fail${forced}: ${failure}`;
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
export const talosKubeletConfig = perText(function kubeletConfig(userData: string): Record<string, unknown> | undefined {
  const { values, error } = readDocuments(userData);
  if (error) return undefined;
  const v1 = values.find(isV1Alpha1Config);
  const extra = (v1?.machine as { kubelet?: { extraConfig?: unknown } } | undefined)?.kubelet?.extraConfig;
  return isMapValue(extra) ? extra : undefined;
});

const patchChecks = new Map<string, string | undefined>();

/**
 * Why the user-data cannot be patched for a server (as every creation patches it), or undefined:
 * the configuration's check, done once per user-data text, taints and label keys. Whether a patch
 * works depends on those, not on the host name or the labels' values (see patchTalosUserData).
 */
function talosPatchFailure(userData: string, p: UserDataPatch): string | undefined {
  const key = JSON.stringify([userData, p.taints, Object.keys(p.labels).filter((k) => !isForbiddenNodeLabel(k)).sort()]);
  if (patchChecks.has(key)) return patchChecks.get(key);
  if (patchChecks.size >= 64) patchChecks.clear();
  let failure: string | undefined;
  try {
    patchTalosUserData(userData, p);
  } catch (e) {
    failure = (e as Error).message;
  }
  patchChecks.set(key, failure);
  return failure;
}
