/**
 * Writes the man pages (man/egressd.1, man/egressd.json.5) and the shell completions
 * (completions/egressd.bash, _egressd, egressd.fish) from the command table, each command's --help
 * and the config schema. `--check` writes nothing and exits 1 naming every file that differs, which
 * is how test/docs keeps the committed files from drifting. Run: npm run man
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pkg from "../package.json" with { type: "json" };
import { COMMANDS, usage } from "../lib/cli/main.ts";
import { configSchema } from "../lib/config/schema.ts";
import { bashCompletion, fishCompletion, zshCompletion } from "./docgen/completions.ts";
import { renderConfigPage, renderManPage } from "./docgen/man.ts";
import { schemaFields } from "./docgen/schema.ts";

const ROOT = join(import.meta.dir, "..");

/** Every generated file, by path relative to the repository root. */
export function generate(): Map<string, string> {
  const example = "examples/minimal.json";
  const src = {
    version: pkg.version,
    description: pkg.description,
    commands: COMMANDS,
    usage: usage(),
    fields: schemaFields(configSchema),
    example: { name: example, text: readFileSync(join(ROOT, example), "utf8") },
  };
  return new Map([
    ["man/egressd.1", renderManPage(src)],
    ["man/egressd.json.5", renderConfigPage(src)],
    ["completions/egressd.bash", bashCompletion(COMMANDS)],
    ["completions/_egressd", zshCompletion(COMMANDS)],
    ["completions/egressd.fish", fishCompletion(COMMANDS)],
  ]);
}

if (import.meta.main) {
  const check = process.argv.includes("--check");
  const stale: string[] = [];
  for (const [path, text] of generate()) {
    const file = join(ROOT, path);
    let old: string | null = null;
    try {
      old = readFileSync(file, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
    if (old === text) continue;
    if (check) stale.push(path);
    else {
      writeFileSync(file, text);
      console.log(`wrote ${path}`);
    }
  }
  if (stale.length) {
    console.error(`out of date (run npm run man): ${stale.join(", ")}`);
    process.exit(1);
  }
}
