// Layer 2: real SOCKS5 clients — curl, Python's socks module, ncat and Node's socks package —
// against `egressd proxy` spawned as a process on loopback. Every refusal must reach each client
// as the right RFC 1928 reply code, and the proxy must log the matching result label.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PYTHON, ROOT, blackhole, cleanup, closedPort, dnsServer, echoServer, httpServer, spawnProxy, type ProxyProcess } from "./helpers.ts";

type Client = "curl" | "python" | "ncat" | "node";
const CLIENTS: Client[] = ["curl", "python", "ncat", "node"];

interface Outcome {
  /** What came back through the tunnel (echo or HTTP body), when the client connected. */
  readonly data?: string;
  /** The RFC 1928 reply code the client reported, when it reported one. */
  readonly reply?: number;
  /** Everything the client printed, for failure messages. */
  readonly output: string;
}

interface Target {
  readonly host: string;
  readonly port: number;
  /** Send the name to the proxy (socks5h) instead of resolving it locally. */
  readonly remoteDns?: boolean;
}

interface Creds {
  readonly username: string;
  readonly password: string;
}

// How each client spells each reply code (ncat and Node print names, curl and Python numbers).
const NCAT_MESSAGES: Record<number, string> = {
  1: "general SOCKS server failure",
  2: "connection not allowed by ruleset",
  3: "Network unreachable",
  4: "Host unreachable",
  5: "Connection refused",
  6: "TTL expired",
  7: "Command not supported",
  8: "Address type not supported",
};
const NODE_NAMES: Record<number, string> = {
  1: "Failure",
  2: "NotAllowed",
  3: "NetworkUnreachable",
  4: "HostUnreachable",
  5: "ConnectionRefused",
  6: "TTLExpired",
  7: "CommandNotSupported",
  8: "AddressNotSupported",
};

async function run(argv: string[], stdin?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const proc = Bun.spawn(argv, { stdin: stdin === undefined ? "ignore" : new TextEncoder().encode(stdin), stdout: "pipe", stderr: "pipe", cwd: ROOT });
  const killer = setTimeout(() => proc.kill("SIGKILL"), 15_000);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(killer);
  return { code, stdout, stderr };
}

const PY_CLIENT = `
import json, socks, sys
host, port, proxy_port, rdns, user, password = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5] or None, sys.argv[6] or None
s = socks.socksocket()
s.set_proxy(socks.SOCKS5, "127.0.0.1", proxy_port, rdns=rdns, username=user, password=password)
s.settimeout(10)
try:
    s.connect((host, port))
    s.sendall(b"hello-python\\n")
    data = b""
    while not data.endswith(b"\\n"):
        chunk = s.recv(100)
        if not chunk: break
        data += chunk
    print(json.dumps({"data": data.decode()}))
except Exception as e:
    print(json.dumps({"error": type(e).__name__, "msg": str(e), "socket_err": str(getattr(e, "socket_err", ""))}))
`;

const NODE_CLIENT = `
import { SocksClient } from ${JSON.stringify(join(ROOT, "node_modules", "socks", "build", "index.js"))};
const [host, port, proxyPort, user, password, command] = process.argv.slice(1);
const proxy = { host: "127.0.0.1", port: Number(proxyPort), type: 5, ...(user ? { userId: user, password } : {}) };
try {
  if (command === "bind") {
    const c = new SocksClient({ proxy, command: "bind", destination: { host, port: Number(port) }, timeout: 10000 });
    await new Promise((resolve, reject) => { c.on("error", reject); c.on("bound", () => reject(new Error("bound?!"))); c.connect(); });
  } else {
    const { socket } = await SocksClient.createConnection({ proxy, command: "connect", destination: { host, port: Number(port) }, timeout: 10000 });
    socket.write("hello-node\\n");
    let data = "";
    for await (const chunk of socket) { data += chunk; if (data.endsWith("\\n")) break; }
    socket.destroy();
    console.log(JSON.stringify({ data }));
  }
} catch (e) { console.log(JSON.stringify({ error: e.message })); }
`;

