// Sub-commands: serve, status, validate, check, template, convert, cleanup, adopt, sim, demo,
// version. Every one has --help; unknown flags and missing values are reported plainly. What
// only one other sub-command uses (check, validate, template, sim, demo, convert, cleanup,
// adopt) is imported by it, so that serve does not load it at start.
import { UsageError, help, parse } from "./cli-args";
import { apiSettings } from "./api-settings";
import { ConfigError, loadConfigFile, parseDuration } from "./config";
import { configureLog, log, registerSecret, type LogLevel } from "./log";
import { CHECK_GROUP, GROUP_TAG } from "./types";
import { commit, version } from "./version";
import type { ProviderConfig } from "./types";
import { isLoopback, startGrpcServer, startHealthServer } from "./server";
import { routes } from "./service";
import { createProvider } from "./provider";
import { createClient } from "./cloudscale";
import { apiMetrics, reconcilerMetrics, startMetrics, viewMetrics } from "./metrics";
import { DEFAULT_HEALTH, StatusError, fetchStatus, renderStatus, statusReport, statusUrl } from "./status";

const USAGE = `autoscaler-cloudscale ${version} — Cluster Autoscaler externalgrpc provider for cloudscale.ch

Usage: autoscaler-cloudscale <command> [flags]

Commands:
  serve      Serve the CloudProvider gRPC API that Cluster Autoscaler calls
  status     Show a running provider's node groups, servers, held creations and last errors
  validate   Check a configuration file (and, with an API token, the flavors, images and zones it names)
  check      Before enabling autoscaling: create and delete one small server per zone (--live --yes)
  template   Print the template node CA will simulate for a node group
  cleanup    Delete this cluster's servers that are in no configured node group (explains first; --yes)
  convert    Convert a kubeterm-sh/autoscaler-cloudscale configuration into this provider's
  adopt      Take over the servers of kubeterm-sh/autoscaler-cloudscale by re-tagging them (--yes)
  sim        Run the built-in cloudscale.ch API simulator (for tests and trying things out)
  demo       Simulator + provider + a scripted autoscaler: scale a group from zero for 50 pods, then back
  version    Print the version and commit

Run 'autoscaler-cloudscale <command> --help' for a command's flags.
Environment: CLOUDSCALE_API_TOKEN (or --token-file), CLOUDSCALE_API_URL (default https://api.cloudscale.ch/v1).
`;

const SERVE_USAGE = `Usage: autoscaler-cloudscale serve --config FILE [flags]

Serves Cluster Autoscaler's externalgrpc CloudProvider API over gRPC (HTTP/2).
By default with mutual TLS: the client (CA) must present a certificate signed by --tls-client-ca.

Flags:
  --config FILE            the provider configuration (YAML)                       [required]
  --listen HOST:PORT       where to serve gRPC                                      [default 0.0.0.0:8086]
  --tls-cert FILE          server certificate (PEM); its SANs must match the host in CA's cloud-config address
  --tls-key FILE           server private key (PEM)
  --tls-client-ca FILE     CA bundle that signs CA's client certificate (PEM)
  --insecure-plaintext     serve h2c without TLS (only for loopback or a trusted pod network)
  --health-listen HOST:PORT  serve /healthz, /readyz, /metrics and /status over plain HTTP  [default off]
  --token-file FILE        read the API token from FILE instead of CLOUDSCALE_API_TOKEN
  --shutdown-grace SECONDS how long SIGTERM waits for in-flight calls               [default 20]
  --log-level LEVEL        debug, info, warn or error                               [default info]
  --log-format FORMAT      text or json                                             [default text]
  -h, --help               show this help

Certificates are re-read when their files change; no restart is needed after a rotation.
--listen, --health-listen, --log-level and --log-format fall back to AUTOSCALER_CLOUDSCALE_LISTEN,
AUTOSCALER_CLOUDSCALE_HEALTH_LISTEN, AUTOSCALER_CLOUDSCALE_LOG_LEVEL and AUTOSCALER_CLOUDSCALE_LOG_FORMAT
(for Talos, where the arguments are fixed in the extension and the environment comes from its config).
`;

