/**
 * renderExitConfig as tables. That `wg setconf` accepts the text and the tunnel then works is shown
 * end to end by test/e2e/demo.test.ts: the demo's exit is configured by nothing else.
 */
import { describe, expect, test } from "bun:test";
import { configSchema, type ConfigInput } from "../../lib/config/schema.ts";
import { renderExitConfig } from "../../lib/lab/exit-config.ts";

const EXIT_KEY = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
const GW_PUB = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=";
const PSK = "FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE=";

function config(patch: (c: ConfigInput) => void = () => {}) {
  const c: ConfigInput = {
    interface: { name: "wg-egress", addresses: ["10.100.0.2/32", "fd00::2/128"] },
    exit: { name: "hetzner", publicKey: "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=", endpoint: "vps.example.net:51820" },
  };
  patch(c);
  return configSchema.parse(c);
}

describe("renderExitConfig", () => {
  test("the exit's wg setconf text: its key and the endpoint's port; the gateway as its one peer", () => {
    expect(renderExitConfig(config(), { exitPrivateKey: EXIT_KEY, gatewayPublicKey: GW_PUB })).toBe(
      `# The exit's side of egressd's tunnel "wg-egress" (exit "hetzner"), rendered from the
# gateway's egressd config. Apply on the exit with: wg setconf <interface> <this file>
[Interface]
PrivateKey = ${EXIT_KEY}
ListenPort = 51820

[Peer]
# the gateway (egressd, tunnel addresses 10.100.0.2/32, fd00::2/128)
PublicKey = ${GW_PUB}
AllowedIPs = 10.100.0.2/32, fd00::2/128
`,
    );
  });

  const allowed = (text: string) => /^AllowedIPs = (.*)$/m.exec(text)?.[1];
  const port = (text: string) => /^ListenPort = (.*)$/m.exec(text)?.[1];
  test.each([
    ["host routes stay", ["10.100.0.2/32"], "10.100.0.2/32"],
    ["a gateway address with a wider prefix becomes a host route", ["10.100.0.2/24", "fd00::2/64"], "10.100.0.2/32, fd00::2/128"],
    ["IPv6 is written canonically", ["FD00:0:0::0002/128"], "fd00::2/128"],
    ["IPv4 only", ["10.7.0.9/32"], "10.7.0.9/32"],
  ])("AllowedIPs: %s", (_, addresses, want) => {
    expect(allowed(renderExitConfig(config((c) => (c.interface.addresses = addresses)), { exitPrivateKey: EXIT_KEY, gatewayPublicKey: GW_PUB }))).toBe(want);
  });

  test.each([
    ["vps.example.net:51820", "51820"],
    ["198.51.100.2:443", "443"],
    ["[2001:db8::1]:51821", "51821"],
  ])("ListenPort from exit.endpoint %s", (endpoint, want) => {
    expect(port(renderExitConfig(config((c) => (c.exit.endpoint = endpoint)), { exitPrivateKey: EXIT_KEY, gatewayPublicKey: GW_PUB }))).toBe(want);
  });

  test("a preshared key appears when the gateway's config names one, and is then required", () => {
    const withPsk = config((c) => (c.exit.presharedKeyFile = "psk"));
    expect(renderExitConfig(withPsk, { exitPrivateKey: EXIT_KEY, gatewayPublicKey: GW_PUB, presharedKey: PSK + "\n" })).toContain(`\nPresharedKey = ${PSK}\n`);
    expect(() => renderExitConfig(withPsk, { exitPrivateKey: EXIT_KEY, gatewayPublicKey: GW_PUB })).toThrow(/presharedKey/);
    expect(renderExitConfig(config(), { exitPrivateKey: EXIT_KEY, gatewayPublicKey: GW_PUB, presharedKey: PSK })).not.toContain("PresharedKey");
  });

  test("keys are trimmed (they come from files and command output with newlines)", () => {
    const text = renderExitConfig(config(), { exitPrivateKey: EXIT_KEY + "\n", gatewayPublicKey: ` ${GW_PUB}\n` });
    expect(text).toContain(`PrivateKey = ${EXIT_KEY}\n`);
    expect(text).toContain(`PublicKey = ${GW_PUB}\n`);
  });
});
