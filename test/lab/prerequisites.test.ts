/** `egressd demo`'s prerequisite judgement as a table. The demo itself runs in test/e2e/demo.test.ts. */
import { describe, expect, test } from "bun:test";
import { DEMO_TOOLS, type HostFacts, missingPrerequisites } from "../../lib/lab/prerequisites.ts";

const all = Object.fromEntries(Object.keys(DEMO_TOOLS).map((t) => [t, true]));
const facts = (patch: Partial<HostFacts> = {}): HostFacts => ({ platform: "linux", uid: 0, tools: all, tun: true, ...patch });

describe("missingPrerequisites", () => {
  test("everything there: nothing to say", () => {
    expect(missingPrerequisites(facts())).toEqual([]);
  });

  test("not Linux: that alone", () => {
    expect(missingPrerequisites(facts({ platform: "darwin", uid: 501, tools: {} }))).toEqual([
      "egressd demo needs Linux (network namespaces, nftables, WireGuard); this is darwin",
    ]);
  });

  test("not root", () => {
    expect(missingPrerequisites(facts({ uid: 1000 }))).toEqual([
      "egressd demo needs root: it creates network namespaces and runs egressd with CAP_NET_ADMIN (try: sudo egressd demo)",
    ]);
  });

  test("missing tools: each named with its package, then one install line with each package once", () => {
    expect(missingPrerequisites(facts({ tools: { ...all, wg: false, "wireguard-go": false, setpriv: false, nsenter: false } }))).toEqual([
      "missing: wg (Debian package wireguard-tools)",
      "missing: wireguard-go (Debian package wireguard-go)",
      "missing: setpriv (Debian package util-linux)",
      "missing: nsenter (Debian package util-linux)",
      "install with: apt-get install -y --no-install-recommends wireguard-tools wireguard-go util-linux",
      "(or run ./scripts/setup.sh in a clone of the egressd repository)",
    ]);
  });

  test("no /dev/net/tun: said, with no package to install for it", () => {
    expect(missingPrerequisites(facts({ tun: false }))).toEqual([
      "missing: /dev/net/tun, which wireguard-go needs (modprobe tun; in a container, pass the device in)",
    ]);
  });

  test("every tool the demo runs has a package", () => {
    for (const [tool, pkg] of Object.entries(DEMO_TOOLS)) expect({ tool, pkg: pkg.length > 0 }).toEqual({ tool, pkg: true });
  });
});