/** Runs one client through the proxy to `target`; it sends one line and reads it back. */
async function viaClient(client: Client, proxyPort: number, target: Target, auth?: Creds): Promise<Outcome> {
  switch (client) {
    case "curl": {
      // curl speaks HTTP, so its targets are HTTP servers; the body comes back as `data`.
      const hostPart = target.host.includes(":") ? `[${target.host}]` : target.host;
      const args = ["curl", "-sS", "-m", "10", target.remoteDns ? "--socks5-hostname" : "--socks5", `127.0.0.1:${proxyPort}`];
      if (auth) args.push("--proxy-user", `${auth.username}:${auth.password}`);
      const r = await run([...args, `http://${hostPart}:${target.port}/`]);
      const m = /SOCKS5 connection to .*\((\d)\)/.exec(r.stderr);
      return { data: r.code === 0 ? r.stdout : undefined, reply: m ? Number(m[1]) : undefined, output: r.stderr + r.stdout };
    }
    case "python": {
      const r = await run([PYTHON, "-c", PY_CLIENT, target.host, String(target.port), String(proxyPort), target.remoteDns ? "1" : "0", auth?.username ?? "", auth?.password ?? ""]);
      const out = JSON.parse(r.stdout.trim() || "{}") as { data?: string; error?: string; msg?: string; socket_err?: string };
      const m = /0x0(\d)/.exec(`${out.msg ?? ""} ${out.socket_err ?? ""}`);
      return { data: out.data, reply: m && out.error ? Number(m[1]) : undefined, output: r.stdout + r.stderr };
    }
    case "ncat": {
      // ncat resolves names itself unless the proxy type is socks5 with a name it cannot resolve;
      // it always sends names it is given as domain targets (ncat's socks5 sends ATYP 3).
      const args = ["ncat", "--proxy", `127.0.0.1:${proxyPort}`, "--proxy-type", "socks5", "-w", "10"];
      if (auth) args.push("--proxy-auth", `${auth.username}:${auth.password}`);
      const r = await run([...args, target.host, String(target.port)], "hello-ncat\n");
      const code = Object.entries(NCAT_MESSAGES).find(([, m]) => r.stderr.includes(m))?.[0];
      return { data: r.code === 0 ? r.stdout : undefined, reply: code === undefined ? undefined : Number(code), output: r.stderr + r.stdout };
    }
    case "node": {
      const r = await run(["node", "--input-type=module", "-e", NODE_CLIENT, target.host, String(target.port), String(proxyPort), auth?.username ?? "", auth?.password ?? "", "connect"]);
      const out = JSON.parse(r.stdout.trim() || "{}") as { data?: string; error?: string };
      const name = /rejected connection - (\w+)/.exec(out.error ?? "")?.[1];
      const code = Object.entries(NODE_NAMES).find(([, n]) => n === name)?.[0];
      return { data: out.data, reply: code === undefined ? undefined : Number(code), output: r.stdout + r.stderr };
    }
  }
}

/** Waits until the proxy's log contains `text` (its summary line is written as the connection closes). */
async function expectLog(p: ProxyProcess, text: string | RegExp, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  const has = () => (typeof text === "string" ? p.stderr().includes(text) : text.test(p.stderr()));
  while (!has() && Date.now() < deadline) await Bun.sleep(20);
  expect(has() ? "found" : `log lacks ${text}:\n${p.stderr()}`).toBe("found");
}

const tmp = mkdtempSync(join(tmpdir(), "egressd-clients-"));
const CREDS: Creds = { username: "pod", password: "correct horse" };
writeFileSync(join(tmp, "password"), CREDS.password + "\n", { mode: 0o600 }); // secret files must not be readable by others

let open: ProxyProcess; // system DNS, loopback destinations allowed
let strict: ProxyProcess; // the default destination policy
let authed: ProxyProcess; // RFC 1929 required
let tunnel: ProxyProcess; // tunnel-mode DNS against our own server
let echo: { port: number };
let http: { port: number };
let hole: number;

beforeAll(async () => {
  echo = echoServer();
  http = httpServer("hello-curl\n");
  hole = await blackhole();
  const dns = await dnsServer({ "echo.test": ["127.0.0.1"], "private.test": ["10.0.0.1"], "mixed.test": ["192.168.1.1", "::ffff:10.0.0.1"] });
  [open, strict, authed, tunnel] = await Promise.all([
    spawnProxy(["--allow-destination", "127.0.0.0/8", "--connect-timeout", "500ms"]),
    spawnProxy([]),
    spawnProxy(["--allow-destination", "127.0.0.0/8", "--user", CREDS.username, "--password-file", join(tmp, "password")]),
    spawnProxy(["--allow-destination", "127.0.0.0/8", "--dns", "tunnel", "--dns-server", `${dns.address}:${dns.port}`, "--dns-timeout", "2s"]),
  ]);
});

afterAll(async () => {
  await cleanup();
  rmSync(tmp, { recursive: true, force: true });
});

function targetFor(client: Client, host: string, remoteDns = false): Target {
  return { host, port: client === "curl" ? http.port : echo.port, remoteDns };
}

function expectEcho(client: Client, o: Outcome): void {
  expect(o.data ?? `no data: ${o.output}`).toBe(`hello-${client}\n`);
}