const VALIDATE_USAGE = `Usage: autoscaler-cloudscale validate --config FILE [--token-file FILE] [--offline]

Checks the configuration: every problem is listed with its path. Prints the node groups CA
will see (an entry with flavors/zones lists expands into one group per flavor × zone).
With an API token (CLOUDSCALE_API_TOKEN or --token-file) it also checks against the API, for
every node group: the zone exists, the flavor exists and is offered in the zone, the image
exists and is available in the zone, a Talos machine configuration goes to a custom image with
user_data_handling pass-through, the server groups exist (by UUID), are in the zone and have
room for the group's max. It also lists this cluster's servers that are in no node group of the
file (a group renamed or removed): they are billed and CA does not see them ('cleanup' deletes
them). --offline skips all of that.
Exit code 0 when valid, 1 when not (servers in no node group alone do not make it 1).
`;

const TEMPLATE_USAGE = `Usage: autoscaler-cloudscale template --config FILE [GROUP...] [--output yaml|json] [--token-file FILE]

Prints the template node CA simulates a new node of a group with: capacity, allocatable
(capacity minus reservations and eviction thresholds), labels and taints. GROUP is a node
group's name, or an entry's name for all the groups it expands to; none means every group.
One group prints as a Node; several as a YAML stream of Nodes (JSON: a v1 List).
Flavor details come from the API when a token is set, else from the flavor slug
(flex-<memGB>-<vCPUs>, plus-…; GPU flavors need the API).
`;

const STATUS_USAGE = `Usage: autoscaler-cloudscale status [--health URL|HOST:PORT] [--json]

Asks a running provider (its health listener's /status) and prints one table, a line per node
group: flavor, zone, min/target/max, servers by state (running, creating, deleting, failed),
accepted creations not yet confirmed (pending) and those held back (held), the view's age, and
the group's last error with its time. Below the table: why creations are held, and the last
failed list of servers, if any.

Flags:
  --health URL|HOST:PORT   the provider's --health-listen address     [default AUTOSCALER_CLOUDSCALE_HEALTH_LISTEN, else ${DEFAULT_HEALTH}]
  --json                   print the raw JSON answer instead of the table
  -h, --help               show this help

Exit code 0 when the provider answered (ready or not), 1 when it cannot be reached.
`;

const CHECK_USAGE = `Usage: autoscaler-cloudscale check --config FILE --live [--yes] [flags]

For an operator with a real API token, before enabling autoscaling: proves that the account and
the API behave as the provider expects. In each zone the configuration names it creates one
server of the smallest flavor offered there (the zone's first node group's image and root volume,
no user-data), tagged as the provider's (cluster tag, group tag "${CHECK_GROUP}"), waits until it
runs, finds it through the provider's own tag-filtered list, deletes it and waits until it is gone.
It prints each step's time and every API answer that differs from what the provider expects
(error shapes, status names, units). On every path, Ctrl-C included, it deletes what it created;
servers an earlier, killed check left (group "${CHECK_GROUP}") are deleted too.

Without --yes it only reads (flavors, the provider's list) and explains what it would do: no
server is created, nothing costs anything.

Flags:
  --config FILE            the provider configuration (YAML)                       [required]
  --live                   talk to the real API (this command has no offline mode) [required]
  --yes                    really create and delete the servers
  --image SLUG             image of the servers             [default: the zone's first node group's]
  --wait-running DURATION  how long to wait for a server to run                    [default 5m]
  --wait-delete DURATION   how long to keep deleting (the API refuses while changing) [default 5m]
  --poll DURATION          how often to ask the API while waiting                  [default 2s]
  --token-file FILE        read the API token from FILE instead of CLOUDSCALE_API_TOKEN
  -h, --help               show this help

Exit code 0 when every step passed and every answer was as expected, 1 when not (or when a
server could not be deleted: the last line names it), 130 when interrupted (after cleaning up).
`;

const VERSION_USAGE = `Usage: autoscaler-cloudscale version\n\nPrints the version and the commit it was built from.\n`;

function splitHostPort(value: string, flag: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]*):(\d{1,5})$/.exec(value);
  if (!m || Number(m[2]) > 65535) throw new UsageError(`${flag} must be HOST:PORT (got "${value}")`);
  return { host: m[1]!.replace(/^\[|\]$/g, "") || "0.0.0.0", port: Number(m[2]) };
}

function setupLogging(values: { "log-level"?: string; "log-format"?: string }) {
  const level = (values["log-level"] ?? "info") as LogLevel;
  if (!["debug", "info", "warn", "error"].includes(level)) throw new UsageError(`--log-level must be debug, info, warn or error (got "${level}")`);
  const format = values["log-format"] ?? "text";
  if (format !== "text" && format !== "json") throw new UsageError(`--log-format must be text or json (got "${format}")`);
  configureLog({ level, format });
}

