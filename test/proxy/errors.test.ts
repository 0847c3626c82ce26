// Layer 1: the one mapping from failures to SOCKS5 replies, and from replies to result labels.
import { describe, expect, test } from "bun:test";
import { ConnectTimeoutError, ListenError, ResolveError, replyForError, resultForReply } from "../../lib/proxy/errors.ts";
import { Reply } from "../../lib/proxy/socks5.ts";

function osError(code: string): Error {
  return Object.assign(new Error(`Failed to connect`), { code });
}

describe("replyForError", () => {
  test.each([
    ["ECONNREFUSED", Reply.connectionRefused],
    ["ECONNRESET", Reply.connectionRefused],
    ["ENETUNREACH", Reply.networkUnreachable],
    ["ENETDOWN", Reply.networkUnreachable],
    ["EHOSTUNREACH", Reply.hostUnreachable],
    ["EHOSTDOWN", Reply.hostUnreachable],
    ["ETIMEDOUT", Reply.ttlExpired],
    ["EACCES", Reply.notAllowed],
    ["EPERM", Reply.notAllowed],
    ["EAFNOSUPPORT", Reply.addressTypeNotSupported],
    ["EPROTONOSUPPORT", Reply.addressTypeNotSupported],
    ["ENOTFOUND", Reply.hostUnreachable],
    ["ENODATA", Reply.hostUnreachable],
    ["EMFILE", Reply.generalFailure],
    ["EADDRNOTAVAIL", Reply.generalFailure],
    ["ESOMETHINGNEW", Reply.generalFailure],
  ])("%s -> %d", (code, reply) => expect(replyForError(osError(code))).toBe(reply));

  test.each([
    ["our connect timeout", new ConnectTimeoutError("192.0.2.1:80", 10000), Reply.ttlExpired],
    ["NXDOMAIN", new ResolveError("nope.example", "ENOTFOUND"), Reply.hostUnreachable],
    ["DNS timeout", new ResolveError("slow.example", "ETIMEOUT"), Reply.hostUnreachable],
    ["no code", new Error("weird"), Reply.generalFailure],
    ["not an Error", "a string", Reply.generalFailure],
    ["null", null, Reply.generalFailure],
    ["numeric code", Object.assign(new Error("x"), { code: 111 }), Reply.generalFailure],
  ])("%s -> %d", (_name, e, reply) => expect(replyForError(e)).toBe(reply));
});

describe("resultForReply", () => {
  test.each([
    [Reply.succeeded, "ok"],
    [Reply.generalFailure, "unreachable"],
    [Reply.notAllowed, "denied_destination"],
    [Reply.networkUnreachable, "unreachable"],
    [Reply.hostUnreachable, "unreachable"],
    [Reply.connectionRefused, "refused"],
    [Reply.ttlExpired, "timeout"],
    [Reply.commandNotSupported, "protocol_error"],
    [Reply.addressTypeNotSupported, "unreachable"],
  ])("%d -> %s", (reply, result) => expect(resultForReply(reply) as string).toBe(result));
});

test("ListenError names the address and the OS error, and keeps the cause", () => {
  const cause = osError("EADDRINUSE");
  const e = new ListenError("10.1.0.1:1080", "EADDRINUSE", { cause });
  expect(e.message).toBe("cannot listen on 10.1.0.1:1080: EADDRINUSE");
  expect(e.address).toBe("10.1.0.1:1080");
  expect(e.code).toBe("EADDRINUSE");
  expect(e.cause).toBe(cause);
});
