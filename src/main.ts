#!/usr/bin/env bun
// autoscaler-cloudscale: the command line. Each sub-command lives in cli.ts.
import { main } from "./cli";

main(process.argv.slice(2)).then(
  (code) => {
    if (typeof code === "number") process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`autoscaler-cloudscale: ${(e as Error)?.message ?? String(e)}\n`);
    process.exit(1);
  },
);
