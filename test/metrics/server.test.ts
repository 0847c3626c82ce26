/**
 * The listener on loopback, driven by independent clients: curl for headers and methods, promtool
 * for the exposition, fetch for the rest.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { connect } from "node:net";
import { createEgressdMetrics } from "../../lib/metrics/egressd.ts";
import { ListenError } from "../../lib/metrics/errors.ts";
import { MetricsServer } from "../../lib/metrics/server.ts";
import { EXIT_KEY, fakeSources, recordingLogger } from "./helpers.ts";

const build = { version: "0.1.0", runtime: `bun ${Bun.version}` };
const open: MetricsServer[] = [];

afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

function server(opts: Partial<ConstructorParameters<typeof MetricsServer>[0]> = {}): MetricsServer {
  const s = new MetricsServer({ registry: { render: async () => "# HELP a h\n# TYPE a gauge\na 1\n" }, ...opts });
  open.push(s);
  return s;
}

async function run(argv: string[], stdin?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = Bun.spawn(argv, { stdin: stdin === undefined ? "ignore" : new TextEncoder().encode(stdin), stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}

/** Sends `request` bytes on a fresh connection and returns everything until the server closes. */
function rawRequest(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = "";
    const sock = connect(port, "127.0.0.1", () => sock.end(request));
    sock.setEncoding("utf8");
    sock.setTimeout(2000, () => sock.destroy(new Error("raw request timed out")));
    sock.on("data", (chunk: string) => (data += chunk));
    sock.on("close", () => resolve(data));
    sock.on("error", reject);
  });
}

async function refused(url: string): Promise<boolean> {
  try {
    await fetch(url, { signal: AbortSignal.timeout(2000) });
    return false;
  } catch (err) {
    return (err as { code?: string }).code === "ConnectionRefused" || /refused|ECONNREFUSED/i.test(String(err));
  }
}

