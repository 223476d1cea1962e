// Reads packaging/rootfs.list and assembles a runtime root from it. Used by
// packaging/talos/build-extension.ts (the Talos service root) and by the
// packaging tests (the chroot proofs), so both put exactly the listed files in.
import { copyFileSync, chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { dirname, isAbsolute, join, posix } from "node:path";

export type Arch = "x64" | "arm64";
export const ARCHES: Arch[] = ["x64", "arm64"];

/** Debian / OCI names of our architectures. */
export const DEB_ARCH: Record<Arch, "amd64" | "arm64"> = { x64: "amd64", arm64: "arm64" };
export const OCI_ARCH = DEB_ARCH;
/** ELF e_machine values. */
export const ELF_MACHINE: Record<Arch, number> = { x64: 62, arm64: 183 };

export interface RootfsEntry {
  arch: Arch;
  path: string;
  source: "binary" | "libc6";
}

export const REPO_ROOT = join(import.meta.dir, "..");
export const LIST_PATH = join(REPO_ROOT, "packaging", "rootfs.list");
export const BINARY_PATH = "/usr/local/bin/autoscaler-cloudscale";

export function readRootfsList(path = LIST_PATH): RootfsEntry[] {
  const out: RootfsEntry[] = [];
  readFileSync(path, "utf8")
    .split("\n")
    .forEach((raw, i) => {
      const line = raw.replace(/#.*/, "").trim();
      if (!line) return;
      const cols = line.split(/\s+/);
      const [arch = "", p = "", source = ""] = cols;
      if (cols.length !== 3 || !ARCHES.includes(arch as Arch) || !isAbsolute(p) || (source !== "binary" && source !== "libc6")) {
        throw new Error(`${path}:${i + 1}: expected "<x64|arm64> <absolute path> <binary|libc6>", got "${raw}"`);
      }
      out.push({ arch: arch as Arch, path: posix.normalize(p), source });
    });
  return out;
}

export function entriesFor(arch: Arch, list = readRootfsList()): RootfsEntry[] {
  return list.filter((e) => e.arch === arch);
}

/** Resolves `p` inside `root` the way the kernel would after chroot(root): symlinks (absolute or relative) stay inside. */
export function resolveInRoot(root: string, p: string, depth = 0): string {
  if (depth > 40) throw new Error(`too many symlinks resolving ${p} in ${root}`);
  const parts = posix.normalize(p).split("/").filter(Boolean);
  let cur = "/";
  for (let i = 0; i < parts.length; i++) {
    const next = posix.join(cur, parts[i]!);
    const host = join(root, next);
    let st;
    try {
      st = lstatSync(host);
    } catch {
      throw new Error(`${p} does not exist in ${root} (missing ${next})`);
    }
    if (st.isSymbolicLink()) {
      const target = readlinkSync(host);
      const abs = target.startsWith("/") ? target : posix.join(cur, target);
      cur = resolveInRoot(root, posix.join(abs, ...parts.slice(i + 1)), depth + 1);
      return cur;
    }
    cur = next;
  }
  return cur;
}

export interface AssembleOptions {
  arch: Arch;
  /** The compiled binary for `arch`. */
  binary: string;
  /** Debian's libc6 package for `arch`, extracted with dpkg-deb -x. */
  libc6Root: string;
  /** Directory to fill (created). */
  dest: string;
}

/** Copies every listed file for the arch into dest (symlinks in the package followed; regular files written). */
export function assembleRoot(opts: AssembleOptions): string[] {
  const written: string[] = [];
  for (const e of entriesFor(opts.arch)) {
    const to = join(opts.dest, e.path);
    mkdirSync(dirname(to), { recursive: true, mode: 0o755 });
    if (e.source === "binary") {
      copyFileSync(opts.binary, to);
      chmodSync(to, 0o755);
    } else {
      const from = join(opts.libc6Root, resolveInRoot(opts.libc6Root, e.path));
      if (!statSync(from).isFile()) throw new Error(`${e.path} is not a regular file in ${opts.libc6Root}`);
      copyFileSync(from, to);
      chmodSync(to, statSync(from).mode & 0o755);
    }
    written.push(e.path);
  }
  return written;
}

export interface ElfInfo {
  machine: number;
  interpreter: string | null;
  needed: string[];
}

/** Minimal ELF64 little-endian reader: machine, PT_INTERP and DT_NEEDED. */
export function readElf(file: string): ElfInfo {
  const buf = readFileSync(file);
  if (buf.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${file} is not an ELF file`);
  if (buf[4] !== 2 || buf[5] !== 1) throw new Error(`${file} is not ELF64 little-endian`);
  const machine = buf.readUInt16LE(18);
  const phoff = Number(buf.readBigUInt64LE(32));
  const phentsize = buf.readUInt16LE(54);
  const phnum = buf.readUInt16LE(56);
  const loads: { vaddr: number; offset: number; filesz: number }[] = [];
  let interpreter: string | null = null;
  let dyn: { offset: number; size: number } | null = null;
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * phentsize;
    const type = buf.readUInt32LE(o);
    const offset = Number(buf.readBigUInt64LE(o + 8));
    const vaddr = Number(buf.readBigUInt64LE(o + 16));
    const filesz = Number(buf.readBigUInt64LE(o + 32));
    if (type === 1) loads.push({ vaddr, offset, filesz });
    if (type === 2) dyn = { offset, size: filesz };
    if (type === 3) interpreter = buf.toString("latin1", offset, offset + filesz).replace(/\0.*$/s, "");
  }
  const toOffset = (vaddr: number) => {
    const l = loads.find((s) => vaddr >= s.vaddr && vaddr < s.vaddr + s.filesz);
    if (!l) throw new Error(`${file}: address 0x${vaddr.toString(16)} is in no PT_LOAD segment`);
    return vaddr - l.vaddr + l.offset;
  };
  const needed: number[] = [];
  let strtab = -1;
  if (dyn) {
    for (let o = dyn.offset; o + 16 <= dyn.offset + dyn.size; o += 16) {
      const tag = Number(buf.readBigInt64LE(o));
      const val = Number(buf.readBigUInt64LE(o + 8));
      if (tag === 0) break;
      if (tag === 1) needed.push(val);
      if (tag === 5) strtab = toOffset(val);
    }
  }
  const str = (off: number) => {
    const end = buf.indexOf(0, strtab + off);
    return buf.toString("latin1", strtab + off, end);
  };
  return { machine, interpreter, needed: strtab >= 0 ? needed.map(str) : [] };
}

/** True if `p` exists (lstat). */
export function exists(p: string): boolean {
  return existsSync(p);
}
