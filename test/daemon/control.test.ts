/**
 * The control socket over a real Unix socket in a temp dir: the line protocol (driven by a raw
 * client, not by controlRequest), the socket file's lifecycle (stale, live, not a socket, mode), and
 * controlRequest's error messages.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ControlClientError, controlRequest, ControlServer, ControlSocketError, MAX_LINE } from "../../lib/daemon/control.ts";
import { PYTHON } from "./helpers.ts";

let dir: string;
let seq = 0;
const servers: ControlServer[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "egressd-control-"));
});
afterEach(async () => {
  for (const s of servers.splice(0)) await s.stop();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function socketPath(): string {
  return join(dir, `c${seq++}.sock`);
}

const handlers = {
  echo: (req: Record<string, unknown>) => ({ got: req }),
  slow: async (req: Record<string, unknown>) => {
    await Bun.sleep(Number(req.ms ?? 50));
    return "slow done";
  },
  fail: () => {
    throw new Error("the handler failed");
  },
  nothing: () => undefined,
};

async function serve(path = socketPath(), h: Record<string, (r: Record<string, unknown>) => unknown> = handlers): Promise<ControlServer> {
  const s = new ControlServer(path, h);
  await s.start();
  servers.push(s);
  return s;
}

/**
 * Writes `data` on a raw connection and collects reply lines until `lines` arrived or the server
 * closed the connection.
 */
function raw(path: string, data: string | string[], lines: number): Promise<{ replies: any[]; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const s = createConnection(path);
    let buf = "";
    const replies: any[] = [];
    let closed = false;
    const finish = () => {
      s.destroy();
      resolve({ replies, closed });
    };
    const timer = setTimeout(() => reject(new Error(`no ${lines} replies within 5 s; got ${JSON.stringify(replies)}`)), 5000);
    s.setEncoding("utf8");
    s.on("connect", async () => {
      for (const part of Array.isArray(data) ? data : [data]) {
        s.write(part);
        await Bun.sleep(10);
      }
    });
    s.on("data", (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        replies.push(JSON.parse(buf.slice(0, nl)));
        buf = buf.slice(nl + 1);
      }
      if (replies.length >= lines) {
        clearTimeout(timer);
        finish();
      }
    });
    s.on("error", () => undefined);
    s.on("close", () => {
      closed = true;
      clearTimeout(timer);
      finish();
    });
  });
}

/** Writes `data`, then collects every reply line until the server closes the connection (5 s at most). */
function untilClosed(path: string, data: string): Promise<{ replies: any[]; closedByServer: boolean }> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    let buf = "";
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ replies: parse(), closedByServer: false });
    }, 5000);
    const parse = () => buf.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
    s.setEncoding("utf8");
    s.on("connect", () => s.write(data));
    s.on("data", (d: string) => (buf += d));
    s.on("error", () => undefined);
    s.on("end", () => {
      clearTimeout(timer);
      s.destroy();
      resolve({ replies: parse(), closedByServer: true });
    });
  });
}

describe("the line protocol", () => {
  test("answers a command with its id and result", async () => {
    const s = await serve();
    const { replies } = await raw(s.path, '{"id":7,"cmd":"echo","x":1}\n', 1);
    expect(replies).toEqual([{ id: 7, ok: true, result: { got: { id: 7, cmd: "echo", x: 1 } } }]);
  });

  test("an undefined result is sent as null", async () => {
    const s = await serve();
    expect((await raw(s.path, '{"id":1,"cmd":"nothing"}\n', 1)).replies).toEqual([{ id: 1, ok: true, result: null }]);
  });

  test.each([
    ["an unknown command", '{"id":2,"cmd":"explode"}', { id: 2, ok: false, error: 'unknown command "explode"; known: echo, slow, fail, nothing' }],
    ["no cmd", '{"id":3}', { id: 3, ok: false, error: "unknown command undefined; known: echo, slow, fail, nothing" }],
    ["a cmd that is not a string", '{"id":4,"cmd":["echo"]}', { id: 4, ok: false, error: 'unknown command ["echo"]; known: echo, slow, fail, nothing' }],
    ["bad JSON", "{nope", { ok: false, error: "request is not JSON" }],
    ["JSON that is not an object", "42", { id: null, ok: false, error: "unknown command undefined; known: echo, slow, fail, nothing" }],
    ["a JSON null", "null", { id: null, ok: false, error: "unknown command undefined; known: echo, slow, fail, nothing" }],
    ["a handler that throws", '{"id":5,"cmd":"fail"}', { id: 5, ok: false, error: "the handler failed" }],
  ])("%s is answered with an error, and the connection stays usable", async (_name, line, want) => {
    const s = await serve();
    const { replies } = await raw(s.path, `${line}\n{"id":99,"cmd":"echo"}\n`, 2);
    expect(replies[0]).toEqual(want);
    expect(replies[1]).toEqual({ id: 99, ok: true, result: { got: { id: 99, cmd: "echo" } } });
  });

  test("pipelined requests are answered in order, a slow one first", async () => {
    const s = await serve();
    const { replies } = await raw(s.path, '{"id":1,"cmd":"slow","ms":100}\n{"id":2,"cmd":"echo"}\r\n\n   \n{"id":3,"cmd":"nothing"}\n', 3);
    expect(replies.map((r) => r.id)).toEqual([1, 2, 3]);
    expect(replies[0].result).toBe("slow done");
  });

  test("a request split across writes is reassembled", async () => {
    const s = await serve();
    const { replies } = await raw(s.path, ['{"id":1,', '"cmd":"ec', 'ho"}\n'], 1);
    expect(replies[0]).toEqual({ id: 1, ok: true, result: { got: { id: 1, cmd: "echo" } } });
  });

  test("a line longer than MAX_LINE without a newline is refused and the connection closed", async () => {
    const s = await serve();
    const r = await untilClosed(s.path, "x".repeat(MAX_LINE * 3));
    expect(r.replies).toEqual([{ ok: false, error: `request longer than ${MAX_LINE} bytes` }]);
    expect(r.closedByServer).toBe(true);
  });

  test("regression: a line longer than MAX_LINE was executed when its newline came in the same write", async () => {
    const s = await serve();
    const long = JSON.stringify({ id: 1, cmd: "echo", pad: "x".repeat(MAX_LINE + 100) });
    const r = await untilClosed(s.path, `${long}\n{"id":2,"cmd":"echo"}\n`);
    expect(r.replies).toEqual([{ ok: false, error: `request longer than ${MAX_LINE} bytes` }]);
    expect(r.closedByServer).toBe(true);
  });

  test("a line of exactly MAX_LINE is accepted", async () => {
    const s = await serve();
    const base = JSON.stringify({ id: 1, cmd: "echo", pad: "" });
    const line = JSON.stringify({ id: 1, cmd: "echo", pad: "x".repeat(MAX_LINE - base.length) });
    expect(line.length).toBe(MAX_LINE);
    const { replies } = await raw(s.path, line + "\n", 1);
    expect(replies[0].ok).toBe(true);
  });

  test("requests before an oversized line are still answered, in order", async () => {
    const s = await serve();
    const r = await untilClosed(s.path, `{"id":1,"cmd":"slow","ms":50}\n${"y".repeat(MAX_LINE + 1)}\n`);
    expect(r.replies).toEqual([
      { id: 1, ok: true, result: "slow done" },
      { ok: false, error: `request longer than ${MAX_LINE} bytes` },
    ]);
    expect(r.closedByServer).toBe(true);
  });
});

