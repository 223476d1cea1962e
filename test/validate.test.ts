// `validate` against the simulator over real HTTP: what exists passes, what does
// not is named, and a list that fails is reported as a check that could not run.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { createClient } from "../src/cloudscale";
import { parseConfig } from "../src/config";
import { startSimulator, type Simulator } from "../src/sim/server";
import { validateAgainstApi } from "../src/validate";

let sim: Simulator;
beforeAll(async () => {
  sim = await startSimulator({ listen: "127.0.0.1:0" });
});
afterAll(async () => {
  await sim?.stop();
});
beforeEach(() => sim.faults.reset());

const client = () => createClient({ url: sim.apiUrl, token: "t", attempts: 1 });
const config = parseConfig(`clusterName: c
nodeGroups:
  - {name: talos, flavor: flex-8-2, image: custom:talos-1.13.2, zone: lpg1, min: 0, max: 3}
  - {name: nope, flavor: flex-8-2, image: custom:nope, zone: lpg1, min: 0, max: 3}
  - {name: debian, flavor: flex-8-2, image: debian-13, zone: lpg1, min: 0, max: 3}
`);

describe("validateAgainstApi", () => {
  test("an existing custom image passes, a missing one is named", async () => {
    expect(await validateAgainstApi(config, client())).toEqual(['nodeGroups[1] (nope): image "custom:nope" does not exist among the custom images']);
  });

  test("when the custom images cannot be listed, those checks say they could not run; public images are still checked", async () => {
    sim.faults.failNext("GET", "/v1/custom-images", 500);
    const problems = await validateAgainstApi(config, client());
    expect(problems).toHaveLength(2);
    expect(problems[0]).toStartWith('nodeGroups[0] (talos): could not check image "custom:talos-1.13.2": the custom images could not be listed (listing custom images: HTTP 500');
    expect(problems[1]).toStartWith('nodeGroups[1] (nope): could not check image "custom:nope"');
    expect(problems.join("\n")).not.toContain("does not exist");
  });
});
