// The shell blocks of a walk-through in docs/operating.md, as the tests run them.
// A ```sh block is preceded by `<!-- run: WAY -->` (a test runs it as it is) or
// `<!-- not run here: why -->`; every block of the section must say which.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "./lib";

export interface Block {
  /** 1-based line of the opening fence. */
  line: number;
  run: boolean;
  /** The way of `<!-- run: WAY -->`, or the reason of `<!-- not run here: … -->`. */
  note: string;
  script: string;
}

export const OPERATING_MD = join(REPO_ROOT, "docs", "operating.md");

/** The ```sh blocks of the section whose heading starts with `heading`, in order. */
export function walkthrough(heading: string): Block[] {
  const lines = readFileSync(OPERATING_MD, "utf8").split("\n");
  const start = lines.findIndex((l) => l.startsWith(heading));
  if (start < 0) throw new Error(`docs/operating.md has no section "${heading}"`);
  const endRel = lines.slice(start + 1).findIndex((l) => /^## /.test(l));
  const end = endRel < 0 ? lines.length : start + 1 + endRel;
  const blocks: Block[] = [];
  for (let i = start; i < end; i++) {
    if (lines[i] !== "```sh") continue;
    let j = i - 1;
    while (j > start && lines[j]!.trim() === "") j--;
    const marker = lines[j]!.match(/^<!-- (run|not run here): (.+) -->$/);
    if (!marker) throw new Error(`docs/operating.md:${i + 1}: the sh block has no <!-- run: … --> or <!-- not run here: … --> line above it`);
    const close = lines.indexOf("```", i + 1);
    if (close < 0 || close > end) throw new Error(`docs/operating.md:${i + 1}: unclosed block`);
    blocks.push({ line: i + 1, run: marker[1] === "run", note: marker[2]!, script: lines.slice(i + 1, close).join("\n") });
    i = close;
  }
  return blocks;
}
