import assert from "node:assert/strict";

const root = new URL("../", import.meta.url);

Deno.test("README's two commands run as written: tasks that exist, tests with their permissions", async () => {
  const readme = await Deno.readTextFile(new URL("README.md", root));
  const block = /## The two commands\s+```sh\n([\s\S]*?)```/.exec(readme);
  assert.ok(block, 'README has no "The two commands" block');
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", root)));
  const commands = block[1].split("\n").map((l) => l.replace(/#.*/, "").trim()).filter(Boolean);
  assert.equal(commands.length, 2);
  for (const command of commands) {
    const [deno, sub, ...args] = command.split(/\s+/);
    assert.equal(deno, "deno", command);
    if (sub === "task") {
      assert.ok(Object.hasOwn(config.tasks, args[0]), `${command}: no task "${args[0]}"`);
    } else if (sub === "test") {
      // A bare `deno test` has no permissions; -P takes deno.json's, -A all.
      assert.ok(args.includes("-A") || (args.includes("-P") && config.test?.permissions), command);
    } else {
      assert.fail(`${command}: neither a task nor deno test`);
    }
  }
  assert.match(commands[1], /^deno (task test|test (-P|-A))/);
});
