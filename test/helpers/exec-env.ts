// Runs a program with an environment given as a list, duplicates kept:
//   bun test/helpers/exec-env.ts PROGRAM '["K=V","K=W"]' ARGS...
// Bun.spawn takes the environment as an object, which cannot hold one variable twice; containerd
// hands a process such lists (a variable set by a Talos extension service and again by its
// ExtensionServiceConfig). So this calls execve(2) itself, through libc: the program replaces
// this process with exactly that environment.
import { dlopen, FFIType, ptr } from "bun:ffi";

const [program, envJson, ...args] = process.argv.slice(2);
if (!program || envJson === undefined) {
  process.stderr.write("usage: bun test/helpers/exec-env.ts PROGRAM ENV-JSON-LIST ARGS...\n");
  process.exit(2);
}
const env = JSON.parse(envJson) as string[];
const libc = dlopen("libc.so.6", { execve: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 } });
const held: Buffer[] = []; // the strings must outlive the call
const cString = (s: string) => {
  const b = Buffer.from(`${s}\0`);
  held.push(b);
  return b;
};
/** A NULL-terminated array of C strings. */
const cArray = (list: string[]) => {
  const a = new BigUint64Array(list.length + 1);
  list.forEach((s, i) => (a[i] = BigInt(ptr(cString(s)))));
  return a;
};
const file = cString(program);
const rc = libc.symbols.execve(ptr(file), ptr(cArray([program, ...args])), ptr(cArray(env)));
process.stderr.write(`exec-env: execve ${program} failed (${rc})\n`);
process.exit(127);
