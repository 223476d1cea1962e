// Durations in the configuration ("90s", "15m", "1h30m", "500ms" or bare seconds) and their schema:
// a lower bound below which a setting breaks the provider, with why, and none longer than a timer holds.
import * as v from "valibot";

/** "90s", "15m", "1h30m", "500ms" -> seconds. Bare numbers are seconds. */
export function parseDuration(text: string): number | undefined {
  const s = text.trim();
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let total = 0;
  let consumed = 0;
  for (const m of s.matchAll(re)) {
    if (m.index !== consumed) return undefined;
    consumed += m[0].length;
    const n = Number(m[1]);
    total += m[2] === "ms" ? n / 1000 : m[2] === "s" ? n : m[2] === "m" ? n * 60 : n * 3600;
  }
  return consumed === s.length && s.length > 0 ? total : undefined;
}

/** The longest wait a timer can hold (2^31-1 ms, about 24 days); a longer one would fire at once. */
const MAX_DURATION_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

/** A duration in seconds, at least `min` (with the reason a shorter one breaks things). */
export function duration(min = 0, why = "") {
  return v.pipe(
    v.union([v.string(), v.number()], "must be a duration such as 90s, 10m or 1h"),
    v.transform((x) => (typeof x === "number" ? x : parseDuration(x) ?? Number.NaN)),
    v.check((n) => Number.isFinite(n) && n >= 0, "must be a duration such as 90s, 10m or 1h"),
    v.check((n) => n >= min, `must be at least ${min}s${why ? `: ${why}` : ""}`),
    v.check((n) => n <= MAX_DURATION_SECONDS, `must be at most ${MAX_DURATION_SECONDS}s (about 24 days)`),
  );
}
