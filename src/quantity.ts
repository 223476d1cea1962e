// Kubernetes resource quantities: formatting the strings we put into a template
// Node and parsing the strings we read from Pods.
//
// Every string emitted here must be accepted by Go's resource.ParseQuantity:
// Cluster Autoscaler's decoder fails the whole Node on one bad Quantity. The
// grammar (k8s.io/apimachinery pkg/api/resource/quantity.go) is
//
//   <quantity>        ::= <signedNumber><suffix>
//   <signedNumber>    ::= <number> | <sign><number>
//   <sign>            ::= "+" | "-"
//   <number>          ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
//   <suffix>          ::= <binarySI> | <decimalExponent> | <decimalSI>
//   <binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei
//   <decimalSI>       ::= n | u | m | "" | k | M | G | T | P | E
//   <decimalExponent> ::= "e" <signedNumber> | "E" <signedNumber>
//
// We only ever emit three shapes, all well inside that grammar: a plain
// non-negative integer ("4", "110", "123456789"), an integer with "m"
// ("3920m"), or an integer with a binary suffix ("8Gi", "7780Mi", "512Ki").

const KI = 1024n;
const BINARY_SUFFIXES: ReadonlyArray<readonly [string, bigint]> = [
  ["Ei", KI ** 6n],
  ["Pi", KI ** 5n],
  ["Ti", KI ** 4n],
  ["Gi", KI ** 3n],
  ["Mi", KI ** 2n],
  ["Ki", KI],
];

const DECIMAL_SI_EXPONENT: Record<string, number> = {
  n: -9,
  u: -6,
  m: -3,
  "": 0,
  k: 3,
  M: 6,
  G: 9,
  T: 12,
  P: 15,
  E: 18,
};

const BINARY_SI_POWER: Record<string, bigint> = {
  Ki: KI,
  Mi: KI ** 2n,
  Gi: KI ** 3n,
  Ti: KI ** 4n,
  Pi: KI ** 5n,
  Ei: KI ** 6n,
};

export const KiB = 1024;
export const MiB = 1024 * 1024;
export const GiB = 1024 * 1024 * 1024;

function toNonNegativeInteger(value: number, what: string): bigint {
  if (!Number.isFinite(value)) throw new Error(`cannot format ${what}: ${value} is not a finite number`);
  if (value <= 0) return 0n;
  return BigInt(Math.floor(value));
}

/** CPU in millicores → "4" when a whole number of cores, else "3920m". Negative → "0"; fractions of a millicore are dropped. */
export function formatCpuMillis(millis: number): string {
  const m = toNonNegativeInteger(millis, "CPU millicores");
  if (m % 1000n === 0n) return (m / 1000n).toString();
  return `${m}m`;
}

/**
 * Bytes → the binary-SI form Kubernetes itself uses for memory: the largest of
 * Ei/Pi/Ti/Gi/Mi/Ki that divides the value exactly ("8Gi", "7780Mi", "1536Ki"),
 * else the plain integer ("1000"). Negative → "0"; fractions of a byte are dropped.
 */
export function formatBytes(bytes: number): string {
  const b = toNonNegativeInteger(bytes, "bytes");
  if (b === 0n) return "0";
  for (const [suffix, size] of BINARY_SUFFIXES) {
    if (b % size === 0n) return `${b / size}${suffix}`;
  }
  return b.toString();
}

/** A plain count (pods, GPUs) → "110". Negative → "0". */
export function formatCount(n: number): string {
  return toNonNegativeInteger(n, "count").toString();
}

/** An exact rational value num/den (den > 0). */
interface Rational {
  num: bigint;
  den: bigint;
}

const NUMBER_RE = /^([+-]?)(\d*)(?:\.(\d*))?/;

/** Parses a quantity string into an exact rational number of base units (cores or bytes). Throws on invalid input. */
function parseRational(input: string): Rational {
  if (typeof input !== "string" || input.length === 0) throw new Error("quantity is empty");
  const m = NUMBER_RE.exec(input);
  if (!m) throw new Error(`invalid quantity "${input}"`);
  const [whole, sign, intPart = "", fracPart] = m;
  if (intPart.length === 0 && (fracPart === undefined || fracPart.length === 0)) {
    throw new Error(`invalid quantity "${input}": no digits`);
  }
  const digits = intPart + (fracPart ?? "");
  let num = BigInt(digits.length === 0 ? "0" : digits);
  let den = 10n ** BigInt((fracPart ?? "").length);
  if (sign === "-") num = -num;

  const suffix = input.slice(whole.length);
  if (suffix in BINARY_SI_POWER) {
    num *= BINARY_SI_POWER[suffix]!;
  } else if (suffix in DECIMAL_SI_EXPONENT) {
    const e = DECIMAL_SI_EXPONENT[suffix]!;
    if (e >= 0) num *= 10n ** BigInt(e);
    else den *= 10n ** BigInt(-e);
  } else if (/^[eE][+-]?\d+$/.test(suffix)) {
    const e = Number.parseInt(suffix.slice(1), 10);
    if (Math.abs(e) > 1000) throw new Error(`invalid quantity "${input}": exponent out of range`);
    if (e >= 0) num *= 10n ** BigInt(e);
    else den *= 10n ** BigInt(-e);
  } else {
    throw new Error(`invalid quantity "${input}": unknown suffix "${suffix}"`);
  }
  return { num, den };
}

function ceilDiv(a: bigint, b: bigint): bigint {
  // b > 0
  const q = a / b;
  return a % b !== 0n && a > 0n ? q + 1n : q;
}

/** Parses a quantity to a (floating-point) number of base units: "500m" → 0.5, "128Mi" → 134217728, "1e3" → 1000. */
export function parseQuantity(input: string): number {
  const { num, den } = parseRational(input);
  return Number(num) / Number(den);
}

/** True when Go's resource.ParseQuantity would accept the string (as far as this grammar goes). */
export function isValidQuantity(input: string): boolean {
  try {
    parseRational(input);
    return true;
  } catch {
    return false;
  }
}

/** A CPU quantity in millicores, rounded up like Go's Quantity.MilliValue(): "500m" → 500, "1" → 1000, "0.1" → 100, "1u" → 1. */
export function parseCpuMillis(input: string): number {
  const { num, den } = parseRational(input);
  return Number(ceilDiv(num * 1000n, den));
}

/** A memory/storage quantity in bytes, rounded up like Go's Quantity.Value(): "128Mi" → 134217728, "1G" → 1e9, "1.5Ki" → 1536. */
export function parseBytes(input: string): number {
  const { num, den } = parseRational(input);
  return Number(ceilDiv(num, den));
}
