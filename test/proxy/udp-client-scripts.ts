/**
 * Real SOCKS5 UDP clients nobody here wrote, as scripts the tests run (on loopback and in the lab):
 * PySocks `SOCK_DGRAM` sockets, and Node's `socks` package (its UDP ASSOCIATE command plus
 * `createUDPFrame`/`parseUDPFrame` over a real dgram socket). Each sends one datagram and prints
 * what came back as JSON: `{"data": ..., "host": ..., "port": ...}`, the reply's payload and the
 * source address the proxy wrapped it with. Exit 1 (and a message) when nothing came back.
 *
 * Arguments of both: proxyHost proxyPort destHost destPort payload.
 */
import { join } from "node:path";

/** Debian's python3, which has python3-socks (PySocks). */
export const PYTHON = "/usr/bin/python3";

/** PySocks: `socksocket(AF_INET, SOCK_DGRAM)`, `sendto`, `recvfrom`. */
export const PYSOCKS_UDP = `
import json, socks, socket, sys
proxy_host, proxy_port, host, port, payload = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
s = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
s.set_proxy(socks.SOCKS5, proxy_host, proxy_port)
s.settimeout(3)
try:
    s.sendto(payload.encode(), (host, port))
    data, addr = s.recvfrom(65535)
except Exception as e:
    print("error:", type(e).__name__, e); sys.exit(1)
print(json.dumps({"data": data.decode(errors="replace"), "host": addr[0], "port": addr[1]}))
`;

/** Node's `socks`: an `associate` command, then frames over a dgram socket bound first (DST.PORT = its port). */
export function nodeSocksUdp(root: string): string {
  return `
import { SocksClient } from ${JSON.stringify(join(root, "node_modules", "socks", "build", "index.js"))};
import dgram from "node:dgram";
const [proxyHost, proxyPort, host, port, payload] = process.argv.slice(1);
const udp = dgram.createSocket("udp4");
const fail = (m) => { console.log("error:", m); process.exit(1); };
setTimeout(() => fail("timeout"), 3000).unref();
udp.bind(0, () => {
  const client = new SocksClient({ proxy: { host: proxyHost, port: Number(proxyPort), type: 5 }, command: "associate", destination: { host: "0.0.0.0", port: udp.address().port }, timeout: 3000 });
  client.on("error", (e) => fail(e.message));
  client.on("established", (info) => {
    udp.on("message", (m) => {
      const f = SocksClient.parseUDPFrame(m);
      console.log(JSON.stringify({ data: f.data.toString(), host: f.remoteHost.host, port: f.remoteHost.port }));
      udp.close();
      info.socket.end();
    });
    udp.send(SocksClient.createUDPFrame({ remoteHost: { host, port: Number(port) }, data: Buffer.from(payload) }), info.remoteHost.port, info.remoteHost.host);
  });
  client.connect();
});
`;
}

/**
 * A Dante client config (for `socksify`, through SOCKS_CONF) that sends TCP and UDP through the
 * proxy. Dante adds "direct" routes of its own for the networks of the host's interfaces (loopback
 * included), so a destination must be off-link for socksify to proxy it: the lab's internet host.
 */
export function danteConf(proxyHost: string, proxyPort: number): string {
  return `route {
  from: 0.0.0.0/0 to: 0.0.0.0/0 via: ${proxyHost} port = ${proxyPort}
  proxyprotocol: socks_v5
  method: none
  command: connect udpassociate
}
`;
}
