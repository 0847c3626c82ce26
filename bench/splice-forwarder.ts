/**
 * The splice relay engine of issue 18, kept for the benchmark after it failed its gate (see
 * bench/README.md): a SOCKS5 forwarder on Bun's sockets (no-auth CONNECT to an IPv4 literal, like
 * bare-forwarder.ts) that, once the target is connected and the success reply written, hands both
 * fds to a relay thread (splice/worker.ts) moving the bytes with splice(2) through a pipe each
 * way, on a level-triggered epoll through `bun:ffi`. The hand-off: dup(2) each fd, then `end()`
 * Bun's socket, which with nothing left to write only removes it from Bun's epoll and closes its
 * fd (no FIN, no SO_LINGER; checked with strace). Not a product: no policy, logging or keepalive.
 *
 *   bun bench/splice-forwarder.ts PORT
 */
import type { Socket } from "bun";
import { dlopen, FFIType, ptr } from "bun:ffi";
import { SpliceOp, type SpliceDone, type SpliceInit } from "./splice/ops.ts";

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) throw new Error("usage: splice-forwarder.ts PORT");

const SLOTS = 4096;
const PIPE_SIZE = 1024 * 1024;
const F_DUPFD_CLOEXEC = 1030;
const O_CLOEXEC = 0o2000000;

const libc = dlopen("libc.so.6", {
  fcntl: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  pipe2: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
  write: { args: [FFIType.i32, FFIType.ptr, FFIType.u64], returns: FFIType.i32 },
}).symbols;

const counters = new Float64Array(new SharedArrayBuffer(SLOTS * 2 * 8));
const cmdPipe = new Int32Array(2);
if (libc.pipe2(ptr(cmdPipe), O_CLOEXEC) !== 0) throw new Error("pipe2 failed");
const free: number[] = [];
let next = 0;
const worker = new Worker(new URL("./splice/worker.ts", import.meta.url).href);
await new Promise<void>((resolve, reject) => {
  worker.onmessage = (e: MessageEvent<SpliceDone | "ready">) => {
    if (e.data === "ready") resolve();
    else free.push(e.data.slot);
  };
  worker.onerror = (e) => reject(new Error(e.message));
  const init: SpliceInit = { cmdFd: cmdPipe[0]!, counters: counters.buffer as SharedArrayBuffer, pipeSize: PIPE_SIZE };
  worker.postMessage(init);
});

const cmd = new Int32Array(4);
function handOff(client: Socket<Pair>, target: Socket<Pair>): void {
  const slot = free.pop() ?? next++;
  if (slot >= SLOTS) throw new Error("out of slots");
  const c = libc.fcntl((client as unknown as { fd: number }).fd, F_DUPFD_CLOEXEC, 0);
  const t = libc.fcntl((target as unknown as { fd: number }).fd, F_DUPFD_CLOEXEC, 0);
  client.data.peer = null;
  target.data.peer = null;
  client.end();
  target.end();
  cmd.set([SpliceOp.add, slot, c, t]);
  libc.write(cmdPipe[1]!, ptr(cmd), 16);
}

interface Pair {
  peer: Socket<Pair> | null;
  stage: "greeting" | "request" | "dialing" | "relaying";
}

const targetHandlers = {
  data() {},
  close(s: Socket<Pair>) {
    s.data.peer?.end();
  },
};

Bun.listen<Pair>({
  hostname: "127.0.0.1",
  port,
  allowHalfOpen: true,
  socket: {
    open(s) {
      s.data = { peer: null, stage: "greeting" };
    },
    data(s, d) {
      const st = s.data;
      if (st.stage === "greeting") {
        s.write(Uint8Array.of(5, 0)); // the benchmark client sends the greeting in one segment
        st.stage = "request";
      } else if (st.stage === "request") {
        st.stage = "dialing";
        const ip = `${d[4]}.${d[5]}.${d[6]}.${d[7]}`;
        Bun.connect<Pair>({ hostname: ip, port: (d[8]! << 8) | d[9]!, allowHalfOpen: true, data: { peer: s, stage: "relaying" }, socket: targetHandlers }).then(
          (t) => {
            st.peer = t;
            st.stage = "relaying";
            s.write(Uint8Array.of(5, 0, 0, 1, 0, 0, 0, 0, 0, 0));
            handOff(s, t);
          },
          () => s.end(Uint8Array.of(5, 1, 0, 1, 0, 0, 0, 0, 0, 0)),
        );
      }
    },
    close(s) {
      s.data.peer?.end();
    },
  },
});