describe("the socket file", () => {
  test("is created with mode 0660 and removed on stop", async () => {
    const s = await serve();
    const st = statSync(s.path);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o660);
    await s.stop();
    servers.splice(servers.indexOf(s), 1);
    expect(existsSync(s.path)).toBe(false);
    await s.stop(); // twice is fine
  });

  test("takes the mode from options", async () => {
    const path = socketPath();
    const s = new ControlServer(path, handlers, { mode: 0o600 });
    await s.start();
    servers.push(s);
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  test("a stale socket left by a crash is replaced", async () => {
    const path = socketPath();
    // A socket file nobody listens on: python binds it and exits without unlinking, as a crash does.
    const r = spawnSync(PYTHON, ["-c", `import socket; s = socket.socket(socket.AF_UNIX); s.bind(${JSON.stringify(path)})`]);
    expect(r.status).toBe(0);
    expect(statSync(path).isSocket()).toBe(true);
    const s = await serve(path);
    expect(await controlRequest(path, "echo")).toEqual({ got: { id: 1, cmd: "echo" } });
    void s;
  });

  test("a live socket (another egressd) is refused and left working", async () => {
    const first = await serve();
    const second = new ControlServer(first.path, handlers);
    const e = await second.start().then(() => null, (x: unknown) => x);
    expect(e).toBeInstanceOf(ControlSocketError);
    expect((e as Error).message).toBe(`${first.path} is in use: is another egressd running?`);
    expect(await controlRequest(first.path, "echo")).toEqual({ got: { id: 1, cmd: "echo" } });
  });

  test("a file that is not a socket is refused and left untouched", async () => {
    const path = socketPath();
    writeFileSync(path, "precious\n");
    const e = await new ControlServer(path, handlers).start().then(() => null, (x: unknown) => x);
    expect(e).toBeInstanceOf(ControlSocketError);
    expect((e as Error).message).toBe(`${path} exists and is not a socket; refusing to replace it`);
    expect(readFileSync(path, "utf8")).toBe("precious\n");
  });

  test("a directory that does not exist is a ControlSocketError naming the path", async () => {
    const path = join(dir, "no/such/dir/control.sock");
    const e = await new ControlServer(path, handlers).start().then(() => null, (x: unknown) => x);
    expect(e).toBeInstanceOf(ControlSocketError);
    expect((e as Error).message).toContain(`cannot listen on ${path}`);
  });
});

describe("controlRequest", () => {
  test("returns the result, passing args but never letting them override cmd or id", async () => {
    const s = await serve();
    expect(await controlRequest(s.path, "echo", { args: { cmd: "fail", id: 42, ms: 5 } })).toEqual({ got: { cmd: "echo", id: 1, ms: 5 } });
  });

  test("rejects with the daemon's error", async () => {
    const s = await serve();
    const e = await controlRequest(s.path, "fail").catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ControlClientError);
    expect((e as Error).message).toBe("the handler failed");
  });

  test("explains a missing socket", async () => {
    const path = socketPath();
    await expect(controlRequest(path, "status")).rejects.toThrow(`control socket ${path} does not exist: is egressd running?`);
  });

  test("explains a stale socket", async () => {
    const path = socketPath();
    spawnSync(PYTHON, ["-c", `import socket; s = socket.socket(socket.AF_UNIX); s.bind(${JSON.stringify(path)})`]);
    await expect(controlRequest(path, "status")).rejects.toThrow(`control socket ${path} refuses connections: egressd is not running (stale socket)`);
  });

  test("gives up after timeoutMs when the daemon does not answer", async () => {
    const s = await serve(socketPath(), { hang: () => new Promise(() => {}) });
    const started = performance.now();
    await expect(controlRequest(s.path, "hang", { timeoutMs: 200 })).rejects.toThrow(`no answer from ${s.path} within 200 ms`);
    expect(performance.now() - started).toBeLessThan(2000);
  });
});
