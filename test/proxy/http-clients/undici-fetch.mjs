// undici-fetch: GET one URL with undici's fetch through a ProxyAgent, run by Node.
//   node undici-fetch.mjs URL PROXY_URL CA_FILE tunnel|forward
// PROXY_URL may carry user:password (undici turns it into Proxy-Authorization: Basic). undici 7
// tunnels every request with CONNECT by default, http:// ones too; "forward" sets proxyTunnel:
// false, so http:// requests go to the proxy in absolute form (https:// still tunnel). Prints
// "status <code>" on stderr and the body on stdout; exits 0 on a response, 1 on an error.
import { readFileSync } from "node:fs";
import { fetch, ProxyAgent } from "undici";

const [url, proxy, ca, mode] = process.argv.slice(2);
const tls = ca ? { ca: readFileSync(ca, "utf8") } : undefined;
const dispatcher = new ProxyAgent({ uri: proxy, requestTls: tls, proxyTls: tls, proxyTunnel: mode !== "forward" });
try {
  const res = await fetch(url, { dispatcher, signal: AbortSignal.timeout(30_000) });
  process.stderr.write(`status ${res.status}\n`);
  process.stdout.write(Buffer.from(await res.arrayBuffer()));
  await dispatcher.close();
} catch (err) {
  process.stderr.write(`error: ${err?.message ?? err}${err?.cause ? ` (cause: ${err.cause.message ?? err.cause})` : ""}\n`);
  process.exit(1);
}
