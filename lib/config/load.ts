/**
 * Loading a config file: JSON text -> schema -> secret file paths resolved and checked.
 *
 * Secret files (private key, preshared key, proxy password) are referenced by path, never inline.
 * A relative path is a systemd credential name: it is looked up in `$CREDENTIALS_DIRECTORY`
 * (LoadCredential=) when that is set, otherwise beside the config file. Like ssh, a key file that
 * others can read is refused; one the group can read is accepted with a warning.
 */
import { readFileSync, statSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { decodeKey, KeyFormatError } from "../keys/keys.ts";
import { type ConfigProblem, ConfigError, formatPath, problemsFromZod } from "./errors.ts";
import { jsonDuplicateKey, jsonErrorOffset, positionOf } from "./json-position.ts";
import { type Config, configSchema } from "./schema.ts";

/** Options for {@link parseConfig} and {@link loadConfig}. */
export interface LoadOptions {
  /** Environment for `$CREDENTIALS_DIRECTORY`. Default `process.env`. */
  env?: Record<string, string | undefined>;
  /** Directory that relative secret paths fall back to. Default: the config file's directory, else cwd. */
  baseDir?: string;
  /** Check secret files on disk (existence, permissions, key format). Default true. */
  checkFiles?: boolean;
  /** Receives warnings (group-readable key files). Default: ignored. */
  warn?: (message: string) => void;
}

/** The secret files a config references, by config path. */
const SECRET_FIELDS = [
  { path: "interface.privateKeyFile", kind: "key" },
  { path: "exit.presharedKeyFile", kind: "key" },
  { path: "proxy.auth.passwordFile", kind: "password" },
] as const;

/** Resolves a secret path: absolute stays, relative goes to $CREDENTIALS_DIRECTORY or `baseDir`. */
export function resolveSecretPath(path: string, opts: { env?: Record<string, string | undefined>; baseDir?: string } = {}): string {
  if (isAbsolute(path)) return path;
  const creds = (opts.env ?? process.env).CREDENTIALS_DIRECTORY;
  return resolve(creds || opts.baseDir || process.cwd(), path);
}

function getField(c: Config, path: string): string | null {
  switch (path) {
    case "interface.privateKeyFile":
      return c.interface.privateKeyFile;
    case "exit.presharedKeyFile":
      return c.exit.presharedKeyFile;
    case "proxy.auth.passwordFile":
      return c.proxy.auth?.passwordFile ?? null;
  }
  return null;
}

function setField(c: Config, path: string, value: string): void {
  if (path === "interface.privateKeyFile") c.interface.privateKeyFile = value;
  else if (path === "exit.presharedKeyFile") c.exit.presharedKeyFile = value;
  else if (path === "proxy.auth.passwordFile" && c.proxy.auth) c.proxy.auth.passwordFile = value;
}

/** Checks one secret file; returns a problem line or null. */
function checkSecretFile(field: string, kind: "key" | "password", file: string, warn: (m: string) => void): string | null {
  let st;
  try {
    st = statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return `${field}: "${file}" does not exist`;
    if (code === "EACCES") return `${field}: "${file}" cannot be read by uid ${process.getuid?.()} (permission denied)`;
    throw e;
  }
  if (!st.isFile()) return `${field}: "${file}" is not a regular file`;
  const mode = st.mode & 0o777;
  const octal = mode.toString(8).padStart(4, "0");
  if (mode & 0o007) {
    return `${field}: "${file}" has permissions ${octal}, which others can access; run chmod 600 "${file}"`;
  }
  if (mode & 0o070) warn(`${field}: "${file}" has permissions ${octal}; the group can read it (chmod 600 is safer)`);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EACCES") {
      return `${field}: "${file}" cannot be read by uid ${process.getuid?.()} (permission denied)`;
    }
    throw e;
  }
  if (kind === "key") {
    try {
      decodeKey(text);
    } catch (e) {
      if (e instanceof KeyFormatError) return `${field}: "${file}" does not hold a WireGuard key: ${e.message}`;
      throw e;
    }
  } else {
    const bytes = Buffer.byteLength(text.replace(/\r?\n$/, ""));
    if (bytes < 1 || bytes > 255) return `${field}: "${file}" must hold a password of 1-255 bytes (RFC 1929), has ${bytes}`;
  }
  return null;
}

/**
 * Validates parsed JSON against the schema and resolves (and by default checks) secret files.
 * Throws {@link ConfigError} with one problem per bad field.
 */
export function parseConfig(input: unknown, opts: LoadOptions = {}): Config {
  const result = configSchema.safeParse(input, { reportInput: true });
  if (!result.success) throw new ConfigError(problemsFromZod(result.error, input, configSchema));
  const config = result.data;
  const problems: ConfigProblem[] = [];
  const warn = opts.warn ?? (() => {});
  for (const { path, kind } of SECRET_FIELDS) {
    const raw = getField(config, path);
    if (raw === null) continue;
    const file = resolveSecretPath(raw, opts);
    setField(config, path, file);
    if (opts.checkFiles === false) continue;
    const problem = checkSecretFile(path, kind, file, warn);
    if (problem) problems.push({ path, message: problem });
  }
  if (problems.length) throw new ConfigError(problems);
  return config;
}

/** Describes where a JSON syntax error is, as ` at line L column C`, or "" when it cannot tell. */
function jsonErrorPosition(text: string): string {
  const offset = jsonErrorOffset(text);
  if (offset === null) return "";
  const { line, column } = positionOf(text, offset);
  return ` at line ${line} column ${column}`;
}

/** Reads, parses and validates a config file. Throws {@link ConfigError} naming the file and field. */
export function loadConfig(file: string, opts: LoadOptions = {}): Config {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "does not exist" : code === "EACCES" ? "cannot be read (permission denied)" : `cannot be read (${code})`;
    throw new ConfigError([{ path: "(file)", message: why }], { file, cause: e });
  }
  let input: unknown;
  try {
    input = JSON.parse(text);
  } catch (e) {
    const msg = (e as Error).message;
    throw new ConfigError([{ path: "(file)", message: `not valid JSON${jsonErrorPosition(text)}: ${msg}` }], {
      file,
      cause: e,
    });
  }
  const dup = jsonDuplicateKey(text);
  if (dup) {
    // JSON.parse keeps the last value silently; a config that says two things must not be guessed at.
    const at = (offset: number) => {
      const { line, column } = positionOf(text, offset);
      return `line ${line} column ${column}`;
    };
    const path = formatPath(dup.path);
    throw new ConfigError([{ path, message: `${path}: given twice (at ${at(dup.firstOffset)} and ${at(dup.offset)}); remove one` }], { file });
  }
  try {
    return parseConfig(input, { baseDir: dirname(resolve(file)), ...opts });
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(e.problems, { file, cause: e.cause });
    throw e;
  }
}
