/**
 * A stand-in for a daemon that crashes: brings the host up inside a lab namespace, prints one JSON line
 * `{"pid":..,"implementation":..}`, then idles until it is killed (the test sends SIGKILL).
 * Usage: bun crash-helper.ts '<json {spec, prefix}>', where prefix is `lab.prefix(ns, {uid, netAdmin})`.
 */
import { createRunner } from "../../lib/exec/runner.ts";
import { HostManager } from "../../lib/host/manager.ts";
import type { HostSpec } from "../../lib/host/spec.ts";
import { runnerSysctl } from "../../lib/host/sysctl.ts";

const { spec, prefix } = JSON.parse(process.argv[2] ?? "{}") as { spec: HostSpec; prefix: string[] };
const runner = createRunner({ prefix });
const host = new HostManager(spec, { runner, sysctl: runnerSysctl(runner) });
const up = await host.up();
process.stdout.write(JSON.stringify({ pid: up.pid, implementation: up.implementation }) + "\n");
setInterval(() => {}, 1 << 30);
