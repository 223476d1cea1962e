// The configuration file's schema problems as the file's paths and plain sentences
// (`nodeGroups[1].flavor: is required`), and parsing one mapping so that the settings that are
// right still count when others are wrong: config.ts reports every problem in one round.
import * as v from "valibot";

/** The first key of an issue's path: the setting that is wrong, or undefined for the value as a whole. */
function firstKey(issue: v.BaseIssue<unknown>): string | undefined {
  const key = (issue.path?.[0] as { key: unknown } | undefined)?.key;
  return typeof key === "string" ? key : undefined;
}

/**
 * Parses a mapping with a strict object schema. On failure it also returns what the settings
 * that are right say (the wrong ones left out), so the checks that read only those still run:
 * every problem of the file is found in one round, not schema problems first and the rest
 * after they are fixed. `value` is undefined when the input is not a mapping at all.
 */
export function parseSettings<T extends v.ObjectEntries>(
  schema: v.StrictObjectSchema<T, undefined>,
  input: unknown,
  prefix: string,
): { value: Partial<v.InferOutput<v.StrictObjectSchema<T, undefined>>> | undefined; complete: boolean; problems: string[] } {
  const r = v.safeParse(schema, input, { abortEarly: false });
  if (r.success) return { value: r.output, complete: true, problems: [] };
  const problems = r.issues.map((i) => describeIssue(i, prefix));
  if (input === null || typeof input !== "object" || Array.isArray(input)) return { value: undefined, complete: false, problems };
  const wrong = new Set(r.issues.map(firstKey));
  if (wrong.has(undefined)) return { value: undefined, complete: false, problems };
  const right = Object.fromEntries(Object.entries(input).filter(([k]) => !wrong.has(k)));
  const partial = v.safeParse(v.partial(schema), right, { abortEarly: false });
  return { value: partial.success ? (partial.output as Partial<v.InferOutput<v.StrictObjectSchema<T, undefined>>>) : undefined, complete: false, problems };
}

/** An issue's path in the file; `prefix` is where the parsed value sits (an entry: `nodeGroups[2]`). */
function issuePath(issue: v.BaseIssue<unknown>, prefix = ""): string {
  const parts = issue.path ?? [];
  let out = prefix;
  for (const item of parts) {
    const key = (item as { key: unknown }).key;
    if (typeof key === "number") out += `[${key}]`;
    else out += out ? `.${String(key)}` : String(key);
  }
  return out || "(top level)";
}

function describeIssue(issue: v.BaseIssue<unknown>, prefix = ""): string {
  const path = issuePath(issue, prefix);
  if (issue.kind === "schema" && issue.type === "strict_object" && issue.input !== undefined && issue.expected === "never") {
    return `${path}: unknown setting (check the spelling)`;
  }
  if (issue.received === "undefined") return `${path}: ${issue.message.startsWith("Invalid") ? "is required" : issue.message}`;
  const msg = issue.message.startsWith("Invalid ")
    ? `expected ${issue.expected ?? "a different value"}, got ${issue.received}`
    : issue.message;
  return `${path}: ${msg}`;
}

