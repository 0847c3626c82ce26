/**
 * Loading a config file: JSON text -> schema -> secret file paths resolved and checked.
 *
 * Secret files (private key, preshared key, proxy password) are referenced by path, never inline.
 * A relative path is a systemd credential name: it is looked up in `$CREDENTIALS_DIRECTORY`
 * (LoadCredential=) when that is set, otherwise beside the config file. Like ssh, a key file that
 * others can read is refused; one the group can read is accepted with a warning (secret-file.ts).
 *
 * Nothing in the file is trusted before it is bounded: only a regular file of at most
 * {@link MAX_CONFIG_BYTES} is read, it must be UTF-8, and its nesting depth, list lengths and
 * numbers are checked (json-limits.ts) before JSON.parse and the schema see it.
 */
import { dirname, isAbsolute, resolve } from "node:path";
import { type ConfigProblem, ConfigError, formatPath, problemsFromZod } from "./errors.ts";
import { jsonDepthProblem, jsonPathAt, jsonValueProblems } from "./json-limits.ts";
import { jsonDuplicateKey, jsonErrorOffset, positionOf } from "./json-position.ts";
import { describeFileError, FileReadError, readRegularFile } from "./read-file.ts";
import { authAccounts } from "./auth.ts";
import { type Config, configSchema } from "./schema.ts";
import { readSecretFile, SecretFileError } from "./secret-file.ts";
import { decodeUtf8 } from "./utf8.ts";

/** Largest config file read. A real one is a few KiB; this keeps a wrong path from filling memory. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

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
  }
  return null;
}

function setField(c: Config, path: string, value: string): void {
  if (path === "interface.privateKeyFile") c.interface.privateKeyFile = value;
  else if (path === "exit.presharedKeyFile") c.exit.presharedKeyFile = value;
}

/**
 * Validates parsed JSON against the schema and resolves (and by default checks) secret files.
 * Throws {@link ConfigError} with one problem per bad field.
 */
export function parseConfig(input: unknown, opts: LoadOptions = {}): Config {
  const bounds = jsonValueProblems(input);
  if (bounds.length) throw new ConfigError(bounds);
  const result = configSchema.safeParse(input, { reportInput: true });
  if (!result.success) throw new ConfigError(problemsFromZod(result.error, input, configSchema));
  const config = result.data;
  const problems: ConfigProblem[] = [];
  const warn = opts.warn ?? (() => {});
  // Resolves one secret path and (unless checkFiles is off) checks the file, as a problem of `path`.
  const secret = (path: string, raw: string, kind: "key" | "password"): string => {
    const file = resolveSecretPath(raw, opts);
    if (opts.checkFiles === false) return file;
    try {
      readSecretFile(file, { field: path, kind, warn, credentialsDirectory: (opts.env ?? process.env).CREDENTIALS_DIRECTORY });
    } catch (e) {
      if (!(e instanceof SecretFileError)) throw e;
      problems.push({ path, message: e.message });
    }
    return file;
  };
  for (const { path, kind } of SECRET_FIELDS) {
    const raw = getField(config, path);
    if (raw === null || (path === "exit.presharedKeyFile" && config.exits)) continue;
    setField(config, path, secret(path, raw, kind));
  }
  // Each exit of several has its own preshared key file; `exit` is the first of them.
  config.exits?.forEach((e, i) => {
    if (e.presharedKeyFile === null) return;
    e.presharedKeyFile = secret(`exits[${i}].presharedKeyFile`, e.presharedKeyFile, "key");
    if (i === 0) config.exit.presharedKeyFile = e.presharedKeyFile;
  });
  // Every account of proxy.auth, in either form, names its own password file.
  for (const { at, account } of authAccounts(config.proxy.auth)) {
    account.passwordFile = secret(`${at}.passwordFile`, account.passwordFile, "password");
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

/** Reads the config file as text: a regular file, bounded, strict UTF-8. Throws {@link ConfigError}. */
function readConfigText(file: string): string {
  let bytes: Buffer;
  try {
    bytes = readRegularFile(file, { maxBytes: MAX_CONFIG_BYTES, purpose: "a config file" }).bytes;
  } catch (e) {
    if (!(e instanceof FileReadError)) throw e;
    throw new ConfigError([{ path: "(file)", message: describeFileError(e) }], { file, cause: e });
  }
  const decoded = decodeUtf8(bytes);
  if ("text" in decoded) return decoded.text;
  const bad = decoded.invalid;
  const at = `invalid UTF-8 at byte ${bad.offset} (line ${bad.line} column ${bad.column}); save the file as UTF-8`;
  const path = jsonPathAt(bad.lenientText, bad.textOffset);
  const problem = path.length ? { path: formatPath(path), message: `${formatPath(path)}: ${at}` } : { path: "(file)", message: at };
  throw new ConfigError([problem], { file });
}

/** Reads, parses and validates a config file. Throws {@link ConfigError} naming the file and field. */
export function loadConfig(file: string, opts: LoadOptions = {}): Config {
  const text = readConfigText(file);
  const deep = jsonDepthProblem(text);
  if (deep) throw new ConfigError([deep], { file });
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
