/**
 * An https "what is my IP" server for the lab's internet host: answers every request with the
 * client's address, over TLS with the certificate and key given as files.
 * Usage: bun tls-whoami.ts ADDRESS PORT CERT KEY   (prints "ready" once listening)
 */
const [address, port, cert, key] = process.argv.slice(2);
Bun.serve({
  hostname: address,
  port: Number(port),
  tls: { cert: Bun.file(cert!), key: Bun.file(key!) },
  fetch(req, server) {
    const peer = server.requestIP(req)?.address ?? "unknown";
    console.log(`https ${new URL(req.url).pathname} from ${peer}`);
    return new Response(peer + "\n", { headers: { "content-type": "text/plain" } });
  },
});
console.log("ready");
export {}; // a module, so its names stay its own
