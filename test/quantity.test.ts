import { describe, expect, test } from "bun:test";
import {
  GiB,
  MiB,
  formatBytes,
  formatCount,
  formatCpuMillis,
  isValidQuantity,
  parseBytes,
  parseCpuMillis,
  parseQuantity,
} from "../src/quantity";

// A strict re-statement of Go's resource.ParseQuantity grammar, used to check
// that everything we emit would be accepted (independent of our own parser).
const GO_QUANTITY = /^[+-]?(\d+|\d+\.\d*|\.\d+)([KMGTPE]i|[eE][+-]?\d+|[numkMGTPE]?)$/;

describe("formatCpuMillis", () => {
  const cases: Array<[number, string]> = [
    [0, "0"],
    [1, "1m"],
    [50, "50m"],
    [999, "999m"],
    [1000, "1"],
    [1001, "1001m"],
    [3920, "3920m"],
    [4000, "4"],
    [96000, "96"],
    [95_750, "95750m"],
    [-5, "0"],
    [1500.7, "1500m"],
  ];
  for (const [millis, want] of cases) {
    test(`${millis} → ${want}`, () => {
      const got = formatCpuMillis(millis);
      expect(got).toBe(want);
      expect(got).toMatch(GO_QUANTITY);
      expect(parseCpuMillis(got)).toBe(Math.max(0, Math.floor(millis)));
    });
  }
  test("rejects NaN and Infinity", () => {
    expect(() => formatCpuMillis(Number.NaN)).toThrow();
    expect(() => formatCpuMillis(Number.POSITIVE_INFINITY)).toThrow();
  });
});

describe("formatBytes", () => {
  const cases: Array<[number, string]> = [
    [0, "0"],
    [1, "1"],
    [1000, "1000"],
    [1023, "1023"],
    [1024, "1Ki"],
    [1536, "1536"],
    [1536 * 1024, "1536Ki"],
    [1025, "1025"],
    [100 * MiB, "100Mi"],
    [1024 * MiB, "1Gi"],
    [7780 * MiB, "7780Mi"],
    [8 * GiB, "8Gi"],
    [8 * GiB + 512, "8589935104"],
    [192 * GiB, "192Gi"],
    [1024 * GiB, "1Ti"],
    [1536 * GiB, "1536Gi"],
    [1024 ** 5, "1Pi"],
    [1024 ** 6, "1Ei"],
    [123456789, "123456789"],
    [1e9, "1000000000"],
    [-1, "0"],
    [2048.9, "2Ki"],
  ];
  for (const [bytes, want] of cases) {
    test(`${bytes} → ${want}`, () => {
      const got = formatBytes(bytes);
      expect(got).toBe(want);
      expect(got).toMatch(GO_QUANTITY);
      expect(parseBytes(got)).toBe(Math.max(0, Math.floor(bytes)));
    });
  }
});

describe("formatCount", () => {
  test.each([
    [0, "0"],
    [1, "1"],
    [110, "110"],
    [-3, "0"],
  ])("%p → %p", (n, want) => {
    expect(formatCount(n)).toBe(want);
    expect(formatCount(n)).toMatch(GO_QUANTITY);
  });
});

describe("parsing", () => {
  const cpu: Array<[string, number]> = [
    ["500m", 500],
    ["1", 1000],
    ["0.1", 100],
    ["0.5", 500],
    [".5", 500],
    ["1.", 1000],
    ["2.25", 2250],
    ["+1", 1000],
    ["1e3", 1_000_000],
    ["1E3", 1_000_000],
    ["1e-3", 1],
    ["100u", 1], // rounds up like MilliValue
    ["1n", 1],
    ["250000u", 250],
    ["1k", 1_000_000],
    ["0", 0],
    ["0m", 0],
    ["1.0001", 1001], // rounds up
    ["-1", -1000],
  ];
  for (const [s, want] of cpu) {
    test(`cpu ${s} → ${want}m`, () => expect(parseCpuMillis(s)).toBe(want));
  }

  const bytes: Array<[string, number]> = [
    ["128Mi", 128 * MiB],
    ["1Gi", GiB],
    ["1.5Gi", 1.5 * GiB],
    ["1G", 1e9],
    ["1M", 1e6],
    ["1k", 1000],
    ["1Ki", 1024],
    ["1e3", 1000],
    ["1E6", 1e6],
    ["1e+3", 1000],
    ["123", 123],
    ["0.5", 1], // rounds up like Value()
    ["100m", 1],
    ["1000m", 1],
    ["1Ti", 1024 ** 4],
    ["2Pi", 2 * 1024 ** 5],
    ["1P", 1e15],
    ["1E", 1e18], // exa, not an exponent
    ["7780Mi", 7780 * MiB],
  ];
  for (const [s, want] of bytes) {
    test(`bytes ${s} → ${want}`, () => expect(parseBytes(s)).toBe(want));
  }

  test("parseQuantity gives base units", () => {
    expect(parseQuantity("500m")).toBe(0.5);
    expect(parseQuantity("128Mi")).toBe(134217728);
    expect(parseQuantity("1e3")).toBe(1000);
    expect(parseQuantity("1.5")).toBe(1.5);
  });

  const invalid = ["", " 1", "1 ", "Mi", "1mi", "1KI", "1Kb", "1.2.3", ".", "+", "-", "1e", "1e1.5", "e3", "1Gi1", "abc", "1_000", "0x10", "1m2"];
  for (const s of invalid) {
    test(`invalid ${JSON.stringify(s)}`, () => {
      expect(isValidQuantity(s)).toBe(false);
      expect(() => parseQuantity(s)).toThrow();
      expect(() => parseCpuMillis(s)).toThrow();
      expect(() => parseBytes(s)).toThrow();
    });
  }
});

test("formatting round-trips over a wide range", () => {
  for (let i = 0; i < 2000; i++) {
    const bytes = Math.floor(Math.random() * 2 ** 40) * (i % 3 === 0 ? 1024 : 1);
    const s = formatBytes(bytes);
    expect(s).toMatch(GO_QUANTITY);
    expect(parseBytes(s)).toBe(bytes);
    const millis = Math.floor(Math.random() * 200_000);
    const c = formatCpuMillis(millis);
    expect(c).toMatch(GO_QUANTITY);
    expect(parseCpuMillis(c)).toBe(millis);
  }
});
