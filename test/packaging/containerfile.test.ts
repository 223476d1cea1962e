// Keeps Containerfile, packaging/rootfs.list and the binary in lock-step:
//   - the root-<arch> stages copy exactly the listed files (and nothing else),
//     and the final stage is a pinned distroless base that takes only that root;
//   - the list is exactly what the binary needs: its ELF interpreter and DT_NEEDED
//     libraries, closed over the libraries' own needs, as `ldd` (the loader's
//     --list) reports inside the assembled root for each arch.
import { beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, rmSync } from "node:fs";
import { join, posix } from "node:path";
import { ARCHES, type Arch, assembleRoot, BINARY_PATH, DEB_ARCH, entriesFor, readElf, readRootfsList } from "../../packaging/rootfs";
import { ensureBinary, ensureDeps, REPO_ROOT, requireNamespaces, runInRoot, WORK } from "./lib";

interface Stage {
  from: string;
  name?: string;
  lines: string[];
}

function parseContainerfile(text: string): { args: Record<string, string>; stages: Stage[] } {
  const logical = text
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const l of logical) {
    const [instr = "", ...rest] = l.split(/\s+/);
    const I = instr.toUpperCase();
    if (I === "FROM") {
      const m = l.match(/^FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i);
      if (!m) throw new Error(`cannot parse ${l}`);
      stages.push({ from: m[1]!, name: m[2], lines: [] });
    } else if (I === "ARG" && stages.length === 0) {
      const [k = "", v] = rest.join(" ").split("=");
      args[k] = v ?? "";
    } else {
      stages.at(-1)!.lines.push(l);
    }
  }
  return { args, stages };
}

const containerfile = parseContainerfile(readFileSync(join(REPO_ROOT, "Containerfile"), "utf8"));
const stage = (name: string) => containerfile.stages.find((s) => s.name === name)!;
const OCI: Record<Arch, string> = { x64: "amd64", arm64: "arm64" };

describe("Containerfile and packaging/rootfs.list", () => {
  test("the list parses and names the binary and the glibc files per arch", () => {
    const list = readRootfsList();
    for (const arch of ARCHES) {
      const e = entriesFor(arch, list);
      expect(e.filter((x) => x.source === "binary").map((x) => x.path)).toEqual([BINARY_PATH]);
      expect(e.filter((x) => x.source === "libc6").length).toBeGreaterThan(1);
      expect(new Set(e.map((x) => x.path)).size).toBe(e.length);
    }
  });

  for (const arch of ARCHES) {
    test(`stage root-${OCI[arch]} copies exactly the ${arch} list`, () => {
      const s = stage(`root-${OCI[arch]}`);
      expect(s).toBeDefined();
      expect(s.from).toBe("scratch");
      const copies = s.lines.map((l) => {
        const m = l.match(/^COPY\s+((?:--\S+\s+)*)(\S+)\s+(\S+)$/);
        if (!m) throw new Error(`root-${OCI[arch]}: only single-file COPY lines belong here, got: ${l}`);
        const flags = (m[1] ?? "").trim().split(/\s+/).filter(Boolean);
        const from = flags.find((f) => f.startsWith("--from="))?.slice(7);
        return { from, src: m[2], dst: m[3], flags };
      });
      const expected = entriesFor(arch).map((e) =>
        e.source === "binary" ? { from: undefined, src: `dist/autoscaler-cloudscale-linux-${arch}`, dst: e.path } : { from: "debian", src: e.path, dst: e.path },
      );
      expect(copies.map(({ from, src, dst }) => ({ from, src, dst }))).toEqual(expected);
      // The binary must stay executable for the non-root user.
      expect(copies.find((c) => c.dst === BINARY_PATH)!.flags).toContain("--chmod=0555");
    });
  }

  test("the glibc source stage is Debian 12, the release the distroless base and the tests use", () => {
    const debian = stage("debian");
    expect(debian.from).toBe("${DEBIAN_IMAGE}");
    expect(containerfile.args.DEBIAN_IMAGE).toMatch(/^debian:12(\.\d+)?-slim(@sha256:[0-9a-f]{64})?$/);
    expect(debian.lines).toEqual([]);
    const deps = ensureDeps();
    for (const arch of ARCHES) expect(deps.libc6Version[arch]).toMatch(/\+deb12u\d+$/);
  });

  test("the final stage: pinned distroless base (glibc family), only the root copied, non-root, no shell, entrypoint the binary", () => {
    const final = containerfile.stages.at(-1)!;
    expect(final.name).toBeUndefined();
    expect(final.from).toBe("${DISTROLESS_IMAGE}");
    expect(containerfile.args.DISTROLESS_IMAGE).toMatch(/^gcr\.io\/distroless\/base(-nossl)?-debian12:nonroot@sha256:[0-9a-f]{64}$/);
    expect(stage("root").from).toBe("root-${TARGETARCH}");
    expect(final.lines).toEqual([
      "COPY --from=root / /",
      "USER 65532:65532",
      "EXPOSE 8086 8087",
      `ENTRYPOINT ["${BINARY_PATH}"]`,
      'CMD ["--help"]',
    ]);
    for (const s of containerfile.stages) for (const l of s.lines) expect(l).not.toMatch(/^(RUN|SHELL|ADD)\b/i);
  });

  test("the build context lets in exactly the binaries the Containerfile copies", () => {
    const ignore = readFileSync(join(REPO_ROOT, "Containerfile.dockerignore"), "utf8")
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith("#"));
    expect(ignore[0]).toBe("*");
    expect(ignore.slice(1).sort()).toEqual(ARCHES.map((a) => `!dist/autoscaler-cloudscale-linux-${a}`).sort());
  });
});

