/**
 * lib/metrics inside a `bun build --compile` binary: the exposition, procfs reads and Bun.serve all
 * survive bundling, and process_* describes the binary's own process.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

let dir = "";
let child: ReturnType<typeof Bun.spawn<"pipe", "pipe", "inherit">> | null = null;
let url = "";
let spawnedAt = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "egressd-metrics-bin-"));
  const out = join(dir, "serve-metrics");
  const build = Bun.spawnSync([process.execPath, "build", "--compile", join(import.meta.dir, "fixtures/serve_metrics.ts"), "--outfile", out], {
    stdout: "pipe",
    stderr: "pipe",
  });
  if (build.exitCode !== 0) throw new Error(`bun build --compile failed: ${build.stderr.toString()}`);
  spawnedAt = Date.now() / 1000;
  child = Bun.spawn([out], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  const reader = child.stdout.getReader();
  let line = "";
  while (!line.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the binary exited before printing its URL");
    line += new TextDecoder().decode(value);
  }
  url = line.trim();
}, 60_000);

afterAll(async () => {
  if (child) {
    child.stdin.end();
    const code = await Promise.race([child.exited, Bun.sleep(5000).then(() => "timeout")]);
    if (code === "timeout") child.kill();
  }
  await rm(dir, { recursive: true, force: true });
});

test("the compiled binary serves a valid exposition about itself", async () => {
  const res = await fetch(`${url}/metrics`);
  expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
  const text = await res.text();

  const check = Bun.spawnSync(["promtool", "check", "metrics"], { stdin: new TextEncoder().encode(text), stdout: "pipe", stderr: "pipe" });
  expect({ code: check.exitCode, out: check.stdout.toString() + check.stderr.toString() }).toEqual({ code: 0, out: "" });

  expect(text).toContain(
    'wireguard_sent_bytes_total{interface="wg-egress",public_key="xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",allowed_ips="0.0.0.0/0",friendly_name="hetzner"} 2\n',
  );
  expect(text).toContain(`egressd_build_info{version="0.0.0-test",runtime="bun ${Bun.version}"} 1\n`);

  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1]);
  expect(value("process_resident_memory_bytes")).toBeGreaterThan(1024 * 1024);
  // The child's start time, from btime + its start ticks, is when this test spawned it.
  expect(Math.abs(value("process_start_time_seconds") - spawnedAt)).toBeLessThan(2);
  expect(value("process_open_fds")).toBeGreaterThan(3);
  expect(value("process_cpu_seconds_total")).toBeGreaterThan(0);
});

test("the compiled binary answers /readyz from its readiness source", async () => {
  const res = await fetch(`${url}/readyz`);
  expect([res.status, await res.text()]).toEqual([503, "not ready: fixture\n"]);
});
