// The configuration file's YAML: Bun's fast parser plus the check for equal keys (src/config-yaml.ts)
// must give exactly what the `yaml` library gives, errors included. Proven on hand-written cases,
// the repository's own YAML files, and generated block-style documents with equal keys planted.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { parseConfigYaml, sameKeys } from "../src/config-yaml";

function strict(text: string): { value?: unknown; error?: string } {
  try {
    return { value: parse(text, { prettyErrors: true, uniqueKeys: true }) };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

function fast(text: string): { value?: unknown; error?: string } {
  try {
    return { value: parseConfigYaml(text) };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

function bunParses(text: string): boolean {
  try {
    Bun.YAML.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** Same answer as the `yaml` library, and the equal-keys check never says "none" wrongly. */
function expectSameAsYamlLibrary(text: string) {
  const want = strict(text);
  expect(fast(text)).toEqual(want);
  if (want.error && bunParses(text)) expect(sameKeys(text)).toBe("unsure");
}

const handWritten = [
  "a: 0x1F\nb: .5\nc: 1e3\nd: .inf\ne: -.Inf\nf: .nan\ng: Null\nh: ~\ni: True\nj: '0x1F'\nl: +12\nm: 1_0\nn: 0o17\no: 017\np: 2001-12-14\nq: yes\nr: on\n",
  's: "\\u00e9\\x41\\t"\nt: \'it\'\'s\'\nu: plain text  \nv: |\n  line1\n   line2\n\n  line3\nw: >-\n  folded\n  text\nx: |+\n  keep\n\ny: multi\n  line plain\n',
  "1: a\n2.5: b\nnull: c\ntrue: d\n",
  "list:\n- a\n- b: 1\n  c: 2\n- - x\n  - y\nafter: 1\n",
  "nested:\n  deep:\n    deeper: {a: 1, b: 2}\n  other: [x, y]\n",
  "k: v # comment\n# full\nq: 'a # not'\nr: \"b # not\"\n",
  "", "# only a comment\n", "a:\n", "- a\n- b\n",
  "key with spaces: 1\n'quoted key': 2\n\"dq key\": 3\n",
  "url: http://a:8080/x\ntime: 10:20\n",
  "text: |\n  a: 1\n  a: 2\nnext: x\n",
  "groups:\n  - name: a\n    userData: |\n      name: b\n      name: c\n  - name: b\n",
  "-\n  a: 1\n-\n  a: 2\n",
  // equal keys, everywhere a configuration could have them
  "a: 1\na: 2\n", "x:\n  a: 1\n  b: 2\n  a: 3\n", "l:\n- a: 1\n  a: 2\n", "l:\n  - a: 1\n    b:\n      c: 1\n    a: 2\n",
  "m: {a: 1, a: 2}\n", "a: 1\n'a': 2\n", "a: 1\n\"a\": 2\n", "- {a: 1, a: 2}\n",
  "l:\n- a: 1\n- a: 2\n", "x:\n  y:\n    a: 1\n  z:\n    a: 2\n",
  // what Bun's parser or the check does not take
  "a: [1\n", "a: 'open\n  quote'\nb: 1\n", "---\na: 1\n---\nb: 2\n", "a: &x 1\nb: *x\n", "base: &b {x: 1}\nc:\n  <<: *b\n",
  "a: !!str 1\n", "? complex\n: value\n", "a:\tb\n", "\ta: 1\n", "a: b: c\n",
];

describe("config YAML", () => {
  test("hand-written cases give what the yaml library gives", () => {
    for (const text of handWritten) expectSameAsYamlLibrary(text);
  });

  test("the repository's YAML files give what the yaml library gives", () => {
    for (const f of ["deploy/provider-config.yaml", "deploy/talos-worker.example.yaml", "packaging/talos/extension-service-config.example.yaml", "deploy/kustomization.yaml"]) {
      expectSameAsYamlLibrary(readFileSync(f, "utf8"));
    }
  });

  test("a file of 50 node groups takes the fast path", () => {
    let text = "clusterName: bench\nnodeGroups:\n";
    for (let i = 1; i <= 50; i++) text += `  - name: pool-${i}\n    flavor: flex-8-2\n    min: 0\n    max: 10\n    labels: {pool: p${i}, tier: x}\n    zones: [lpg1, rma1]\n`;
    expect(sameKeys(text)).toBe("none");
    expectSameAsYamlLibrary(text);
  });

  test("generated documents: an equal key planted anywhere is found, and nothing else differs", () => {
    let seed = 19;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const names = ["name", "flavor", "min", "max", "zone", "labels", "tags", "image", "x", "y"];
    const scalar = () => ["1", "-2", "text", "'q'", '"d q"', "a b c", "true", "~", "1.5", "http://h:1/p", "[a, b]", "{k: v, w: 1}"][rnd(12)]!;
    // A block-style mapping at `indent`; `dash` starts it as a sequence item.
    function map(indent: number, depth: number, dash: boolean): string[] {
      const lines: string[] = [];
      const keys = names.slice().sort(() => rnd(3) - 1).slice(0, 1 + rnd(5));
      keys.forEach((k, i) => {
        const prefix = " ".repeat(indent - (dash && i === 0 ? 2 : 0)) + (dash && i === 0 ? "- " : "");
        const kind = depth > 2 ? 0 : rnd(5);
        if (kind === 1) lines.push(`${prefix}${k}:`, ...map(indent + 2, depth + 1, false));
        else if (kind === 2) {
          lines.push(`${prefix}${k}:`);
          for (let j = 0; j < 1 + rnd(3); j++) lines.push(...(rnd(2) ? map(indent + 4, depth + 1, true) : [`${" ".repeat(indent + 2)}- ${scalar()}`]));
        } else if (kind === 3) lines.push(`${prefix}${k}: |`, `${" ".repeat(indent + 2)}${names[rnd(10)]}: in a block`, `${" ".repeat(indent + 2)}${k}: again`);
        else lines.push(`${prefix}${k}: ${scalar()}${rnd(4) ? "" : " # note"}`);
      });
      return lines;
    }
    let planted = 0;
    for (let n = 0; n < 400; n++) {
      const lines = map(0, 0, false);
      expectSameAsYamlLibrary(`${lines.join("\n")}\n`);
      // Plant: repeat one key line right after itself (the same mapping, the same key).
      const i = rnd(lines.length);
      const m = /^(\s*)(?:- )?([A-Za-z]\w*):/.exec(lines[i]!);
      if (!m || /:\s*\|$/.test(lines[i]!) || !/:\s*\S/.test(lines[i]!)) continue;
      const dup = `${m[1]}${lines[i]!.startsWith(`${m[1]}- `) ? "  " : ""}${m[2]}: 7`;
      const text = `${[...lines.slice(0, i + 1), dup, ...lines.slice(i + 1)].join("\n")}\n`;
      const want = strict(text);
      if (!want.error) continue; // the line sat inside a block scalar
      planted++;
      expect(sameKeys(text)).toBe("unsure");
      expect(fast(text)).toEqual(want);
    }
    expect(planted).toBeGreaterThan(100);
  });
});
