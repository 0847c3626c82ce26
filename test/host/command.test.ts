/**
 * The one command helper of lib/host: which failures are answers (table of real stderr, LC_ALL=C,
 * iproute2 6.1 / nftables 1.0.6 / wireguard-tools 1.0), and that everything else is still thrown.
 */
import { describe, expect, test } from "bun:test";
import { CommandError } from "../../lib/exec/errors.ts";
import { OUTCOMES, matchOutcome, runHost, type Outcome } from "../../lib/host/command.ts";
import { MissingCapabilityError } from "../../lib/host/errors.ts";
import { FakeRunner } from "../exec/fake.ts";

const err = (stderr: string) => new CommandError({ argv: ["ip"], exitCode: 2, signal: null, stderr, timedOut: false });

describe("matchOutcome", () => {
  // [stderr, tolerated, expected outcome or null]
  const rows: [string, Outcome[], Outcome | null][] = [
    ['Cannot find device "wg-egress"', ["linkGone"], "linkGone"],
    ['Device "wg-egress" does not exist.', ["linkGone"], "linkGone"],
    ["RTNETLINK answers: No such file or directory", ["alreadyGone"], "alreadyGone"],
    ["RTNETLINK answers: No such process", ["alreadyGone"], "alreadyGone"],
    ["Error: ipv4: FIB table does not exist.\nDump terminated", ["tableMissing"], "tableMissing"],
    ["Error: No such file or directory\nlist table inet egressd", ["nftTableMissing"], "nftTableMissing"],
    ["Error: Could not process rule: No such file or directory", ["nftTableMissing"], "nftTableMissing"],
    ["Error: Unknown device type.", ["noKernelWireguard"], "noKernelWireguard"],
    ["Unable to access interface: Protocol not supported", ["wireguardGone"], "wireguardGone"],
    ["Unable to access interface: No such device", ["wireguardGone"], "wireguardGone"],
    ["RTNETLINK answers: Address family not supported by protocol", ["noIpv6"], "noIpv6"],
    // Not tolerated by this call: an answer for another command is still an error here.
    ["RTNETLINK answers: No such process", ["linkGone"], null],
    ["Error: ipv4: FIB table does not exist.", [], null],
    // Real failures match nothing.
    ["RTNETLINK answers: File exists", ["alreadyGone", "linkGone", "tableMissing"], null],
    ["Error: out of memory", ["nftTableMissing"], null],
    ["", ["alreadyGone"], null],
  ];
  test.each(rows)("%p tolerating %p", (stderr, tolerate, want) => {
    expect(matchOutcome(err(stderr), tolerate)).toBe(want);
  });

  test("only command failures are outcomes", () => {
    expect(matchOutcome(new Error("No such process"), ["alreadyGone"])).toBeNull();
  });

  test("every declared outcome is matched by at least one row above", () => {
    const covered = new Set<string>(rows.flatMap((r) => (r[2] === null ? [] : [r[2]])));
    expect([...covered].sort()).toEqual(Object.keys(OUTCOMES).sort());
  });
});

describe("runHost", () => {
  test("returns stdout on success", async () => {
    const runner = new FakeRunner().on("ip -j link show", { stdout: "[]" });
    expect(await runHost(runner, ["ip", "-j", "link", "show"])).toEqual({ ok: true, stdout: "[]" });
  });

  test("a tolerated failure is returned with its outcome and the error", async () => {
    const runner = new FakeRunner().on("ip link del dev wg-egress", { exitCode: 1, stderr: 'Cannot find device "wg-egress"' });
    const r = await runHost(runner, ["ip", "link", "del", "dev", "wg-egress"], { tolerate: ["linkGone"] });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.outcome).toBe("linkGone");
    expect(r.error).toBeInstanceOf(CommandError);
    expect(r.error.argv).toEqual(["ip", "link", "del", "dev", "wg-egress"]);
  });

  test("an untolerated failure is thrown as the runner's CommandError", async () => {
    const runner = new FakeRunner().on("ip link del dev wg-egress", { exitCode: 1, stderr: 'Cannot find device "wg-egress"' });
    const e = await runHost(runner, ["ip", "link", "del", "dev", "wg-egress"]).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CommandError);
    expect((e as CommandError).stderr).toBe('Cannot find device "wg-egress"');
  });

  test("EPERM is a missing capability, even when the call tolerates other outcomes", async () => {
    const runner = new FakeRunner().on("ip rule del", { exitCode: 2, stderr: "RTNETLINK answers: Operation not permitted" });
    const e = await runHost(runner, ["ip", "rule", "del", "priority", "5000"], { tolerate: ["alreadyGone"] }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(MissingCapabilityError);
    expect((e as MissingCapabilityError).argv).toEqual(["ip", "rule", "del", "priority", "5000"]);
  });

  test("stdin reaches the command", async () => {
    const runner = new FakeRunner();
    await runHost(runner, ["nft", "-f", "-"], { stdin: "table inet egressd\n" });
    expect(runner.calls[0]!.stdin).toBe("table inet egressd\n");
  });
});
