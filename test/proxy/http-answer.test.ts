// Layer 1: the one place HTTP meets the core's failure kinds, as a table: every kind has a status,
// and the reasons read as sentences naming the destination and, for a denial, the setting.
import { expect, test } from "bun:test";
import { Failure, type FailureKind } from "../../lib/proxy/errors.ts";
import { failureMessage, failureResponse, httpStatus } from "../../lib/proxy/http-answer.ts";

test.each([
  [Failure.denied, 403],
  [Failure.authFailed, 407],
  [Failure.refused, 502],
  [Failure.networkUnreachable, 502],
  [Failure.hostUnreachable, 502],
  [Failure.addressUnsupported, 502],
  [Failure.general, 502],
  [Failure.timeout, 504],
  [Failure.protocolError, 400],
  [Failure.localResource, 503],
] as [FailureKind, number][])("%s -> %d", (kind, status) => {
  expect(httpStatus(kind)).toBe(status);
});

test("every failure kind has a status", () => {
  for (const kind of Object.values(Failure)) expect(httpStatus(kind)).toBeGreaterThanOrEqual(400);
});

test.each([
  [Failure.denied, "destination denied: private (10.0.0.5)", "10.0.0.5:80", "destination 10.0.0.5 is a private address; see proxy.allowDestinations"],
  [Failure.denied, "destination denied: own-address (10.1.0.1)", "gw.lan:80", "destination 10.1.0.1 is one of this gateway's own addresses; see proxy.allowDestinations"],
  [Failure.denied, "destination denied: loopback-embedded (64:ff9b::7f00:1)", "x:1", "destination 64:ff9b::7f00:1 is a loopback-embedded address; see proxy.allowDestinations"],
  [Failure.denied, "EACCES: permission denied", "a.example:443", "a.example:443 is not allowed: EACCES: permission denied"],
  [Failure.refused, "ECONNREFUSED: Failed to connect", "a.example:81", "a.example:81 refused the connection (ECONNREFUSED: Failed to connect)"],
  [Failure.timeout, "connect to 192.0.2.1:443 timed out after 10000 ms", "a.example:443", "a.example:443 did not answer in time (connect to 192.0.2.1:443 timed out after 10000 ms)"],
  [Failure.hostUnreachable, "cannot resolve nx.example: ENOTFOUND", "nx.example:443", "nx.example:443 cannot be reached: cannot resolve nx.example: ENOTFOUND"],
  [Failure.authFailed, "no Proxy-Authorization", undefined, "proxy authentication required: no Proxy-Authorization"],
] as [FailureKind, string, string | undefined, string][])("%s %j -> %j", (kind, reason, target, want) => {
  expect(failureMessage(kind, { reason, target })).toBe(want);
});

test("a target with control characters cannot split the response", () => {
  const text = new TextDecoder().decode(failureResponse(Failure.refused, { reason: "x", target: "evil\r\nSet-Cookie: a=b:80" }));
  expect(text.split("\r\n\r\n")[0]).not.toContain("Set-Cookie");
  expect(text).toStartWith("HTTP/1.1 502 Bad Gateway\r\n");
});