async function serve(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    config: { type: "string" },
    listen: { type: "string", default: process.env.AUTOSCALER_CLOUDSCALE_LISTEN || "0.0.0.0:8086" },
    "tls-cert": { type: "string" },
    "tls-key": { type: "string" },
    "tls-client-ca": { type: "string" },
    "insecure-plaintext": { type: "boolean" },
    "health-listen": { type: "string", default: process.env.AUTOSCALER_CLOUDSCALE_HEALTH_LISTEN || undefined },
    "token-file": { type: "string" },
    "shutdown-grace": { type: "string", default: "20" },
    "log-level": { type: "string", default: process.env.AUTOSCALER_CLOUDSCALE_LOG_LEVEL || undefined },
    "log-format": { type: "string", default: process.env.AUTOSCALER_CLOUDSCALE_LOG_FORMAT || undefined },
  }, SERVE_USAGE);
  if (values.help) return help(SERVE_USAGE);
  setupLogging(values);
  if (!values.config) throw new UsageError(`--config is required\n\n${SERVE_USAGE}`);
  const listen = splitHostPort(values.listen!, "--listen");
  const tlsFlags = [values["tls-cert"], values["tls-key"], values["tls-client-ca"]];
  let tls: { cert: string; key: string; clientCa: string } | undefined;
  if (values["insecure-plaintext"]) {
    if (tlsFlags.some(Boolean)) throw new UsageError("--insecure-plaintext cannot be combined with --tls-cert/--tls-key/--tls-client-ca");
    if (!isLoopback(listen.host)) {
      log.warn("!!! serving gRPC WITHOUT TLS on a non-loopback address: anyone who can reach this port can create and delete servers. Use --tls-cert/--tls-key/--tls-client-ca unless the network is trusted !!!", { listen: values.listen });
    } else log.info("serving plaintext h2c on loopback (--insecure-plaintext)");
  } else {
    if (!tlsFlags.every(Boolean)) {
      throw new UsageError("TLS needs --tls-cert, --tls-key and --tls-client-ca (mutual TLS is the default); for plaintext pass --insecure-plaintext explicitly");
    }
    tls = { cert: values["tls-cert"]!, key: values["tls-key"]!, clientCa: values["tls-client-ca"]! };
  }
  const grace = Number(values["shutdown-grace"]);
  if (!Number.isFinite(grace) || grace < 0) throw new UsageError(`--shutdown-grace must be a number of seconds (got "${values["shutdown-grace"]}")`);

  const config = loadConfigFile(values.config);
  const api = apiSettings(process.env, values["token-file"]);
  registerSecret(api.token);
  // The composition root: the metrics' recorders are the client's and the reconciler's recording hooks.
  const cloud = createClient({ ...api, timeoutMs: config.apiTimeoutSeconds * 1000, record: apiMetrics });
  const provider = createProvider({ config, cloud, record: reconcilerMetrics });
  await provider.start();
  const server = await startGrpcServer({ host: listen.host, port: listen.port, tls, routes: routes(provider) });
  const health = values["health-listen"] ? splitHostPort(values["health-listen"], "--health-listen") : undefined;
  // Metrics are read on the health listener only; without it nothing is sampled.
  if (health) startMetrics(() => viewMetrics(provider.reconciler.snapshot(), config, provider.findings()), config.nodeGroups.map((g) => g.name));
  const healthServer = health
    ? startHealthServer(health.host, health.port, () => provider.readiness(), () => statusReport(provider.reconciler.snapshot(), config, provider.readiness(), Date.now(), provider.findings()))
    : undefined;
  log.info("serving gRPC", {
    listen: `${listen.host}:${server.port}`,
    tls: tls ? "mutual TLS" : "plaintext h2c",
    cluster: config.clusterName,
    groups: config.nodeGroups.map((g) => g.name).join(","),
    api: api.url,
    health: health ? `${health.host}:${healthServer!.port}` : undefined,
    version,
  });
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info("shutting down: draining in-flight calls", { signal, inFlight: server.inFlight(), graceSeconds: grace });
      resolve();
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
  const hardStop = setTimeout(() => {
    log.error("shutdown took too long; exiting");
    process.exit(1);
  }, grace * 1000 + 5000);
  hardStop.unref();
  const shutdownStarted = Date.now();
  await server.shutdown(grace * 1000);
  await healthServer?.stop(true);
  // Creations already sent are waited for, so their servers are answered and tagged before we go;
  // queued ones never reached the cloud and are dropped (the next instance starts from the cloud).
  await provider.shutdown(Math.max(0, grace * 1000 - (Date.now() - shutdownStarted)));
  log.info("stopped");
  process.exit(0);
}

