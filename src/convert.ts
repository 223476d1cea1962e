// `convert`: reads the configuration of kubeterm-sh/autoscaler-cloudscale (the provider this
// one replaces) and writes ours, saying what it could not carry over (seed-config.ts), then
// checks the result as `validate --offline` does.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { UsageError, help, parse } from "./cli-args";
import { ConfigError, parseConfig } from "./config";
import { SeedConfigError, convertSeedConfig } from "./seed-config";
import { version } from "./version";

export const CONVERT_USAGE = `Usage: autoscaler-cloudscale convert OLD-CONFIG [--out FILE] [--cluster-name NAME] [--force]

Converts the configuration of kubeterm-sh/autoscaler-cloudscale (its config.yaml, or its Helm
chart's values with the configuration under config:) into this provider's, and says what it
could not carry over as it was:
  clusterTag -> clusterName         minSize/maxSize -> min/max     volumeSizeGB -> volumeSizeGb
  userData: "@file" -> userDataFile (relative to the new file)     serverGroupUUID -> serverGroups
  networkUUID/subnetUUID/usePublicNetwork -> interfaces            labels, taints, tags, sshKeys
  listen, tls -> serve flags        cloudscaleAPIToken -> CLOUDSCALE_API_TOKEN (never written)
The notes go to stderr and into the new file's header. The result is then checked as
'validate --offline' checks a file. Servers the old provider created carry its tags
(k8s-cluster, k8s-autoscaler-group); 'autoscaler-cloudscale adopt' takes them over.

Flags:
  --out FILE           write the new configuration there                     [default: stdout]
  --cluster-name NAME  the cluster name                              [default: the old clusterTag]
  --force              overwrite --out if it exists
  -h, --help           show this help

Exit code 0 when the new configuration was written and is valid, 1 when the old one cannot be
read or the new one does not pass validation yet (it is still written, with the problems listed).
`;

export function runConvert(argv: string[]): number {
  const { values, positionals } = parse(argv, { out: { type: "string", short: "o" }, "cluster-name": { type: "string" }, force: { type: "boolean" } }, CONVERT_USAGE, true);
  if (values.help) return help(CONVERT_USAGE);
  if (positionals.length !== 1) throw new UsageError(`name the old configuration file (one)\n\n${CONVERT_USAGE}`);
  const path = positionals[0]!;
  const out = values.out;
  if (out && existsSync(out) && !values.force) throw new UsageError(`${out} exists; pass --force to overwrite it`);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    process.stderr.write(`autoscaler-cloudscale convert: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}\n`);
    return 1;
  }
  let result;
  try {
    result = convertSeedConfig({ text, path, outPath: out, clusterName: values["cluster-name"], env: process.env, cwd: process.cwd(), version });
  } catch (e) {
    if (!(e instanceof SeedConfigError)) throw e;
    process.stderr.write(`autoscaler-cloudscale convert: ${e.message}\n`);
    return 1;
  }
  if (out) {
    try {
      writeFileSync(out, result.yaml, { mode: 0o640 });
    } catch (e) {
      process.stderr.write(`autoscaler-cloudscale convert: cannot write ${out}: ${(e as NodeJS.ErrnoException).code ?? String(e)}\n`);
      return 1;
    }
  } else process.stdout.write(result.yaml);
  const where = out ?? "stdout";
  process.stderr.write(
    `convert: wrote ${where}: cluster ${result.clusterName}, ${result.groups} node group entr${result.groups === 1 ? "y" : "ies"}; ` +
      `${result.notes.length} note${result.notes.length === 1 ? "" : "s"} on what changed:\n${result.notes.map((n) => `  - ${n}`).join("\n")}\n`,
  );
  try {
    parseConfig(result.yaml, { baseDir: out ? dirname(resolve(out)) : process.cwd() });
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    process.stderr.write(`convert: the new configuration does not pass validation yet; fix these in ${where}:\n${e.problems.map((p) => `  - ${p}`).join("\n")}\n`);
    return 1;
  }
  process.stderr.write(`convert: the new configuration passes 'validate --offline'; with a token, 'validate' also checks it against the API\n`);
  return 0;
}
