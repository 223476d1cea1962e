// scripts/test.sh's own rule for a `bun test` suite: a run that ends without bun's
// summary line counts as a failed suite. Checked on its bun_suite function with a
// test file that kills its own process, and one that passes.
import { expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";

test("a suite that crashes before bun's summary line is a failed suite, not 0 failed", () => {
  const dir = mkdtempSync(join(tmpdir(), "suite-"));
  writeFileSync(join(dir, "crash.test.ts"), 'import { test } from "bun:test";\ntest("dies", () => process.exit(3));\n');
  writeFileSync(join(dir, "ok.test.ts"), 'import { expect, test } from "bun:test";\ntest("ok", () => expect(1).toBe(1));\n');
  const script = `TEST_SH_FUNCTIONS_ONLY=1 source scripts/test.sh
bun_suite packaging "${dir}/crash.log" "${dir}/crash.test.ts" >/dev/null
bun_suite faults "${dir}/ok.log" "${dir}/ok.test.ts" >/dev/null
echo "passed=$passed failed=$failed failed-suites=\${suites_failed[*]}"`;
  const r = Bun.spawnSync(["bash", "-c", script], { cwd: join(import.meta.dir, ".."), env: { ...process.env, PATH: `${join(process.execPath, "..")}:${process.env.PATH}` }, stdout: "pipe", stderr: "pipe" });
  expect({ code: r.exitCode, out: r.stdout.toString().trim() }).toEqual({ code: 0, out: "passed=1 failed=1 failed-suites=packaging" });
});

test("the end of the run names each failed test, from bun's and go's logs", () => {
  const dir = mkdtempSync(join(tmpdir(), "suite-"));
  writeFileSync(join(dir, "bun.log"), "(pass) view > keeps order [0.20ms]\n(fail) view > drops nothing [12.50ms]\n(fail) metrics > scrape\n 1 pass\n 2 fail\n");
  writeFileSync(join(dir, "go.log"), "=== RUN   TestA\n--- PASS: TestA (0.01s)\n    --- FAIL: TestB/sub_one (1.20s)\n--- FAIL: TestB (1.30s)\n");
  const script = `TEST_SH_FUNCTIONS_ONLY=1 source scripts/test.sh
failing_tests "${dir}/bun.log"; failing_tests "${dir}/go.log"; failing_tests "${dir}/absent.log"`;
  const r = Bun.spawnSync(["bash", "-c", script], { cwd: join(import.meta.dir, ".."), stdout: "pipe", stderr: "pipe" });
  expect({ code: r.exitCode, out: r.stdout.toString().trim().split("\n") }).toEqual({
    code: 0,
    out: ["metrics > scrape", "view > drops nothing", "TestB", "TestB/sub_one"],
  });
});
