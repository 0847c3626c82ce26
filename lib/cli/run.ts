/**
 * `egressd run --config FILE`: the daemon in the foreground, as systemd runs it. Owns the process:
 * signals, the logger, and the exit code. The daemon's own logic is in lib/daemon.
 */
import { ConfigError, shownProblems } from "../config/errors.ts";
import { loadConfig } from "../config/load.ts";
import { Daemon } from "../daemon/daemon.ts";
import { SpecError, UnsafeUidError } from "../host/errors.ts";
import { createLogger, defaultFormat, type Level, type LogFormat } from "../log/logger.ts";
import { type Command, err, Exit, out, parseFlags, UsageError } from "./common.ts";
import { VERSION } from "./version.ts";

export const HELP = `Usage: egressd run --config FILE [--log-format journal|text|json] [--log-level LEVEL]

Runs the daemon in the foreground: brings up the WireGuard interface, policy routing and the nft
table, starts the SOCKS5 listeners, the metrics endpoint and the control socket, then keeps the host
state repaired. Under systemd (Type=notify) it reports READY=1, STATUS=, WATCHDOG=1.
  -c, --config FILE   the config file (JSON); see \`egressd check-config\`
  --log-format F      journal (<6> priority prefixes; the default under systemd), text (the default
                      on a terminal), or json (one object per line)
  --log-level L       debug, info, warn or error (default: daemon.logLevel from the config)
Signals: SIGHUP reloads the config without dropping connections (an invalid one is refused and the
old one stays); SIGTERM or SIGINT drain connections and remove the host state, then exit 0.
Exit codes: 0 stopped cleanly, 1 could not start (the log says why), 2 bad flags or config, or run
as root (root's own traffic cannot be marked: run as a dedicated user with CAP_NET_ADMIN).
`;

const FORMATS = ["journal", "text", "json"] as const;
const LEVELS = ["debug", "info", "warn", "error"] as const;

/** Runs `egressd run`. */
export const runCommand: Command = async (argv) => {
  const { values } = parseFlags(argv, {
    config: { type: "string", short: "c" },
    "log-format": { type: "string" },
    "log-level": { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) return out(HELP).then(() => Exit.ok);
  if (!values.config) throw new UsageError("--config FILE is required");
  const format = values["log-format"] ?? defaultFormat();
  if (!(FORMATS as readonly string[]).includes(format)) throw new UsageError(`--log-format must be one of ${FORMATS.join(", ")}`);
  const levelFlag = values["log-level"];
  if (levelFlag !== undefined && !(LEVELS as readonly string[]).includes(levelFlag)) {
    throw new UsageError(`--log-level must be one of ${LEVELS.join(", ")}`);
  }
  const log0 = createLogger({ format: format as LogFormat, level: (levelFlag as Level | undefined) ?? "info" });
  let config;
  try {
    config = loadConfig(values.config, { warn: (m) => log0.warn(m) });
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    for (const p of shownProblems(e.problems)) err(`${e.file ?? "config"}: ${p.message}`);
    return Exit.usage;
  }
  const log = createLogger({ format: format as LogFormat, level: (levelFlag as Level | undefined) ?? config.daemon.logLevel });
  let daemon: Daemon;
  try {
    daemon = new Daemon(values.config, config, { version: VERSION, log });
  } catch (e) {
    // Both come from the config and the user egressd runs as, before anything is touched: a usage
    // error (run as a dedicated user, fix the config), not a runtime failure.
    if (!(e instanceof UnsafeUidError || e instanceof SpecError)) throw e;
    err(`egressd run: ${e.message}`);
    return Exit.usage;
  }

  // A bug must not take the tunnel's kill switch and every live connection down with it: log and
  // keep serving. The watchdog restarts the service if the daemon is really wedged.
  process.on("uncaughtException", (e) => log.error("uncaught exception", { error: e, stack: e.stack }));
  process.on("unhandledRejection", (e) => log.error("unhandled rejection", { error: e instanceof Error ? e : String(e) }));

  let signals = 0;
  const stop = (signal: string) => {
    signals++;
    if (signals > 1 && signal === "SIGINT") {
      log.warn("second SIGINT: exiting without draining");
      process.exit(Exit.failure);
    }
    log.info("signal received", { signal });
    void daemon.stop();
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGHUP", () => void daemon.reload());

  try {
    await daemon.start();
  } catch (e) {
    log.error("egressd could not start", { error: e, cause: e instanceof Error && e.cause instanceof Error ? e.cause.message : undefined });
    return Exit.failure;
  }
  await daemon.stopped;
  return Exit.ok;
};
