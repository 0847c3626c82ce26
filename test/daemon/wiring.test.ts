/**
 * lib/metrics and lib/proxy do not import each other, so each keeps its own list of proxy result
 * labels; lib/daemon passes one to the other. This pins that the two lists are the same, so a new
 * result in the proxy cannot silently vanish from `egressd_proxy_connections_total`.
 */
import { expect, test } from "bun:test";
import { PROXY_PROTOCOLS as METRIC_PROTOCOLS, PROXY_RESULTS, UDP_DROP_REASONS as METRIC_DROP_REASONS } from "../../lib/metrics/sources.ts";
import { CONNECTION_RESULTS, PROXY_PROTOCOLS } from "../../lib/proxy/stats.ts";
import { UDP_DROP_REASONS } from "../../lib/proxy/udp-relay.ts";

test("the proxy's connection results are exactly the metrics' result labels, in the same order", () => {
  expect([...CONNECTION_RESULTS]).toEqual([...PROXY_RESULTS]);
  expect(CONNECTION_RESULTS.length).toBeGreaterThan(0);
});

test("the proxy's protocol labels are exactly the metrics' protocol labels, in the same order", () => {
  expect([...PROXY_PROTOCOLS]).toEqual([...METRIC_PROTOCOLS]);
});

test("the UDP relay's drop reasons are exactly the metrics' reason labels, in the same order", () => {
  expect([...UDP_DROP_REASONS]).toEqual([...METRIC_DROP_REASONS]);
  expect(UDP_DROP_REASONS.length).toBeGreaterThan(0);
});
