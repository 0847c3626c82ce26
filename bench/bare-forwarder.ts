/**
 * The ceiling reference of the benchmark: the least a SOCKS5 proxy on Bun's sockets can do.
 * No-auth CONNECT to an IPv4 literal, no policy, no logging, no counters, no keepalive, no
 * backpressure (the tests that use it move at most 64 bytes at a time). Not a product: it exists
 * so that `proxy-bench.ts` can show how much of egressd's cost is Bun's socket layer itself.
 *
 *   bun bench/bare-forwarder.ts PORT
 */
import type { Socket } from "bun";

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) throw new Error("usage: bare-forwarder.ts PORT");

interface Pair {
  peer: Socket<Pair> | null;
  stage: "greeting" | "request" | "dialing" | "relaying";
}

const targetHandlers = {
  data(s: Socket<Pair>, d: Uint8Array) {
    s.data.peer?.write(d);
  },
  close(s: Socket<Pair>) {
    s.data.peer?.end();
  },
};

Bun.listen<Pair>({
  hostname: "127.0.0.1",
  port,
  socket: {
    open(s) {
      s.data = { peer: null, stage: "greeting" };
    },
    data(s, d) {
      const st = s.data;
      if (st.stage === "relaying") {
        st.peer!.write(d);
      } else if (st.stage === "greeting") {
        s.write(Uint8Array.of(5, 0)); // the benchmark client sends the greeting in one segment
        st.stage = "request";
      } else if (st.stage === "request") {
        st.stage = "dialing";
        const ip = `${d[4]}.${d[5]}.${d[6]}.${d[7]}`;
        Bun.connect<Pair>({ hostname: ip, port: (d[8]! << 8) | d[9]!, data: { peer: s, stage: "relaying" }, socket: targetHandlers }).then(
          (t) => {
            st.peer = t;
            st.stage = "relaying";
            s.write(Uint8Array.of(5, 0, 0, 1, 0, 0, 0, 0, 0, 0));
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
