// Secrets: the API token never appears in any log line, error message or
// health answer, at any log level and in both log formats, whatever goes wrong:
// the token refused (401), 5xx, dropped connections, bad requests, and an API
// (or a proxy in front of it) that echoes the token back in an error body.
// Every file of this suite also checks all process output at its end (lib.ts).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { details, instances, type Client } from "../helpers/grpc";
import { BIN, TEST_TOKEN, allOutput, record, startSim, until, writeConfig, type SimProc } from "../helpers/procs";
import { providerConfig, providers } from "../helpers/provider";
import { SECRETS, checkNoSecretsAtEnd } from "./lib";

checkNoSecretsAtEnd();

/** A second token, handed over in a file, never via the environment. */
const FILE_TOKEN = "file-token-c0ffee5eed1e4b6f9a27";
SECRETS.add(FILE_TOKEN);

const CONFIG = providerConfig("se", { createVerifyDelay: "200ms", apiTimeout: "1s" }, ["{name: pool, flavor: flex-4-2, image: debian-13, zone: lpg1, min: 0, max: 5}"]);

let refusing: SimProc; // accepts only "other": our token gets 401
let working: SimProc; // accepts any token; faults are injected here
const served = providers();
/** Everything the provider answered: gRPC error messages, instance error infos, health bodies. */
const answers: string[] = [];

async function serve(sim: SimProc, extra: string[], env: Record<string, string> = {}) {
  const { s, c, healthPort } = await served.start({ apiUrl: sim.apiUrl, config: CONFIG, health: true, extra: ["--log-level", "debug", ...extra], env });
  return { s, c, healthPort: healthPort! };
}

/** Calls everything a CA would (and some it would not), keeping every answer. */
async function exercise(c: Client, healthPort: number) {
  const keep = (p: Promise<unknown>) =>
    p.then(
      (r) => answers.push(JSON.stringify(r)),
      (e) => answers.push(`${e.code} ${details(e)}`),
    );
  await keep(c.call("Refresh"));
  await keep(c.call("NodeGroupIncreaseSize", { id: "pool", delta: 1 }));
  await keep(c.call("NodeGroupIncreaseSize", { id: "pool", delta: -1 }));
  await keep(c.call("NodeGroupIncreaseSize", { id: "nope", delta: 1 }));
  await keep(c.call("NodeGroupDeleteNodes", { id: "pool", nodes: [{ providerID: `cloudscale://${crypto.randomUUID()}`, name: "x" }] }));
  await keep(c.call("NodeGroupDeleteNodes", { id: "pool", nodes: [{ providerID: "aws:///x", name: "y" }] }));
  await keep(c.call("NodeGroupTemplateNodeInfo", { id: "pool" }));
  await keep(c.call("NodeGroupNodes", { id: "pool" }));
  await keep(c.call("NodeGroupTargetSize", { id: "" }));
  await keep(c.call("PricingPodPrice", {}));
  await keep(c.call("Cleanup"));
  for (const path of ["/healthz", "/readyz", "/metrics", "/debug"]) {
    const r = await fetch(`http://127.0.0.1:${healthPort}${path}`).catch((e) => e as Error);
    answers.push(r instanceof Error ? r.message : `${r.status} ${await r.text()}`);
  }
}

/** The error info of the one failed creation in "pool", once it is reported. */
function failedCreation(c: Client) {
  return until("the failed creation is reported", async () => (await instances(c, "pool")).find((i) => i.status.errorInfo)?.status.errorInfo, 5000);
}

beforeAll(async () => {
  refusing = await startSim(["--boot-seconds", "0", "--token", "other", "--log-requests"]);
  working = await startSim(["--boot-seconds", "0", "--log-requests"]);
});

/** Stops the provider processes started so far (SIGTERM: their shutdown logs count too) and empties the working cloud. */
async function fresh() {
  await served.stopAll("SIGTERM");
  await working.reset();
}

afterAll(async () => {
  await served.stopAll();
  await refusing?.stop();
  await working?.stop();
});

