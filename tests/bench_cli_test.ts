import assert from "node:assert/strict";
import { runScript } from "./util/synthetic.ts";

// bench:profile once threw a stack trace for --help (issue 12); it shares the scripts' options.
Deno.test("bench:profile answers --help and refuses a bad number without a stack", async () => {
  const help = await runScript("../bench/step_profile.ts", ["--help"]);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /--model <name>[\s\S]*--batch <n>[\s\S]*--kernels <tier>/);
  const bad = await runScript("../bench/step_profile.ts", ["--batch", "0"]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /--batch must be a whole number >= 1, got "0"/);
  assert.doesNotMatch(bad.stderr, /\n\s+at /);
  const model = await runScript("../bench/step_profile.ts", ["--model", "lenet6"]);
  assert.notEqual(model.code, 0);
  assert.match(model.stderr, /Allowed choices are lenet, lenet5/);
});
