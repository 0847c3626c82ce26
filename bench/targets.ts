/**
 * The benchmark's targets, in their own process so that the proxy, the load generator and the
 * targets do not share an event loop: an echo server, a discard server and an idle server, all on
 * 127.0.0.1. Prints `{"echo":P,"discard":P,"idle":P}` on stdout when ready; runs until killed.
 *
 *   bun bench/targets.ts
 */

function listen(handlers: { open?(s: Bun.Socket<undefined>): void; data(s: Bun.Socket<undefined>, d: Uint8Array): void }): number {
  return Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      ...handlers,
      open(s) {
        s.setNoDelay(true);
        handlers.open?.(s);
      },
      end(s) {
        s.end();
      },
    },
  }).port;
}

const echo = listen({
  data(s, d) {
    // Echo payloads are small (1 to 64 bytes); a short write would be a bench bug, not backpressure.
    s.write(d);
  },
});
const discard = listen({ data() {} });
const idle = listen({
  data(s, d) {
    s.write(d); // answers the one byte that proves the connection is up, then stays idle
  },
});

console.log(JSON.stringify({ echo, discard, idle }));
