/**
 * lib/exec: the one runner for external tools. See runner.ts for the rules it enforces.
 * The fake runner for tests lives in fake.ts and is deliberately not re-exported here.
 */
export { createRunner } from "./runner.ts";
export type { ChildExit, ChildHandle, RunOptions, RunResult, Runner, RunnerOptions, StartOptions } from "./runner.ts";
export { CommandError, MissingToolError } from "./errors.ts";
export type { CommandErrorInit } from "./errors.ts";
export { formatArgv, quoteWord } from "./argv.ts";
export { DEBIAN_PACKAGES, debianPackageFor } from "./packages.ts";
