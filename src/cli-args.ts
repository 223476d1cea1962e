// What every command's flag parsing shares: parseArgs with -h/--help, usage errors
// (exit code 2, with the command's usage) and printing help.
import { parseArgs, type ParseArgsConfig } from "node:util";

/** A mistake on the command line: reported with the command's usage, exit code 2. */
export class UsageError extends Error {}

export function parse<T extends NonNullable<ParseArgsConfig["options"]>>(argv: string[], options: T, usage: string, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: "boolean", short: "h" } }, allowPositionals, strict: true });
  } catch (e) {
    throw new UsageError(`${(e as Error).message.split("\n")[0]}\n\n${usage}`);
  }
}

export function help(text: string): number {
  process.stdout.write(text);
  return 0;
}
