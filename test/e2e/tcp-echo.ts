/**
 * A TCP echo server for the lab's internet host: `bun tcp-echo.ts ADDR4 ADDR6 PORT`. Echoes every byte
 * back on every connection, any number of connections, in one process. Prints "ready" once listening.
 */
const [addr4, addr6, portText] = process.argv.slice(2);
const port = Number(portText);
for (const hostname of [addr4!, addr6!]) {
  Bun.listen({
    hostname,
    port,
    socket: {
      data(socket, data) {
        socket.write(data);
      },
      error() {},
    },
  });
}
console.log("ready");