async function validate(argv: string[]): Promise<number> {
  const { values } = parse(argv, { config: { type: "string" }, "token-file": { type: "string" }, offline: { type: "boolean" } }, VALIDATE_USAGE);
  if (values.help) return help(VALIDATE_USAGE);
  if (!values.config) throw new UsageError(`--config is required\n\n${VALIDATE_USAGE}`);
  const config = loadConfigFile(values.config);
  process.stdout.write(`${values.config}: schema OK (cluster ${config.clusterName}, ${config.nodeGroups.length} node group${config.nodeGroups.length === 1 ? "" : "s"})\n${describeGroups(config)}`);
  if (values.offline) return 0;
  let api;
  try {
    api = apiSettings(process.env, values["token-file"]);
  } catch {
    process.stdout.write("no API token: skipped the checks against the API (flavors, images, zones); set CLOUDSCALE_API_TOKEN to run them\n");
    return 0;
  }
  registerSecret(api.token);
  const { checkAgainstApi, orphansReport } = await import("./validate");
  const { problems, orphans } = await checkAgainstApi(config, createClient({ ...api, attempts: 2 }));
  if (problems.length) {
    process.stdout.write(`${values.config}: ${problems.length} problem${problems.length === 1 ? "" : "s"} found against ${api.url}:\n${problems.map((p) => `  - ${p}`).join("\n")}\n`);
  } else {
    process.stdout.write(`${values.config}: flavors, images, zones and server groups exist at ${api.url}; every flavor and image is offered in its groups' zones\n`);
  }
  // Not a problem of the file (the exit code stays), but servers that are billed while CA does not see them.
  if (orphans.length) process.stdout.write(orphansReport(values.config, config.clusterName, orphans));
  return problems.length ? 1 : 0;
}

async function status(argv: string[]): Promise<number> {
  const { values } = parse(argv, { health: { type: "string", default: process.env.AUTOSCALER_CLOUDSCALE_HEALTH_LISTEN || DEFAULT_HEALTH }, json: { type: "boolean" } }, STATUS_USAGE);
  if (values.help) return help(STATUS_USAGE);
  let url: string;
  try {
    url = statusUrl(values.health!);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  try {
    const { body, report } = await fetchStatus(url);
    process.stdout.write(values.json ? (body.endsWith("\n") ? body : `${body}\n`) : renderStatus(report));
    return 0;
  } catch (e) {
    if (!(e instanceof StatusError)) throw e;
    process.stderr.write(`autoscaler-cloudscale status: ${e.message}\n`);
    return 1;
  }
}

function durationFlag(value: string, flag: string): number {
  const s = parseDuration(value);
  if (s === undefined || s <= 0) throw new UsageError(`${flag} must be a duration such as 90s or 5m (got "${value}")`);
  return s * 1000;
}

async function check(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    config: { type: "string" },
    live: { type: "boolean" },
    yes: { type: "boolean" },
    image: { type: "string" },
    "wait-running": { type: "string", default: "5m" },
    "wait-delete": { type: "string", default: "5m" },
    poll: { type: "string", default: "2s" },
    "token-file": { type: "string" },
  }, CHECK_USAGE);
  if (values.help) return help(CHECK_USAGE);
  if (!values.config) throw new UsageError(`--config is required\n\n${CHECK_USAGE}`);
  if (!values.live) throw new UsageError(`check talks to the real API: pass --live (and --yes to create and delete servers)\n\n${CHECK_USAGE}`);
  const waitRunningMs = durationFlag(values["wait-running"]!, "--wait-running");
  const waitDeleteMs = durationFlag(values["wait-delete"]!, "--wait-delete");
  const pollMs = durationFlag(values.poll!, "--poll");
  const config = loadConfigFile(values.config);
  if (config.nodeGroups.some((g) => g.name === CHECK_GROUP)) {
    throw new ConfigError([`nodeGroups: a node group is named "${CHECK_GROUP}", the group tag of check's own servers; rename it to run check`]);
  }
  let api;
  try {
    api = apiSettings(process.env, values["token-file"]);
  } catch (e) {
    if (values.yes || values["token-file"]) throw e;
  }
  if (api) registerSecret(api.token);
  const cloud = api ? createClient({ ...api, timeoutMs: config.apiTimeoutSeconds * 1000 }) : undefined;
  // Ctrl-C (or SIGTERM): stop and delete what was created; a second one exits at once.
  const interrupt = new AbortController();
  const onSignal = (signal: string) => {
    if (!interrupt.signal.aborted) {
      process.stderr.write(`\n${signal}: stopping; deleting what the check created (${signal === "SIGINT" ? "Ctrl-C" : signal} again to exit at once)\n`);
      interrupt.abort();
      return;
    }
    process.stderr.write(`exiting without cleaning up: servers named ${config.clusterName}-${CHECK_GROUP}-* (tag ${GROUP_TAG}=${CHECK_GROUP}) may be left; the next check deletes them\n`);
    process.exit(130);
  };
  const sigint = () => onSignal("SIGINT");
  const sigterm = () => onSignal("SIGTERM");
  process.on("SIGINT", sigint);
  process.on("SIGTERM", sigterm);
  const { runCheck } = await import("./check");
  try {
    return await runCheck({
      config,
      cloud,
      apiUrl: api?.url ?? process.env.CLOUDSCALE_API_URL ?? "https://api.cloudscale.ch/v1",
      yes: !!values.yes,
      image: values.image,
      waitRunningMs,
      waitDeleteMs,
      pollMs,
      signal: interrupt.signal,
      print: (line) => process.stdout.write(`${line}\n`),
    });
  } finally {
    process.off("SIGINT", sigint);
    process.off("SIGTERM", sigterm);
  }
}

