/**
 * A stand-in for a daemon that crashes: brings the host up inside a lab namespace, prints one JSON line
 * `{"pid":..,"implementation":..}`, then idles until it is killed (the test sends SIGKILL).
 * Usage: bun crash-helper.ts '<json {spec, ns, uid}>'
 */
import { createRunner } from "../../lib/exec/runner.ts";
import { HostManager } from "../../lib/host/manager.ts";
import type { HostSpec } from "../../lib/host/spec.ts";
import { runnerSysctl } from "../../lib/host/sysctl.ts";
import { nsPrefix } from "../../lib/lab/lab.ts";

const { spec, ns, uid } = JSON.parse(process.argv[2] ?? "{}") as { spec: HostSpec; ns: string; uid: number };
const runner = createRunner({ prefix: nsPrefix(ns, { uid, netAdmin: true }) });
const host = new HostManager(spec, { runner, sysctl: runnerSysctl(runner) });
const up = await host.up();
process.stdout.write(JSON.stringify({ pid: up.pid, implementation: up.implementation }) + "\n");
setInterval(() => {}, 1 << 30);
