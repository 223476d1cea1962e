// Compiles the product into one executable:
//   bun run scripts/build.ts [--target bun-linux-x64|bun-linux-arm64] [--outfile dist/NAME]
// Version and commit are baked in. The compiled binary must not read a stray
// .env or bunfig.toml from the directory it is started in.
import { $ } from "bun";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    target: { type: "string" },
    outfile: { type: "string", default: "dist/autoscaler-cloudscale" },
  },
});

const pkg = await Bun.file(new URL("../package.json", import.meta.url)).json();
const commit = (await $`git rev-parse --short=12 HEAD`.nothrow().quiet().text()).trim() || "unknown";
const dirty = (await $`git status --porcelain`.nothrow().quiet().text()).trim() !== "";
const commitLabel = dirty && commit !== "unknown" ? `${commit}-dirty` : commit;

const args = [
  "build",
  "--compile",
  "--minify-syntax",
  // Precompiled bytecode: the runtime skips parsing the bundle at start (about 40 ms of the
  // ~100 ms budget on a 2-core machine; bench/README.md). Bytecode needs ESM here because
  // src/sim/cli.ts uses a top-level await.
  "--bytecode",
  "--format=esm",
  // Every `await import()` becomes its own chunk inside the executable, loaded (Node built-ins
  // included) only by the sub-command that imports it: serve does not evaluate the simulator,
  // check, demo, connect-node's zlib or prom-client's process metrics at start.
  "--splitting",
  "--no-compile-autoload-dotenv",
  "--no-compile-autoload-bunfig",
  `--define=BUILD_VERSION=${JSON.stringify(pkg.version)}`,
  `--define=BUILD_COMMIT=${JSON.stringify(commitLabel)}`,
  `--outfile=${values.outfile}`,
];
if (values.target) args.push(`--target=${values.target}`);
args.push("src/main.ts");

const started = performance.now();
const proc = Bun.spawn([process.execPath, ...args], { stdout: "inherit", stderr: "inherit" });
const code = await proc.exited;
if (code !== 0) {
  console.error(`build: bun build failed with exit code ${code}`);
  process.exit(code);
}
const size = Bun.file(values.outfile!).size;
console.error(
  `build: ${values.outfile} (${values.target ?? "host"}) ${(size / 1048576).toFixed(1)} MiB, version ${pkg.version}, commit ${commitLabel}, ${((performance.now() - started) / 1000).toFixed(1)} s`,
);
