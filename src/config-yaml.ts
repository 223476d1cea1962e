// Reading the configuration file's YAML. The `yaml` library gives exact answers and messages
// with a position, but on a fresh process it needs 30-150 ms for a file of 50 node groups: most
// of the provider's start-up. Bun's own parser needs under a millisecond, but it keeps the last of
// two equal keys without a word and reports errors without a position. So a file is read by
// Bun's parser, and checked for equal keys by `sameKeys` below, which follows the block style
// configuration files are written in; a file it cannot follow, a file with equal keys and a file
// Bun cannot parse all go to the `yaml` library, whose answer (or error) is the one given.
import { parse as parseYaml } from "yaml";

/** The YAML value of a configuration file; throws the `yaml` library's error for a bad one. */
export function parseConfigYaml(text: string): unknown {
  let value: unknown;
  try {
    value = Bun.YAML.parse(text);
  } catch {
    return strictParse(text);
  }
  return sameKeys(text) === "none" ? value : strictParse(text);
}

function strictParse(text: string): unknown {
  return parseYaml(text, { prettyErrors: true, uniqueKeys: true });
}

interface OpenMap {
  indent: number;
  keys: Set<string>;
}

/**
 * "none" when no mapping of the text has two equal keys, "unsure" when it may have (or uses
 * something this reader does not follow: anchors, tags, explicit keys, several documents, a
 * quoted or flow value that spans lines, tabs). Only "none" is trusted, so it must be sound.
 */
export function sameKeys(text: string): "none" | "unsure" {
  const lines = text.split(/\r?\n/);
  const open: OpenMap[] = [];
  let blockParent = -1; // inside a block scalar: lines indented deeper than this are its content
  let nestedAllowed = true; // the last key had no value on its line, so a deeper mapping may follow
  for (const raw of lines) {
    const indent = raw.length - raw.trimStart().length;
    if (blockParent >= 0) {
      if (raw.trim() === "" || indent > blockParent) continue;
      blockParent = -1;
    }
    const line = withoutComment(raw);
    if (line === undefined) return "unsure";
    if (line.trim() === "") continue;
    if (/^\s*\t/.test(raw) || /^(---|\.\.\.|%)/.test(line)) return "unsure";
    let col = indent;
    let rest = line.slice(indent);
    let item = false;
    while (rest === "-" || rest.startsWith("- ")) {
      const after = rest.slice(1);
      const pad = after.length - after.trimStart().length;
      col += 1 + pad;
      rest = after.trimStart();
      item = true;
    }
    if (item) {
      while (open.length && open[open.length - 1]!.indent >= col) open.pop();
      nestedAllowed = true;
    }
    if (rest === "") continue;
    if (/^[&*!?|>@`%]/.test(rest)) return "unsure";
    const entry = keyAndValue(rest);
    if (entry === "unsure") return "unsure";
    if (entry === undefined) {
      // A scalar: a sequence item, or the continuation of a plain scalar.
      if (/^["'{[]/.test(rest) && scalarValue(rest) === "unsure") return "unsure";
      continue;
    }
    const [key, value] = entry;
    if (key === "<<") return "unsure";
    while (open.length && open[open.length - 1]!.indent > col) open.pop();
    const top = open[open.length - 1];
    let map: OpenMap;
    if (top && top.indent === col && !item) map = top;
    else {
      if (top && top.indent === col) open.pop();
      else if (top && !item && !nestedAllowed) return "unsure";
      map = { indent: col, keys: new Set() };
      open.push(map);
    }
    if (map.keys.has(key)) return "unsure";
    map.keys.add(key);
    const kind = scalarValue(value);
    if (kind === "unsure") return "unsure";
    nestedAllowed = kind === "empty";
    if (kind === "block") blockParent = col;
  }
  return "none";
}

/** The line without its comment; undefined when a quote is left open. */
function withoutComment(line: string): string | undefined {
  let quote = "";
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) {
        if (quote === "'" && line[i + 1] === "'") i++;
        else quote = "";
      } else if (c === "\\" && quote === '"') i++;
    } else if ((c === '"' || c === "'") && (i === 0 || /[\s\-:,[{]/.test(line[i - 1]!))) quote = c;
    else if (c === "#" && (i === 0 || /\s/.test(line[i - 1]!))) return line.slice(0, i).trimEnd();
  }
  return quote ? undefined : line.trimEnd();
}

/** A mapping entry's key and value text, undefined when the text is no mapping entry. */
function keyAndValue(rest: string): [string, string] | undefined | "unsure" {
  if (rest[0] === '"' || rest[0] === "'") {
    const q = rest[0];
    let i = 1;
    let key = "";
    for (; i < rest.length; i++) {
      if (rest[i] === q) {
        if (q === "'" && rest[i + 1] === "'") {
          key += "'";
          i++;
          continue;
        }
        break;
      }
      if (q === '"' && rest[i] === "\\") return "unsure";
      key += rest[i];
    }
    if (i >= rest.length) return "unsure";
    const after = rest.slice(i + 1);
    const m = /^\s*:(?:\s+(.*))?$/.exec(after);
    if (!m) return after.trim() === "" ? undefined : "unsure";
    return [key, m[1] ?? ""];
  }
  if (rest[0] === "{" || rest[0] === "[") return undefined;
  const m = /^([^\s].*?)\s*:(?:\s+(.*))?$/.exec(rest);
  if (!m) return undefined;
  // A plain key that is not a name (a number, null, true) may be read as another value by each parser.
  if (!/^[A-Za-z_][\w./-]*$/.test(m[1]!) || /^(null|true|false)$/i.test(m[1]!)) return "unsure";
  return [m[1]!, m[2] ?? ""];
}

/** What a value on a key's line is; "unsure" for a quoted or flow value that does not end on its line. */
function scalarValue(value: string): "empty" | "block" | "scalar" | "unsure" {
  const v = value.trim();
  if (v === "") return "empty";
  if (/^[|>][-+0-9]*$/.test(v)) return "block";
  if (/^[&*!]/.test(v)) return "unsure";
  if (v[0] === "{") return flowMapKeys(v) === "none" ? "scalar" : "unsure";
  if (v[0] === "[") return /^\[[^[\]{}"':]*\]$/.test(v) ? "scalar" : "unsure";
  return "scalar";
}

/** A one-line flow mapping of plain keys and values: "none" when its keys differ. */
function flowMapKeys(v: string): "none" | "unsure" {
  const m = /^\{([^{}[\]"']*)\}$/.exec(v);
  if (!m) return "unsure";
  const keys = new Set<string>();
  for (const part of m[1]!.split(",")) {
    if (part.trim() === "") continue;
    const i = part.indexOf(":");
    const key = (i < 0 ? part : part.slice(0, i)).trim();
    if (keys.has(key)) return "unsure";
    keys.add(key);
  }
  return "none";
}
