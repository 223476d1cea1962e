// `sim` sub-command: run the cloudscale.ch API simulator until SIGTERM/SIGINT.

import { startSimulator, type SimulatorOptions } from "./server.ts";
import type { SeedData } from "./records.ts";

const USAGE = `Usage: autoscaler-cloudscale sim [flags]

Runs a cloudscale.ch API simulator (API under /v1, control API under /_sim/) until SIGTERM or SIGINT.

Flags:
  --listen HOST:PORT        address to listen on (default 127.0.0.1:8088; port 0 = any free port)
  --token TOKEN             accept only this bearer token (default: any non-empty token)
  --boot-seconds N          seconds a new server stays "changing" before "running" (default 5)
  --action-seconds N        seconds start/stop/reboot stay "changing" (default 2)
  --quota-servers N         max servers in the account (default unlimited)
  --quota-vcpus N           max vCPUs in the account (default unlimited)
  --quota-memory-gb N       max memory in GB in the account (default unlimited)
  --seed FILE               JSON with extra {flavors, images, customImages, networks, servers, quota}
  --rng-seed N              seed of the fault-injection random source (default 1)
  --log-requests            log one line per API request to stderr
  --help                    show this help
`;

function usageError(msg: string): void {
  process.stderr.write(`sim: ${msg}\nRun "sim --help" for usage.\n`);
  process.exitCode = 2;
}

/** Parses flags, starts the simulator, prints one line to stdout, and resolves after SIGTERM/SIGINT.
 *  On bad flags it writes to stderr, sets process.exitCode = 2 and resolves at once. */
export async function runSimCommand(argv: string[]): Promise<void> {
  const opts: SimulatorOptions = { listen: "127.0.0.1:8088" };
  let seedFile: string | undefined;

  for (let i = 0; i < argv.length; i++) {
    const raw = argv[i]!;
    const eq = raw.startsWith("--") ? raw.indexOf("=") : -1;
    const flag = eq > 0 ? raw.slice(0, eq) : raw;
    const inline = eq > 0 ? raw.slice(eq + 1) : undefined;
    const value = (): string | undefined => {
      if (inline !== undefined) return inline;
      const v = argv[i + 1];
      if (v === undefined || v.startsWith("--")) return undefined;
      i++;
      return v;
    };
    const need = (): string | null => {
      const v = value();
      if (v === undefined) {
        usageError(`${flag} needs a value`);
        return null;
      }
      return v;
    };
    const num = (min: number, integer: boolean): number | null => {
      const v = need();
      if (v === null) return null;
      const n = Number(v);
      if (v.trim() === "" || !Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
        usageError(`${flag} needs ${integer ? "an integer" : "a number"} >= ${min}, got "${v}"`);
        return null;
      }
      return n;
    };

    switch (flag) {
      case "--help":
      case "-h":
        process.stdout.write(USAGE);
        return;
      case "--listen": {
        const v = need();
        if (v === null) return;
        opts.listen = v;
        break;
      }
      case "--token": {
        const v = need();
        if (v === null) return;
        if (v.trim() === "") return usageError("--token must not be empty");
        opts.token = v;
        break;
      }
      case "--boot-seconds": {
        const n = num(0, false);
        if (n === null) return;
        opts.bootSeconds = n;
        break;
      }
      case "--action-seconds": {
        const n = num(0, false);
        if (n === null) return;
        opts.actionSeconds = n;
        break;
      }
      case "--quota-servers":
      case "--quota-vcpus":
      case "--quota-memory-gb": {
        const n = num(0, true);
        if (n === null) return;
        const k = flag === "--quota-servers" ? "servers" : flag === "--quota-vcpus" ? "vcpus" : "memoryGb";
        opts.quota = { ...opts.quota, [k]: n };
        break;
      }
      case "--seed": {
        const v = need();
        if (v === null) return;
        seedFile = v;
        break;
      }
      case "--rng-seed": {
        const n = num(0, true);
        if (n === null) return;
        opts.rngSeed = n;
        break;
      }
      case "--log-requests":
        opts.log = (line) => process.stderr.write(`sim: ${line}\n`);
        break;
      default:
        return usageError(`unknown flag ${raw}`);
    }
  }

  if (seedFile !== undefined) {
    try {
      opts.seed = JSON.parse(await Bun.file(seedFile).text()) as SeedData;
    } catch (e) {
      return usageError(`cannot read seed file ${seedFile}: ${(e as Error).message}`);
    }
  }
  // Command-line quota wins over the seed file's.
  if (opts.seed?.quota && opts.quota) opts.seed = { ...opts.seed, quota: { ...opts.seed.quota, ...opts.quota } };

  let sim;
  try {
    sim = await startSimulator(opts);
  } catch (e) {
    process.stderr.write(`sim: ${(e as Error).message}\n`);
    process.exitCode = 1;
    return;
  }
  process.stdout.write(`sim: listening on ${sim.origin} (API base ${sim.apiUrl})\n`);

  await new Promise<void>((resolve) => {
    const onSignal = () => {
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
      resolve();
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });
  await sim.stop();
}

if (import.meta.main) {
  await runSimCommand(process.argv.slice(2));
}
