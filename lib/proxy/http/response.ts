/**
 * The head of an HTTP/1.1 response (RFC 9112 §4, §5) as a pure, bounded parser, and its encoder,
 * for the forward proxy to frame what the origin sends back.
 *
 * What this module does NOT do: it reads no body (`chunked.ts`), forwards nothing (`forward.ts`).
 * Errors are {@link HttpProtocolError}s with status 502: a response the proxy cannot frame is the
 * origin's fault, and RFC 9112 §6.3 asks a proxy to answer 502 and close the upstream connection.
 */
import { type BodyFraming, type HttpVersion, type ResponseContext, responseFraming, wantsPersistence } from "./framing.ts";
import { parseVersion } from "./request.ts";
import { DEFAULT_HEAD_LIMITS, type HeadLimits, type HeaderList, HttpProtocolError, NEED_MORE, type ParseResult, encodeHead, httpError, scanHead } from "./wire.ts";

/** A parsed response head. */
export interface ResponseHead {
  readonly version: HttpVersion;
  readonly status: number;
  /** The reason phrase as sent; may be empty. */
  readonly reason: string;
  readonly headers: HeaderList;
  readonly body: BodyFraming;
  /** 100, 102, 103...: another response head follows this one (RFC 9110 §15.2); 101 is not interim. */
  readonly interim: boolean;
  /** The server keeps the connection after this response (RFC 9112 §9.3); false for close-delimited bodies. */
  readonly persistent: boolean;
}

/*
 * status-line = HTTP-version SP status-code SP [ reason-phrase ]      RFC 9112 §4
 * status-code = 3DIGIT
 */

/** Parses a response head to a request made with `ctx.requestMethod`. See the module comment. */
export function parseResponseHead(buf: Uint8Array, ctx: ResponseContext, limits: HeadLimits = DEFAULT_HEAD_LIMITS): ParseResult<ResponseHead> {
  const scanned = scanHead(buf, "response", limits);
  if (scanned === NEED_MORE || scanned instanceof HttpProtocolError) return scanned;
  const { startLine, headers } = scanned.value;
  const m = /^(HTTP\/[^ ]*) (\d{3})(?: (.*))?$/.exec(startLine);
  if (!m) return httpError("badStartLine", "response", `status line "${startLine.slice(0, 64)}" does not parse`);
  const version = parseVersion(m[1]!, "response");
  if (version instanceof HttpProtocolError) return version;
  const status = Number(m[2]);
  if (status < 100) return httpError("badStartLine", "response", `status ${m[2]} is below 100`);
  const body = responseFraming(status, version, headers, ctx);
  if (body instanceof HttpProtocolError) return body;
  const interim = status >= 100 && status < 200 && status !== 101;
  const persistent = body.kind !== "close" && body.kind !== "tunnel" && wantsPersistence(version, headers);
  return { value: { version, status, reason: m[3] ?? "", headers, body, interim, persistent }, consumed: scanned.consumed };
}

/** The parts of a response head that {@link encodeResponseHead} writes. */
export interface ResponseHeadParts {
  readonly status: number;
  readonly reason: string;
  /** Default `{ major: 1, minor: 1 }`. */
  readonly version?: HttpVersion;
  readonly headers: HeaderList;
}

/** Encodes a response head, ending with the empty line. Throws `RangeError` for an unencodable part. */
export function encodeResponseHead(head: ResponseHeadParts): Uint8Array {
  if (!Number.isInteger(head.status) || head.status < 100 || head.status > 999) throw new RangeError(`status ${head.status} is not 100..999`);
  const v = head.version ?? { major: 1, minor: 1 };
  return encodeHead(`HTTP/${v.major}.${v.minor} ${head.status} ${head.reason}`, head.headers);
}
