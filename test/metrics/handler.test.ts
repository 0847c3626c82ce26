import { describe, expect, test } from "bun:test";
import { createMetricsHandler, oneLine } from "../../lib/metrics/handler.ts";
import type { Readiness } from "../../lib/metrics/sources.ts";
import { recordingLogger } from "./helpers.ts";

const BODY = "# HELP up_total h\n# TYPE up_total counter\nup_total 1\n";
const registry = { render: async () => BODY };

function req(path: string, method = "GET"): Request {
  return new Request(`http://127.0.0.1:9586${path}`, { method });
}

describe("routes", () => {
  const handle = createMetricsHandler({ registry });

  test("GET /metrics: 200, the 0.0.4 content type, the exposition", async () => {
    const res = await handle(req("/metrics"));
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(await res.text()).toBe(BODY);
  });

  test("a query string is ignored", async () => {
    expect((await handle(req("/metrics?name[]=up_total"))).status).toBe(200);
  });

  test("HEAD /metrics: headers of the GET, no body", async () => {
    const res = await handle(req("/metrics", "HEAD"));
    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBe(String(BODY.length));
    expect(await res.text()).toBe("");
  });

  test("GET /healthz: 200", async () => {
    const res = await handle(req("/healthz"));
    expect([res.status, await res.text()]).toEqual([200, "ok\n"]);
  });

  test.each([["/"], ["/metrics/"], ["/Metrics"], ["/favicon.ico"], ["/../metrics/x"], ["/constructor"], ["/__proto__"]])(
    "404 for %p",
    async (path) => {
      expect((await handle(req(path))).status).toBe(404);
    },
  );

  test.each([["POST"], ["PUT"], ["DELETE"], ["OPTIONS"], ["PATCH"]])("405 with Allow for %s /metrics", async (method) => {
    const res = await handle(req("/metrics", method));
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("GET, HEAD");
  });

  test("an unknown path is 404 whatever the method", async () => {
    expect((await handle(req("/nope", "POST"))).status).toBe(404);
  });

  test("a render that throws is a 500 with one line, logged", async () => {
    const log = recordingLogger();
    const h = createMetricsHandler({ registry: { render: async () => Promise.reject(new Error("bug\nhere")) }, log });
    const res = await h(req("/metrics"));
    expect([res.status, await res.text()]).toEqual([500, "metrics unavailable: bug here\n"]);
    expect(log.lines.map((l) => l.level)).toEqual(["error"]);
  });
});

describe("/readyz", () => {
  function withReady(answer: () => Readiness | Promise<Readiness>) {
    return createMetricsHandler({ registry, readiness: { ready: answer } });
  }

  test("200 when ready", async () => {
    const res = await withReady(() => ({ ok: true }))(req("/readyz"));
    expect([res.status, await res.text()]).toEqual([200, "ready\n"]);
  });

  test("503 with the reason in one line when not", async () => {
    const res = await withReady(async () => ({ ok: false, reason: "no handshake for 190 s\n(interface wg-egress)" }))(req("/readyz"));
    expect(res.status).toBe(503);
    expect(await res.text()).toBe("not ready: no handshake for 190 s (interface wg-egress)\n");
  });

  test("503 when the check itself throws", async () => {
    const res = await withReady(() => {
      throw new Error("state unknown");
    })(req("/readyz"));
    expect([res.status, await res.text()]).toEqual([503, "not ready: readiness check failed: state unknown\n"]);
  });

  test("503 without a reason still says something", async () => {
    expect(await (await withReady(() => ({ ok: false }))(req("/readyz"))).text()).toBe("not ready: no reason given\n");
  });

  test("no readiness source: ready", async () => {
    expect((await createMetricsHandler({ registry })(req("/readyz"))).status).toBe(200);
  });

  test("HEAD /readyz carries the status", async () => {
    const res = await withReady(() => ({ ok: false, reason: "rules missing" }))(req("/readyz", "HEAD"));
    expect([res.status, await res.text()]).toEqual([503, ""]);
  });
});

describe("oneLine", () => {
  test.each([
    ["a\nb", "a b"],
    ["a\r\n\tb  c ", "a b c"],
    ["x".repeat(300), "x".repeat(199) + "…"],
  ])("%p", (input, expected) => {
    expect(oneLine(input)).toBe(expected);
  });
});
