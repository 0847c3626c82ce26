/**
 * A UDP "who am I" echo for the lab's internet host: `bun udp-echo.ts ADDR PORT`. Answers each
 * datagram with the sender's address, a space and the payload, so a client behind a proxy sees
 * where its datagram came from. Prints "ready" once bound.
 */
export {};

const [hostname, portText] = process.argv.slice(2);
await Bun.udpSocket({
  hostname: hostname!,
  port: Number(portText),
  socket: {
    data(s, data, port, address) {
      s.send(`${address} ${Buffer.from(data).toString()}`, port, address);
    },
  },
});
console.log("ready");