describe("the API token never leaks", () => {
  test("token refused (401), debug level, JSON logs, token from the environment", async () => {
    const { s, c, healthPort } = await serve(refusing, ["--log-format", "json"]);
    await exercise(c, healthPort);
    expect(s.output()).toContain('"level":"debug"');
    expect(answers.join("\n")).toContain("the API token was refused (HTTP 401)");
  });

  test("token refused (401), debug level, text logs, token from a file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tok-"));
    writeFileSync(join(dir, "token"), `${FILE_TOKEN}\n`);
    const { c, healthPort } = await serve(refusing, ["--token-file", join(dir, "token")], { CLOUDSCALE_API_TOKEN: "" });
    await exercise(c, healthPort);
  });

  test("5xx, dropped connections, lost responses, 429 and rejected creates, at debug level in both formats", async () => {
    await fresh();
    const api = working;
    for (const format of ["json", "text"]) {
      const { s, c, healthPort } = await serve(working, ["--log-format", format]);
      // Each format gets half of the failures (each costs the provider's retries and backoff).
      const rules =
        format === "json"
          ? [[{ path: "/v1/*", action: "error", status: 500 }], [{ path: "/v1/*", action: "drop" }], [{ method: "POST", path: "/v1/servers", action: "lost-response", mode: "drop" }]]
          : [[{ path: "/v1/*", action: "error", status: 502 }], [{ path: "/v1/*", action: "error", status: 429, retryAfterSeconds: 0 }], [{ method: "POST", path: "/v1/servers", action: "error", status: 400, body: { flavor: "Invalid flavor." } }]];
      for (const r of rules) {
        const posts = (await api.counters())["POST /v1/servers"] ?? 0;
        const logged = s.output().length;
        await api.faults({ rules: r });
        await exercise(c, healthPort);
        // The create IncreaseSize accepted has gone out under the fault and its failure is logged.
        await until("the background create to fail and log", async () => {
          const sent = ((await api.counters())["POST /v1/servers"] ?? 0) > posts;
          const fired = (await api.fired())[0]! > 0;
          return sent && fired && /server creation failed|create got no clear answer/.test(s.output().slice(logged));
        }, 20_000);
      }
      await api.resetFaults();
    }
  });

  test("an error body that echoes the token back is not passed on: not in logs, not in NodeGroupNodes' error info", async () => {
    await fresh();
    const { s, c } = await serve(working, []);
    await c.call("Refresh");
    // A proxy or API that reflects the request's Authorization header in its error.
    await working.faults({ rules: [{ method: "POST", path: "/v1/servers", action: "error", status: 400, count: 1, body: { detail: `Bad request (Authorization: Bearer ${TEST_TOKEN})` } }] });
    await c.call("NodeGroupIncreaseSize", { id: "pool", delta: 1 });
    const info = await failedCreation(c);
    answers.push(info.errorMessage);
    expect(info.errorMessage).toContain("Bad request");
    expect(info.errorMessage).not.toContain(TEST_TOKEN);
    expect(s.output()).not.toContain(TEST_TOKEN);
    await c.call("NodeGroupDecreaseTargetSize", { id: "pool", delta: -1 });
  });

  test("nor is a piece of it, where a long error is cut short", async () => {
    await fresh();
    const { c } = await serve(working, []);
    await c.call("Refresh");
    // The error text is cut at 500 characters: here the cut falls 8 characters into the random part of the echoed token.
    const pad = "x".repeat(500 - "test-token-".length - 8);
    await working.faults({ rules: [{ method: "POST", path: "/v1/servers", action: "error", status: 400, count: 1, body: { detail: `${pad}${TEST_TOKEN}` } }] });
    await c.call("NodeGroupIncreaseSize", { id: "pool", delta: 1 });
    const info = await failedCreation(c);
    answers.push(info.errorMessage);
    const secretPart = TEST_TOKEN.slice("test-token-".length); // the random part of the token
    const pieces = Array.from({ length: secretPart.length - 5 }, (_, i) => secretPart.slice(i, i + 6));
    const output = allOutput.join("");
    expect({ inErrorInfo: pieces.filter((p) => info.errorMessage.includes(p)), inProcessOutput: pieces.filter((p) => output.includes(p)) }).toEqual({ inErrorInfo: [], inProcessOutput: [] });
    await c.call("NodeGroupDecreaseTargetSize", { id: "pool", delta: -1 });
  });

  test("validate and template against a refusing API", async () => {
    const config = writeConfig(CONFIG);
    for (const args of [["validate", "--config", config], ["template", "--config", config, "pool"]]) {
      const r = Bun.spawnSync([BIN, ...args], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", CLOUDSCALE_API_TOKEN: TEST_TOKEN, CLOUDSCALE_API_URL: refusing.apiUrl }, stdout: "pipe", stderr: "pipe" });
      const out = r.stdout.toString() + r.stderr.toString();
      record(out);
      expect(out.length).toBeGreaterThan(0);
    }
  });

  test("no secret in anything answered or printed so far", () => {
    const everything = [...answers, ...allOutput].join("\n");
    expect(answers.length).toBeGreaterThan(50);
    expect(everything).toContain("401"); // the refusal was exercised and logged
    for (const secret of SECRETS) expect(everything.includes(secret)).toBe(false);
  });
});
