/**
 * Run in a network namespace whose only route besides loopback is `unreachable default` (the kill
 * switch's route): a ProxyServer with UDP on, one association over a real control connection, a
 * datagram to 203.0.113.1 (the send fails with EHOSTUNREACH), then one to a loopback echo. Prints
 * `{ echoed, drops, associationsActive }` as JSON. Used by udp-unreachable.test.ts.
 */
import { parseCidr } from "../../lib/net/ip.ts";
import { ProxyServer } from "../../lib/proxy/server.ts";
import { parseUdpDatagram, UdpHeaderError } from "../../lib/proxy/socks5-udp.ts";
import { cleanup } from "./helpers.ts";
import { associate, peer, udpEcho, wrap } from "./udp-helpers.ts";

const server = new ProxyServer({ listeners: [{ host: "127.0.0.1", port: 0 }], allowClients: [parseCidr("127.0.0.0/8")], allowDestinations: [parseCidr("127.0.0.0/8")] });
server.start();
const port = Number(/:(\d+)$/.exec(server.listening[0]!)![1]);
const echo = await udpEcho();
const client = await peer();
const { reply } = await associate(port);
client.sock.send(wrap("203.0.113.1", 53, "into the kill switch"), reply.port, "127.0.0.1");
await Bun.sleep(100);
client.sock.send(wrap("127.0.0.1", echo.sock.port, "after"), reply.port, "127.0.0.1");
const got = await client.next(2000);
const d = got && parseUdpDatagram(got.data);
const echoed = d && !(d instanceof UdpHeaderError) ? new TextDecoder().decode(d.data) : null;
console.log(JSON.stringify({ echoed, drops: server.stats.udp.drops, associationsActive: server.stats.udp.associationsActive }));
await server.stop();
await cleanup();