/** The node groups CA will see, one line each: name, flavor, zone, size, and the entry it came from. */
function describeGroups(config: ProviderConfig): string {
  const width = Math.max(...config.nodeGroups.map((g) => g.name.length));
  return config.nodeGroups
    .map((g) => `  ${g.name.padEnd(width)}  ${g.flavor} in ${g.zone}, min ${g.min}, max ${g.max}${g.entry && g.entry !== g.name ? `  (from ${g.source?.path ?? g.entry})` : ""}\n`)
    .join("");
}

async function template(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { config: { type: "string" }, output: { type: "string", short: "o", default: "yaml" }, "token-file": { type: "string" } }, TEMPLATE_USAGE, true);
  if (values.help) return help(TEMPLATE_USAGE);
  if (!values.config) throw new UsageError(`--config is required\n\n${TEMPLATE_USAGE}`);
  if (values.output !== "yaml" && values.output !== "json") throw new UsageError(`--output must be yaml or json`);
  const config = loadConfigFile(values.config);
  let cloud;
  try {
    const api = apiSettings(process.env, values["token-file"]);
    registerSecret(api.token);
    cloud = createClient({ ...api, attempts: 2 });
  } catch {
    cloud = undefined;
  }
  const { renderTemplate } = await import("./template-output");
  process.stdout.write(await renderTemplate(config, positionals, values.output, cloud));
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case undefined:
      case "help":
      case "-h":
      case "--help":
        process.stdout.write(USAGE);
        return command === undefined ? 2 : 0;
      case "version":
      case "--version":
        if (rest.includes("--help") || rest.includes("-h")) return help(VERSION_USAGE);
        process.stdout.write(`autoscaler-cloudscale ${version} (commit ${commit})\n`);
        return 0;
      case "serve":
        return await serve(rest);
      case "validate":
        return await validate(rest);
      case "status":
        return await status(rest);
      case "check":
        return await check(rest);
      case "template":
        return await template(rest);
      case "convert": {
        const { runConvert } = await import("./convert");
        return runConvert(rest);
      }
      case "cleanup": {
        const { runCleanup } = await import("./cleanup");
        return await runCleanup(rest);
      }
      case "adopt": {
        const { runAdopt } = await import("./adopt");
        return await runAdopt(rest);
      }
      case "sim": {
        const { runSimCommand } = await import("./sim/cli");
        await runSimCommand(rest);
        return 0;
      }
      case "demo": {
        const { runDemo } = await import("./demo");
        return await runDemo(rest);
      }
      default:
        process.stderr.write(`autoscaler-cloudscale: unknown command "${command}"\n\n${USAGE}`);
        return 2;
    }
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`autoscaler-cloudscale ${command}: ${e.message}\n`);
      return 2;
    }
    if (e instanceof ConfigError) {
      process.stderr.write(`autoscaler-cloudscale ${command}: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
