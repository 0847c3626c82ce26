/**
 * A SOCKS4 or SOCKS4a client (first byte 4) gets the refusal it understands, then the connection
 * closes: egressd speaks SOCKS5 only, and SOCKS4 cannot carry a password or an IPv6 address.
 *
 *   reply  +----+----+----+----+----+----+----+----+
 *          | VN | CD | DSTPORT |      DSTIP        |      SOCKS4 protocol (NEC), "Reply"
 *          +----+----+----+----+----+----+----+----+
 *            0    91   ignored by clients
 *
 * VN is 0 (the reply version), CD 91 "request rejected or failed". The reply is sent as soon as
 * the first byte arrives: nothing the client sends after it could change the answer. Does not
 * parse SOCKS4 requests.
 */
import type { IpAddr } from "../net/ip.ts";
import { Failure } from "./errors.ts";
import type { ClientConn, ProtocolCore, ProtocolHandler } from "./protocol.ts";

/** The SOCKS4 version byte a request starts with. */
export const SOCKS4_VERSION = 0x04;

/** SOCKS4 reply codes (CD). */
export const Socks4Reply = { granted: 90, rejected: 91 } as const;

/** The 8-byte SOCKS4 "request rejected or failed" reply. */
export const SOCKS4_REJECTED: Uint8Array = Uint8Array.of(0, Socks4Reply.rejected, 0, 0, 0, 0, 0, 0);

/** The log reason for a SOCKS4 client: what it must change. */
export const SOCKS4_REASON = "SOCKS4 is not supported; use socks5h:// (SOCKS5 with remote DNS) or an http:// proxy URL";

/** Builds the SOCKS4 refusal handler, for `ProxyServerOptions.protocols`. */
export function socks4Refusal(core: ProtocolCore): ProtocolHandler {
  return {
    name: "socks4",
    claims: (b) => b === SOCKS4_VERSION,
    data(conn: ClientConn) {
      core.log.info("proxy refused a SOCKS4 client", { client: conn.client, hint: SOCKS4_REASON });
      conn.socket.write(SOCKS4_REJECTED);
      core.fail(conn, Failure.protocolError, SOCKS4_REASON);
    },
    connected(_conn: ClientConn, _local: IpAddr | null, _port: number) {},
    failed() {},
  };
}
