/**
 * Golden files: `expectGolden(name, text)` compares `text` with test/host/golden/<name>.
 * Run with UPDATE_GOLDEN=1 to (re)write them; review the diff before committing.
 * A missing golden file fails the test, so a golden test can never pass vacuously.
 */
import { expect } from "bun:test";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

const DIR = join(import.meta.dir, "golden");

/** Asserts that `text` equals the golden file `name` (or rewrites it with UPDATE_GOLDEN=1). */
export function expectGolden(name: string, text: string, opts: { dir?: string } = {}): void {
  const path = join(opts.dir ?? DIR, name);
  if (process.env.UPDATE_GOLDEN === "1") {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
    return;
  }
  if (!existsSync(path)) throw new Error(`golden file ${path} is missing; run with UPDATE_GOLDEN=1 and review it`);
  expect(text).toBe(readFileSync(path, "utf8"));
}
