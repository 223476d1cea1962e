#!/usr/bin/env bun
// autoscaler-cloudscale: the command line. Each sub-command lives in cli.ts.
import { main } from "./cli";
import { log } from "./log";

// Bun ends the process on a rejection nobody handles. Every promise the provider starts ends in
// a catch (the linter checks it); should one slip through all the same, log it and go on rather
// than die with creations in flight.
process.on("unhandledRejection", (reason) => {
  log.error("a promise was rejected and nothing handled it; going on", {
    error: reason instanceof Error ? reason.message : String(reason),
    stack: reason instanceof Error ? reason.stack?.split("\n").slice(0, 4).join(" | ") : undefined,
  });
});

main(process.argv.slice(2)).then(
  (code) => {
    if (typeof code === "number") process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`autoscaler-cloudscale: ${(e as Error)?.message ?? String(e)}\n`);
    process.exit(1);
  },
);
