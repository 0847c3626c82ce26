/**
 * The upload-to-discard pair of bench/tunnel-throughput.ts, one process per side so each runs in
 * its own namespace (and, for the client, as the uid it is given):
 *
 *   bun bench/tunnel-upload.ts server HOST PORT                 prints "ready", serves forever
 *   bun bench/tunnel-upload.ts client HOST PORT SECONDS [--socks PROXY_IP:PORT]
 *
 * The client uploads 1 MiB writes over one TCP connection, directly or through a SOCKS5 proxy
 * (no-auth CONNECT to the IPv4 literal HOST), for SECONDS, then half-closes. The server counts
 * what it received between the first byte and the EOF and answers with it, so the figure is the
 * receiver's (socket buffers along the way, more of them on the proxied path, do not inflate it):
 * the client prints `{"mbps":N,"bytes":N,"seconds":N}`.
 */
export {};

const [mode, host, portArg, secondsArg] = process.argv.slice(2);
const port = Number(portArg);
if (!host || !Number.isInteger(port) || port <= 0 || (mode !== "server" && mode !== "client")) {
  throw new Error("usage: tunnel-upload.ts server HOST PORT | client HOST PORT SECONDS [--socks IP:PORT]");
}

if (mode === "server") {
  Bun.listen<{ bytes: number; t0: number }>({
    hostname: host,
    port,
    allowHalfOpen: true, // answer after the client's EOF
    socket: {
      open(s) {
        s.data = { bytes: 0, t0: 0 };
      },
      data(s, d) {
        if (s.data.bytes === 0) s.data.t0 = performance.now();
        s.data.bytes += d.length;
      },
      end(s) {
        s.end(JSON.stringify({ bytes: s.data.bytes, seconds: (performance.now() - s.data.t0) / 1000 }));
      },
    },
  });
  console.log("ready");
} else {
  const seconds = Number(secondsArg);
  if (!(seconds > 0)) throw new Error(`tunnel-upload: SECONDS must be a positive number, not ${secondsArg}`);
  const i = process.argv.indexOf("--socks");
  const socks = i >= 0 ? process.argv[i + 1] : undefined;
  const [dialHost, dialPort] = socks ? [socks.slice(0, socks.lastIndexOf(":")), Number(socks.slice(socks.lastIndexOf(":") + 1))] : [host, port];
  const chunk = new Uint8Array(1 << 20).fill(0x61);
  let stage = socks ? 0 : 2; // 0: greeting sent, 1: request sent, 2: relaying
  let sent = 0;
  let at = 0;
  let running = true;
  let ready!: () => void;
  const established = new Promise<void>((r) => (ready = r));
  let answer = "";
  let answered!: () => void;
  const done = new Promise<void>((r) => (answered = r));
  const pump = (s: Bun.Socket<undefined>) => {
    while (running && stage === 2) {
      const n = s.write(chunk.subarray(at));
      if (n <= 0) return;
      sent += n;
      at = (at + n) % chunk.length;
      if (at !== 0) return; // partial write: wait for drain
    }
  };
  const sock = await Bun.connect({
    hostname: dialHost!,
    port: dialPort!,
    allowHalfOpen: true, // read the answer after our EOF
    socket: {
      open(s) {
        if (stage === 0) s.write(Uint8Array.of(5, 1, 0));
      },
      data(s, d) {
        if (stage === 0) {
          if (d[0] !== 5 || d[1] !== 0) throw new Error(`SOCKS5 greeting refused: ${[...d]}`);
          const ip = host.split(".").map(Number);
          s.write(Uint8Array.of(5, 1, 0, 1, ...ip, port >> 8, port & 0xff));
          stage = 1;
        } else if (stage === 1) {
          if (d[1] !== 0) throw new Error(`SOCKS5 CONNECT refused: reply ${d[1]}`);
          stage = 2;
          ready();
        } else {
          answer += new TextDecoder().decode(d);
        }
      },
      end() {
        answered();
      },
      close() {
        answered();
      },
      drain(s) {
        pump(s);
      },
    },
  });
  if (stage === 2) ready();
  await established;
  pump(sock);
  await Bun.sleep(seconds * 1000);
  running = false;
  sock.shutdown(); // FIN, keep reading (end() would close at once)
  await done;
  const got = JSON.parse(answer) as { bytes: number; seconds: number };
  console.log(JSON.stringify({ mbps: got.bytes / got.seconds / 1e6, ...got }));
  process.exit(0);
}
