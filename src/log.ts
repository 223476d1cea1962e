// Structured logging to stderr. Every line passes through redact(), so a
// registered secret (the API token) can never reach the log, at any level.

export type LogLevel = "debug" | "info" | "warn" | "error";
const levels: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

let minLevel = levels.info;
let format: "text" | "json" = "text";
const secrets = new Set<string>();

export function configureLog(opts: { level?: LogLevel; format?: "text" | "json" }): void {
  if (opts.level) minLevel = levels[opts.level];
  if (opts.format) format = opts.format;
}

/** Registers a value that must never appear in any output. */
export function registerSecret(value: string | undefined): void {
  if (value && value.length >= 4) secrets.add(value);
}

export function redact(text: string): string {
  let out = text;
  for (const s of secrets) if (out.includes(s)) out = out.split(s).join("[REDACTED]");
  return out;
}

type Fields = Record<string, unknown>;

function render(level: LogLevel, msg: string, fields: Fields): string {
  const time = new Date().toISOString();
  if (format === "json") {
    return JSON.stringify({ time, level, msg, ...fields }, (_k, v) => (v instanceof Error ? v.message : v));
  }
  let line = `${time} ${level.toUpperCase().padEnd(5)} ${msg}`;
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    const s = v instanceof Error ? v.message : typeof v === "string" ? v : JSON.stringify(v);
    line += ` ${k}=${/[\s"=]/.test(s) ? JSON.stringify(s) : s}`;
  }
  return line;
}

function emit(level: LogLevel, msg: string, fields: Fields = {}): void {
  if (levels[level] < minLevel) return;
  process.stderr.write(redact(render(level, msg, fields)) + "\n");
}

export const log = {
  debug: (msg: string, fields?: Fields) => emit("debug", msg, fields),
  info: (msg: string, fields?: Fields) => emit("info", msg, fields),
  warn: (msg: string, fields?: Fields) => emit("warn", msg, fields),
  error: (msg: string, fields?: Fields) => emit("error", msg, fields),
  enabled: (level: LogLevel) => levels[level] >= minLevel,
};
