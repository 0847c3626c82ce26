// Layer 1: the one mapping from errors to failure kinds, and from kinds to SOCKS5 replies and result labels.
import { describe, expect, test } from "bun:test";
import {
  ConnectTimeoutError,
  Failure,
  ListenError,
  LocalResourceError,
  ResolveError,
  errorCode,
  failureForError,
  resultForFailure,
  type FailureKind,
} from "../../lib/proxy/errors.ts";
import { socks5Reply } from "../../lib/proxy/socks5-session.ts";
import { Reply } from "../../lib/proxy/socks5.ts";
import { CONNECTION_RESULTS } from "../../lib/proxy/stats.ts";

function osError(code: string): Error {
  return Object.assign(new Error(`Failed to connect`), { code });
}

// Every OS error, as the client sees it: the kind, the SOCKS5 reply for that kind, and the result label.
const OS_ERRORS: [string, FailureKind, number, string][] = [
  ["ECONNREFUSED", Failure.refused, Reply.connectionRefused, "refused"],
  ["ECONNRESET", Failure.refused, Reply.connectionRefused, "refused"],
  ["ENETUNREACH", Failure.networkUnreachable, Reply.networkUnreachable, "unreachable"],
  ["ENETDOWN", Failure.networkUnreachable, Reply.networkUnreachable, "unreachable"],
  ["EHOSTUNREACH", Failure.hostUnreachable, Reply.hostUnreachable, "unreachable"],
  ["EHOSTDOWN", Failure.hostUnreachable, Reply.hostUnreachable, "unreachable"],
  ["ETIMEDOUT", Failure.timeout, Reply.ttlExpired, "timeout"],
  ["EACCES", Failure.denied, Reply.notAllowed, "denied_destination"],
  ["EPERM", Failure.denied, Reply.notAllowed, "denied_destination"],
  ["EAFNOSUPPORT", Failure.addressUnsupported, Reply.addressTypeNotSupported, "unreachable"],
  ["EPROTONOSUPPORT", Failure.addressUnsupported, Reply.addressTypeNotSupported, "unreachable"],
  ["ENOTFOUND", Failure.hostUnreachable, Reply.hostUnreachable, "unreachable"],
  ["ENODATA", Failure.hostUnreachable, Reply.hostUnreachable, "unreachable"],
  // Regression: out of fds for the outbound socket, the client was told "connection refused".
  ["EMFILE", Failure.localResource, Reply.generalFailure, "local_resource"],
  ["ENFILE", Failure.localResource, Reply.generalFailure, "local_resource"],
  ["ENOBUFS", Failure.localResource, Reply.generalFailure, "local_resource"],
  ["ENOMEM", Failure.localResource, Reply.generalFailure, "local_resource"],
  ["EADDRNOTAVAIL", Failure.general, Reply.generalFailure, "unreachable"],
  ["ESOMETHINGNEW", Failure.general, Reply.generalFailure, "unreachable"],
];

describe("failureForError: OS errors", () => {
  test.each(OS_ERRORS)("%s -> %s", (code, kind) => expect(failureForError(osError(code))).toBe(kind));
  test.each(OS_ERRORS)("%s reaches the client as reply %d, result %s", (code, _kind, reply, result) => {
    const kind = failureForError(osError(code));
    expect(socks5Reply(kind) as number).toBe(reply);
    expect(resultForFailure(kind) as string).toBe(result);
  });
});

describe("failureForError: errors that are not plain OS errors", () => {
  test.each([
    ["our connect timeout", new ConnectTimeoutError("192.0.2.1:80", 10000), Failure.timeout, Reply.ttlExpired],
    ["NXDOMAIN", new ResolveError("nope.example", "ENOTFOUND"), Failure.hostUnreachable, Reply.hostUnreachable],
    ["DNS timeout", new ResolveError("slow.example", "ETIMEOUT"), Failure.hostUnreachable, Reply.hostUnreachable],
    ["a resolver error with a dial code", new ResolveError("x.example", "ECONNREFUSED"), Failure.hostUnreachable, Reply.hostUnreachable],
    ["no code", new Error("weird"), Failure.general, Reply.generalFailure],
    ["not an Error", "a string", Failure.general, Reply.generalFailure],
    ["null", null, Failure.general, Reply.generalFailure],
    ["undefined", undefined, Failure.general, Reply.generalFailure],
    ["numeric code", Object.assign(new Error("x"), { code: 111 }), Failure.general, Reply.generalFailure],
    ["out of fds, as the dialer reports it", new LocalResourceError("EMFILE", "192.0.2.1:80"), Failure.localResource, Reply.generalFailure],
  ])("%s -> %s", (_name, e, kind, reply) => {
    expect(failureForError(e)).toBe(kind);
    expect(socks5Reply(failureForError(e)) as number).toBe(reply);
  });
});

describe("errorCode", () => {
  test.each([
    ["a Node-style error", osError("ECONNREFUSED"), "ECONNREFUSED"],
    ["a numeric code", Object.assign(new Error("x"), { code: 111 }), undefined],
    ["no code", new Error("x"), undefined],
    ["a plain object", { code: "EPIPE" }, "EPIPE"],
    ["a string", "ECONNREFUSED", undefined],
    ["null", null, undefined],
    ["undefined", undefined, undefined],
  ])("%s -> %p", (_name, e, want) => expect(errorCode(e)).toBe(want));
});

describe("socks5Reply and resultForFailure: every kind", () => {
  // [kind, RFC 1928 §6 reply, metrics result]
  const KINDS: [FailureKind, number, string][] = [
    [Failure.refused, Reply.connectionRefused, "refused"],
    [Failure.networkUnreachable, Reply.networkUnreachable, "unreachable"],
    [Failure.hostUnreachable, Reply.hostUnreachable, "unreachable"],
    [Failure.timeout, Reply.ttlExpired, "timeout"],
    [Failure.denied, Reply.notAllowed, "denied_destination"],
    [Failure.authFailed, Reply.notAllowed, "auth_failed"],
    [Failure.protocolError, Reply.generalFailure, "protocol_error"],
    [Failure.addressUnsupported, Reply.addressTypeNotSupported, "unreachable"],
    [Failure.localResource, Reply.generalFailure, "local_resource"],
    [Failure.general, Reply.generalFailure, "unreachable"],
  ];
  test.each(KINDS)("%s -> reply %d, result %s", (kind, reply, result) => {
    expect(socks5Reply(kind) as number).toBe(reply);
    expect(resultForFailure(kind) as string).toBe(result);
  });
  test("the table covers every kind, and every result label is a known one", () => {
    expect(KINDS.map(([k]) => k).sort()).toEqual(Object.values(Failure).sort());
    for (const [kind] of KINDS) expect(CONNECTION_RESULTS).toContain(resultForFailure(kind));
  });
  test("no kind maps to success", () => {
    for (const kind of Object.values(Failure)) expect(socks5Reply(kind) as number).not.toBe(Reply.succeeded);
  });
});

test("ListenError names the address and the OS error, and keeps the cause", () => {
  const cause = osError("EADDRINUSE");
  const e = new ListenError("10.1.0.1:1080", "EADDRINUSE", { cause });
  expect(e.message).toBe("cannot listen on 10.1.0.1:1080: EADDRINUSE");
  expect(e.address).toBe("10.1.0.1:1080");
  expect(e.code).toBe("EADDRINUSE");
  expect(e.cause).toBe(cause);
});