describe.each(CLIENTS)("%s", (client) => {
  test("CONNECT to an IPv4 address", async () => {
    expectEcho(client, await viaClient(client, open.port, targetFor(client, "127.0.0.1")));
    await expectLog(open, "result=ok");
  });

  test("CONNECT to a name the proxy resolves (system resolver)", async () => {
    expectEcho(client, await viaClient(client, open.port, targetFor(client, "localhost", true)));
    await expectLog(open, /target=localhost:\d+ address=127\.0\.0\.1:\d+ result=ok/);
  });

  test("CONNECT to a name the proxy resolves (tunnel mode, our DNS server)", async () => {
    expectEcho(client, await viaClient(client, tunnel.port, targetFor(client, "echo.test", true)));
    await expectLog(tunnel, /target=echo\.test:\d+ address=127\.0\.0\.1:\d+ result=ok/);
  });

  test("with username/password", async () => {
    expectEcho(client, await viaClient(client, authed.port, targetFor(client, "127.0.0.1"), CREDS));
    await expectLog(authed, 'user=pod result=ok');
  });

  test("a wrong password is refused and counted", async () => {
    const o = await viaClient(client, authed.port, targetFor(client, "127.0.0.1"), { username: "pod", password: "wrong" });
    expect(o.data).toBeUndefined();
    await expectLog(authed, "result=auth_failed");
  });

  test("no credentials when the proxy requires them", async () => {
    const o = await viaClient(client, authed.port, targetFor(client, "127.0.0.1"));
    expect(o.data).toBeUndefined();
    await expectLog(authed, /result=auth_failed reason="no acceptable auth method/);
  });

  // The refusals: [name, reply code, result label, proxy, target]
  const refusals: [string, number, string, () => ProxyProcess, () => Target][] = [
    ["a private IPv4 destination", 2, "denied_destination", () => strict, () => targetFor(client, "10.0.0.1")],
    ["a loopback destination", 2, "denied_destination", () => strict, () => targetFor(client, "127.0.0.1")],
    ["an IPv4-mapped private destination", 2, "denied_destination", () => strict, () => targetFor(client, "::ffff:10.0.0.1")],
    ["a link-local destination", 2, "denied_destination", () => strict, () => targetFor(client, "169.254.169.254")],
    ["a name that resolves to loopback (checked after resolution)", 2, "denied_destination", () => strict, () => targetFor(client, "localhost", true)],
    ["a name that resolves to a private address (tunnel DNS)", 2, "denied_destination", () => tunnel, () => targetFor(client, "private.test", true)],
    ["a name whose addresses are all private or mapped-private", 2, "denied_destination", () => tunnel, () => targetFor(client, "mixed.test", true)],
    ["a name that does not exist (tunnel DNS NXDOMAIN)", 4, "unreachable", () => tunnel, () => targetFor(client, "nx.test", true)],
    ["a closed port", 5, "refused", () => open, () => ({ host: "127.0.0.1", port: closedPort() })],
    ["a target that never answers (connect timeout)", 6, "timeout", () => open, () => ({ host: "127.0.0.1", port: hole })],
  ];

  test.each(refusals)("%s gets reply %d", async (_name, reply, result, proxy, target) => {
    const p = proxy();
    const o = await viaClient(client, p.port, target());
    expect({ reply: o.reply, data: o.data }).toEqual({ reply, data: undefined });
    await expectLog(p, `result=${result}`);
  }, 20_000);
});

test("Node's socks client gets 'command not supported' (0x07) for BIND", async () => {
  const r = await run(["node", "--input-type=module", "-e", NODE_CLIENT, "0.0.0.0", "0", String(open.port), "", "", "bind"]);
  expect(r.stdout).toContain("rejected connection - CommandNotSupported");
  await expectLog(open, /command 2 not supported/);
});

test("a client outside allowClients is closed before any byte is read", async () => {
  const denied = await spawnProxy(["--allow-client", "10.9.9.0/24", "--allow-destination", "127.0.0.0/8"]);
  for (const client of CLIENTS) {
    const o = await viaClient(client, denied.port, targetFor(client, "127.0.0.1"));
    expect({ client, data: o.data, reply: o.reply }).toEqual({ client, data: undefined, reply: undefined });
  }
  await expectLog(denied, /(result=denied_client[\s\S]*){4}/);
  expect(denied.stderr()).not.toContain("proxy accepted"); // never admitted
});

test("the proxy still serves after all of the above, and exits 0 on SIGTERM", async () => {
  for (const p of [open, strict, authed, tunnel]) {
    const o = await viaClient("curl", p.port, targetFor("curl", "127.0.0.1"), p === authed ? CREDS : undefined);
    if (p === strict) expect(o.reply).toBe(2);
    else expect(o.data).toBe("hello-curl\n");
    expect(await p.stop()).toBe(0);
  }
});
