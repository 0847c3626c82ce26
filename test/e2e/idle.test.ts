/**
 * Idle connections, SHORT VERSION for CI: 200 connections through the tunnel held idle for 60 s, all
 * echoing at the end. The real bar is 20 minutes, longer than microsocks's 15-minute idle
 * reaper; that does not fit CI's time budget and runs on demand: `bun bench/idle-tunnel.ts` (defaults:
 * 200 connections, 20 minutes).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { labUnsupported } from "../lab/index.ts";
import { type Bed, startGateway } from "./helpers.ts";
import { holdIdle } from "./idle.ts";

const skip = labUnsupported() ?? (Bun.which("dnsmasq") ? null : "e2e tests need dnsmasq");
const CONNECTIONS = 200;
const IDLE_MS = 60_000;
let bed: Bed;

beforeAll(async () => {
  if (skip === null) bed = await startGateway({ dns: false });
}, 60_000);
afterAll(async () => {
  await bed?.destroy();
});

describe.skipIf(skip !== null)("idle connections (short version: 60 s, not 20 min; see bench/idle-tunnel.ts)", () => {
  test(`${CONNECTIONS} connections through the tunnel, idle ${IDLE_MS / 1000} s, all still echo`, async () => {
    const r = await holdIdle(bed, CONNECTIONS, IDLE_MS, (l) => console.log(`idle (short version): ${l}`));
    expect(r.errors).toEqual([]);
    expect(r.opened).toBe(CONNECTIONS);
    expect(r.echoedBefore).toBe(CONNECTIONS);
    expect(r.activeAtEnd).toBe(CONNECTIONS);
    expect(r.echoedAfter).toBe(CONNECTIONS);
  }, IDLE_MS + 60_000);
});
