/**
 * The UDP echo target of bench/udp-bench.ts, in a process of its own: `bun udp-echo.ts`. Binds
 * 127.0.0.1:0, prints the port, and sends every datagram back to its sender unchanged.
 */
export {};

const s = await Bun.udpSocket({
  hostname: "127.0.0.1",
  port: 0,
  binaryType: "uint8array",
  socket: { data: (sock, data, port, address) => void sock.send(data, port, address) },
});
console.log(s.port);