for (const arch of ARCHES) {
  describe(`the ${arch} binary needs exactly the listed files`, () => {
    let binary: string;
    let root: string;
    beforeAll(() => {
      requireNamespaces();
      binary = ensureBinary(arch);
      root = join(WORK, `ldd-${arch}`);
      rmSync(root, { recursive: true, force: true });
      assembleRoot({ arch, binary, libc6Root: ensureDeps().libc6Root[arch], dest: root });
    }, 600000);

    test("ELF interpreter + DT_NEEDED (closed over the libraries) == the list's libc6 entries", () => {
      const elf = readElf(binary);
      const libs = entriesFor(arch).filter((e) => e.source === "libc6");
      expect(libs.map((e) => e.path)).toContain(elf.interpreter!);
      const byName = new Map(libs.map((e) => [posix.basename(e.path), e.path]));
      const seen = new Set<string>([elf.interpreter!]);
      const queue = [...elf.needed];
      while (queue.length) {
        const n = queue.shift()!;
        const p = byName.get(n);
        expect({ needed: n, listed: p !== undefined }).toEqual({ needed: n, listed: true });
        if (seen.has(p!)) continue;
        seen.add(p!);
        queue.push(...readElf(join(root, p!)).needed);
      }
      expect([...seen].sort()).toEqual(libs.map((e) => e.path).sort());
    });

    test("the loader's --list (what ldd prints) resolves every library inside the assembled root", async () => {
      const interp = readElf(binary).interpreter!;
      const r = await runInRoot({ root, arch, argv: [interp, "--list", BINARY_PATH], env: {}, mounts: [{ type: "proc", target: "/proc" }] }, 120000);
      expect({ code: r.code, out: r.out }).toEqual({ code: 0, out: expect.any(String) });
      expect(r.out).not.toContain("not found");
      const resolved = [...r.out.matchAll(/=>\s+(\S+)\s+\(/g)].map((m) => m[1]);
      const libs = entriesFor(arch).filter((e) => e.source === "libc6" && e.path !== interp).map((e) => e.path);
      expect(resolved.sort()).toEqual(libs.sort());
      expect(DEB_ARCH[arch]).toBeDefined();
    }, 180000);
  });
}