describe("a real scrape", () => {
  test("passes promtool check metrics, tricky label values included", async () => {
    const metrics = createEgressdMetrics(fakeSources(), {
      build,
      // Escaping through Prometheus' own parser: quote, backslash and newline in a label value.
      friendlyNames: { [EXIT_KEY]: 'the "exit" C:\\vps\nline two' },
    });
    const s = server({ registry: metrics.registry });
    await s.listen({ host: "127.0.0.1", port: 0 });
    const scrape = await run(["curl", "-sS", "--fail", `${s.url}/metrics`]);
    expect(scrape.code).toBe(0);
    expect(scrape.stdout).toContain('friendly_name="the \\"exit\\" C:\\\\vps\\nline two"');
    expect(scrape.stdout).toContain("process_resident_memory_bytes ");
    const check = await run(["promtool", "check", "metrics"], scrape.stdout);
    expect({ code: check.code, out: check.stdout + check.stderr }).toEqual({ code: 0, out: "" });
  });

  test("promtool is a real check: it rejects a broken exposition and lint problems", async () => {
    // Guards the test above against promtool silently accepting anything.
    const broken = await run(["promtool", "check", "metrics"], '# TYPE a gauge\na{l="unterminated} 1\n');
    expect(broken.code).not.toBe(0);
    const lint = await run(["promtool", "check", "metrics"], "# HELP things h\n# TYPE things counter\nthings 1\n");
    expect(lint.code).not.toBe(0);
    expect(lint.stdout + lint.stderr).toContain("_total");
  });

  test("curl sees the exact headers; HEAD has the GET's length and no body", async () => {
    const s = server();
    await s.listen({ host: "127.0.0.1", port: 0 });
    const get = await run(["curl", "-sS", "-D", "-", "-o", "/dev/null", `${s.url}/metrics`]);
    expect(get.stdout).toMatch(/^HTTP\/1\.1 200/);
    expect(get.stdout).toMatch(/\r\ncontent-type: text\/plain; version=0\.0\.4; charset=utf-8\r\n/i);
    const head = await run(["curl", "-sS", "-I", `${s.url}/metrics`]);
    expect(head.stdout).toMatch(/\r\ncontent-length: 30\r\n/i); // the 30-byte body above
    // On the raw wire: nothing follows the header block of a HEAD response.
    const raw = await rawRequest(s.address!.port, "HEAD /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    expect(raw).toMatch(/^HTTP\/1\.1 200 /);
    expect(raw.endsWith("\r\n\r\n")).toBe(true);
  });

  test("status codes over the wire: 200, 404, 405 with Allow, 503 with a reason", async () => {
    let ready = false;
    const s = server({ readiness: { ready: () => (ready ? { ok: true } : { ok: false, reason: "tunnel interface wg-egress missing" }) } });
    await s.listen({ host: "127.0.0.1", port: 0 });
    const status = async (path: string, method = "GET") =>
      (await run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", method, `${s.url}${path}`])).stdout;
    expect(await status("/healthz")).toBe("200");
    expect(await status("/nope")).toBe("404");
    expect(await status("/metrics", "POST")).toBe("405");
    const post = await run(["curl", "-sS", "-D", "-", "-o", "/dev/null", "-X", "DELETE", `${s.url}/healthz`]);
    expect(post.stdout).toMatch(/\r\nallow: GET, HEAD\r\n/i);
    const notReady = await run(["curl", "-s", "-w", "%{http_code}", `${s.url}/readyz`]);
    expect(notReady.stdout).toBe("not ready: tunnel interface wg-egress missing\n503");
    ready = true;
    expect(await status("/readyz")).toBe("200");
  });

  test("a request body is refused, not buffered", async () => {
    const s = server();
    await s.listen({ host: "127.0.0.1", port: 0 });
    const res = await fetch(`${s.url}/metrics`, { method: "POST", body: "x".repeat(64 * 1024) });
    expect(res.status).toBe(413);
  });
});

describe("listen, move, close", () => {
  test("binds what it is given and reports the real port", async () => {
    const s = server();
    const bound = await s.listen({ host: "127.0.0.1", port: 0 });
    expect(bound.host).toBe("127.0.0.1");
    expect(bound.port).toBeGreaterThan(0);
    expect(s.url).toBe(`http://127.0.0.1:${bound.port}`);
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
  });

  test("accepts host:port strings, IPv6 bracketed", async () => {
    const probe = server();
    const { port } = await probe.listen({ host: "::1", port: 0 });
    await probe.close();
    const s = server();
    expect(await s.listen(`[::1]:${port}`)).toEqual({ host: "::1", port });
    expect(await (await fetch(`http://[::1]:${port}/healthz`)).text()).toBe("ok\n");
  });

  test("moves to a new address: the new one serves, the old one is closed", async () => {
    const s = server();
    const a = await s.listen({ host: "127.0.0.1", port: 0 });
    const b = await s.listen({ host: "127.0.0.2", port: 0 });
    expect(b.host).toBe("127.0.0.2");
    expect((await fetch(`http://127.0.0.2:${b.port}/healthz`)).status).toBe(200);
    expect(await refused(`http://127.0.0.1:${a.port}/healthz`)).toBe(true);
  });

  test("the same address again is a no-op: the socket is not re-created", async () => {
    const log = recordingLogger();
    const s = server({ log });
    const { port } = await s.listen({ host: "127.0.0.1", port: 0 });
    const binds = log.lines.length;
    expect(await s.listen(`127.0.0.1:${port}`)).toEqual({ host: "127.0.0.1", port });
    expect(log.lines.length).toBe(binds);
  });

  test("the same port under another spelling of the host frees the old socket first", async () => {
    const s = server();
    const { port } = await s.listen({ host: "::1", port: 0 });
    expect(await s.listen({ host: "0:0:0:0:0:0:0:1", port })).toEqual({ host: "0:0:0:0:0:0:0:1", port });
    expect((await fetch(`http://[::1]:${port}/healthz`)).status).toBe(200);
  });

  test("regression: a port in use is refused, not shared (Bun's development:false implies SO_REUSEPORT)", async () => {
    const first = server();
    const taken = await first.listen({ host: "127.0.0.1", port: 0 });
    const err = await server().listen(taken).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ListenError);
    expect((err as ListenError).code).toBe("EADDRINUSE");
  });

  test("a port held by another process is refused", async () => {
    const other = Bun.spawn(["python3", "-c", "import socket,sys;s=socket.socket();s.bind(('127.0.0.1',0));s.listen();print(s.getsockname()[1],flush=True);sys.stdin.read()"], { stdin: "pipe", stdout: "pipe" });
    try {
      const reader = other.stdout.getReader();
      const port = Number(new TextDecoder().decode((await reader.read()).value).trim());
      const err = await server().listen({ host: "127.0.0.1", port }).catch((e: unknown) => e);
      expect((err as ListenError).code).toBe("EADDRINUSE");
    } finally {
      other.kill();
      await other.exited;
    }
  });

  test("a failed move keeps the old listener serving", async () => {
    const squatter = server();
    const taken = await squatter.listen({ host: "127.0.0.1", port: 0 });
    const s = server();
    const old = await s.listen({ host: "127.0.0.1", port: 0 });
    const err = await s.listen(taken).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ListenError);
    expect((err as ListenError).code).toBe("EADDRINUSE");
    expect((err as ListenError).address).toBe(`127.0.0.1:${taken.port}`);
    expect(s.address).toEqual(old);
    expect((await fetch(`http://127.0.0.1:${old.port}/healthz`)).status).toBe(200);
  });

  test("an address this host does not have: EADDRNOTAVAIL", async () => {
    const err = await server().listen("192.0.2.77:9586").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ListenError);
    expect((err as ListenError).code).toBe("EADDRNOTAVAIL");
  });

  test("close stops listening, twice is fine, and the port can be bound again", async () => {
    const s = server();
    const { port } = await s.listen({ host: "127.0.0.1", port: 0 });
    await s.close();
    await s.close();
    expect(s.address).toBeNull();
    expect(await refused(`http://127.0.0.1:${port}/healthz`)).toBe(true);
    expect(await s.listen(`127.0.0.1:${port}`)).toEqual({ host: "127.0.0.1", port });
  });

  test("close lets a scrape in flight finish", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const s = server({ registry: { render: () => gate.then(() => "# HELP a h\n# TYPE a gauge\na 1\n") } });
    await s.listen({ host: "127.0.0.1", port: 0 });
    const inFlight = fetch(`${s.url}/metrics`).then((r) => r.text());
    await Bun.sleep(50);
    const closed = s.close();
    setTimeout(release, 50);
    expect(await inFlight).toContain("a 1\n");
    await closed;
  });

  test("a scrape that never ends is cut after the grace period", async () => {
    const s = server({ registry: { render: () => new Promise<string>(() => {}) }, closeGraceMs: 100 });
    await s.listen({ host: "127.0.0.1", port: 0 });
    const inFlight = fetch(`${s.url}/metrics`).then(
      () => "answered",
      () => "cut",
    );
    await Bun.sleep(50);
    const t = performance.now();
    await s.close();
    expect(performance.now() - t).toBeLessThan(1000);
    expect(await inFlight).toBe("cut");
  });

  test("listen and close racing end closed, with nothing left listening", async () => {
    const s = server();
    const { port } = await s.listen({ host: "127.0.0.1", port: 0 });
    const moved = s.listen({ host: "127.0.0.2", port: 0 });
    const closed = s.close();
    const b = await moved;
    await closed;
    expect(s.address).toBeNull();
    expect(await refused(`http://127.0.0.1:${port}/healthz`)).toBe(true);
    expect(await refused(`http://127.0.0.2:${b.port}/healthz`)).toBe(true);
  });
});
