/**
 * A throwaway certificate authority and one server certificate it signs, made with openssl at test
 * time, so that real clients can be told to trust the lab's HTTPS targets (SSL_CERT_FILE,
 * REQUESTS_CA_BUNDLE, `curl --cacert`, `git -c http.sslCAInfo`, undici's `requestTls.ca`).
 * Nothing is installed into the system trust store.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";

/** The files of a test CA and its server certificate (PEM). */
export interface TestPki {
  readonly dir: string;
  /** The CA certificate: what clients trust. */
  readonly caFile: string;
  /** The server certificate and key, for `Bun.serve({ tls })`. */
  readonly certFile: string;
  readonly keyFile: string;
  /** The names and addresses in the certificate's subjectAltName. */
  readonly names: readonly string[];
  readonly ips: readonly string[];
}

/** Options for {@link makeTestPki}. */
export interface TestPkiOptions {
  /** DNS names of the server certificate. Default `["www.example.test"]`. */
  readonly names?: readonly string[];
  /** IP addresses of the server certificate. Default `["127.0.0.1"]`. */
  readonly ips?: readonly string[];
}

function openssl(args: string[], cwd: string): void {
  const r = Bun.spawnSync(["openssl", ...args], { cwd, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`openssl ${args.join(" ")} failed (exit ${r.exitCode}): ${r.stderr.toString()}`);
}

/**
 * Creates `dir` (if needed) and writes ca.pem, ca.key, server.pem and server.key into it: an EC
 * P-256 CA valid for two days, and a server certificate with the given subjectAltNames and
 * `extendedKeyUsage = serverAuth` (Go and Python refuse a server certificate without it).
 */
export function makeTestPki(dir: string, opts: TestPkiOptions = {}): TestPki {
  const names = opts.names ?? ["www.example.test"];
  const ips = opts.ips ?? ["127.0.0.1"];
  mkdirSync(dir, { recursive: true });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl(["req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=egressd test CA",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"], dir);
  openssl(["req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", `/CN=${names[0] ?? ips[0]}`], dir);
  const san = [...names.map((n) => `DNS:${n}`), ...ips.map((ip) => `IP:${ip}`)].join(",");
  Bun.write(join(dir, "server.ext"), `subjectAltName=${san}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n`);
  openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext"], dir);
  return { dir, caFile: join(dir, "ca.pem"), certFile: join(dir, "server.pem"), keyFile: join(dir, "server.key"), names, ips };
}
