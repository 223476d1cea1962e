// Reading a list answer of thousands of servers element by element. JSON.parse of the whole
// answer (8.7 MiB at 5,000 servers) makes every server's full object at once, its flavor, image,
// volumes and interfaces, and keeps them all until the schema has copied the few fields the
// provider reads: that was the provider's peak memory, and the garbage behind a full collection
// after every Refresh. Here the body's bytes are split into the list's elements as they arrive;
// each element is decoded, parsed and checked against the schema on its own, and only what the
// schema keeps stays. The answer and its errors are the ones the whole-text parse gives
// (api-schema.ts parseAnswer): an answer that is not a JSON list is handed to it as text.
import * as v from "valibot";

export type ListAnswer<T> = { ok: true; value: T[] } | { ok: false; message: string; data: unknown };

/** How the whole text is judged when it is no JSON list (api-schema.ts parseAnswer with the body). */
export type WholeText<T> = (text: string) => ListAnswer<T>;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_LIST = 0x5b;
const CLOSE_LIST = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

const START = 0; // before the list's "["
const FIRST = 1; // after "[": an element or "]"
const VALUE = 2; // after ",": an element
const INSIDE = 3; // in an element
const END = 4; // after the list's "]"

/**
 * Splits a JSON array arriving in chunks into the bytes of its elements. It follows only what
 * it must (strings, nesting, commas at the top level); each element's own syntax is JSON.parse's.
 * `fail` is set when the bytes are no JSON array (the caller then judges the whole text).
 */
export class ArraySplitter {
  private state = START;
  private depth = 0;
  private inString = false;
  private escaped = false;
  private pieces: Uint8Array[] = [];
  /** The bytes are no JSON (or no JSON list). */
  fail = false;
  /** The first byte that is not white space is not "[": the answer is something else than a list. */
  notAList = false;

  /**
   * Feeds a chunk. `elements` gets the bytes of complete elements: one that began in an earlier
   * chunk on its own, then those that begin and end in this chunk together, still separated by
   * their commas (so that one JSON.parse reads them all).
   */
  push(chunk: Uint8Array, elements: (bytes: Uint8Array, several: boolean) => void): void {
    const n = chunk.length;
    let { state, depth, inString, escaped } = this;
    let start = state === INSIDE ? 0 : -1;
    let batchStart = -1; // the first element that began in this chunk and has ended
    let batchEnd = -1;
    const ended = (at: number) => {
      if (start === 0 && this.pieces.length) {
        this.pieces.push(chunk.subarray(0, at));
        const all = this.pieces;
        this.pieces = [];
        elements(concat(all), false);
      } else {
        if (batchStart < 0) batchStart = start;
        batchEnd = at;
      }
    };
    let i = 0;
    while (i < n) {
      if (state === INSIDE) {
        if (escaped) {
          escaped = false;
          i++;
          continue;
        }
        if (inString) {
          // Most of a list's bytes are in strings: only a quote or a backslash matters there.
          for (; i < n; i++) {
            const c = chunk[i]!;
            if (c === BACKSLASH) {
              if (++i === n) escaped = true;
            } else if (c === QUOTE) break;
          }
          if (i < n) {
            inString = false;
            i++;
          }
          continue;
        }
        const c = chunk[i]!;
        if (c === QUOTE) inString = true;
        else if (c === OPEN_OBJECT || c === OPEN_LIST) depth++;
        else if (c === CLOSE_OBJECT || c === CLOSE_LIST) {
          if (depth > 0) depth--;
          else if (c === CLOSE_OBJECT) {
            this.fail = true;
            break;
          } else {
            ended(i);
            state = END;
          }
        } else if (c === COMMA && depth === 0) {
          ended(i);
          state = VALUE;
        }
        i++;
        continue;
      }
      const c = chunk[i]!;
      if (!isSpace(c)) {
        if (state === START) {
          if (c !== OPEN_LIST) {
            this.fail = this.notAList = true;
            break;
          }
          state = FIRST;
        } else if (state === END || c === COMMA || (c === CLOSE_LIST && state === VALUE)) {
          this.fail = true;
          break;
        } else if (c === CLOSE_LIST) state = END;
        else {
          state = INSIDE;
          start = i;
          continue; // the element's first byte is read as part of it
        }
      }
      i++;
    }
    Object.assign(this, { state, depth, inString, escaped });
    if (this.fail) return;
    if (batchStart >= 0) elements(chunk.subarray(batchStart, batchEnd), true);
    if (state === INSIDE && start >= 0 && start < n) this.pieces.push(chunk.slice(start));
  }

  /** True when the bytes so far made a whole JSON array. */
  get complete(): boolean {
    return !this.fail && this.state === END;
  }

}

/**
 * Reads a list answer from its body stream: each element parsed and checked by `schema`, the
 * issues worded as the whole-text parse words them ("3.uuid: …", at most three, "and N more").
 */
export async function readList<T>(body: ReadableStream<Uint8Array> | null, schema: v.GenericSchema<unknown, T>, expected: string, whole: WholeText<T>): Promise<ListAnswer<T>> {
  const decoder = new TextDecoder();
  const splitter = new ArraySplitter();
  const value: T[] = [];
  const places: string[] = [];
  let issues = 0;
  let brokenElement = false;
  let index = 0;
  const onElements = (bytes: Uint8Array, several: boolean) => {
    if (brokenElement) return;
    let parsed: unknown[];
    try {
      parsed = several ? (JSON.parse(`[${decoder.decode(bytes)}]`) as unknown[]) : [JSON.parse(decoder.decode(bytes))];
    } catch {
      brokenElement = true;
      return;
    }
    for (const element of parsed) check(element, index++);
  };
  const check = (element: unknown, i: number) => {
    const r = v.safeParse(schema, element);
    if (r.success) {
      if (issues === 0) value.push(r.output);
      return;
    }
    issues += r.issues.length;
    for (const issue of r.issues) {
      if (places.length === 3) break;
      const path = v.getDotPath(issue);
      places.push(`${path ? `${i}.${path}` : i}: ${issue.message}`);
    }
  };
  // The first bytes are kept for the message about an answer that is not JSON; all of them
  // only when the answer does not even begin as a list (a page, an object): then it is judged whole.
  const head: Uint8Array[] = [];
  let headBytes = 0;
  const reader = body?.getReader();
  while (reader) {
    const { value: chunk, done } = await reader.read();
    if (done) break;
    if (splitter.notAList || headBytes < 4096) {
      head.push(chunk);
      headBytes += chunk.length;
    }
    if (!splitter.fail && !brokenElement) splitter.push(chunk, onElements);
  }
  if (splitter.notAList || splitter.fail || brokenElement || !splitter.complete) return whole(decoder.decode(concat(head)));
  if (issues > 0) {
    const more = issues > 3 ? ` (and ${issues - 3} more)` : "";
    return { ok: false, message: `expected ${expected}, but ${places.join("; ")}${more}`, data: undefined };
  }
  return { ok: true, value };
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
