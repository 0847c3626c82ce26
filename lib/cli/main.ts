/**
 * The command line: `egressd <command> [flags]`. Dispatches to one file per subcommand and maps
 * uncaught failures to exit codes; a subcommand's own work lives in its file.
 */
import { checkCommand, HELP as CHECK_HELP } from "./check.ts";
import { checkConfigCommand, HELP as CHECK_CONFIG_HELP } from "./check-config.ts";
import { type Command, err, Exit, out, UsageError } from "./common.ts";
import { demoCommand, HELP as DEMO_HELP } from "./demo.ts";
import { exitConfigCommand, HELP as EXIT_CONFIG_HELP } from "./exit-config.ts";
import { GENKEY_HELP, genkeyCommand, GENPSK_HELP, genpskCommand, PUBKEY_HELP, pubkeyCommand } from "./keys.ts";
import { PROXY_HELP, proxyCommand } from "./proxy.ts";
import { reloadCommand, HELP as RELOAD_HELP } from "./reload.ts";
import { runCommand, HELP as RUN_HELP } from "./run.ts";
import { HELP as SELFTEST_HELP, selftestCommand } from "./selftest.ts";
import { statusCommand, HELP as STATUS_HELP } from "./status.ts";
import { versionCommand, HELP as VERSION_HELP } from "./version.ts";

/** One subcommand: what runs it, its line in `egressd --help`, and its own `--help` text. */
export interface CommandEntry {
  run: Command;
  summary: string;
  /** What `egressd <command> --help` prints; the man page and the completions are made from it. */
  help: string;
}

/** Every subcommand, in `egressd --help` order. scripts/gen-man.ts reads it too. */
export const COMMANDS: Record<string, CommandEntry> = {
  run: { run: runCommand, summary: "run the daemon: tunnel, routing, proxy, metrics", help: RUN_HELP },
  status: { run: statusCommand, summary: "show the running daemon's tunnel, proxy and routing state", help: STATUS_HELP },
  reload: { run: reloadCommand, summary: "make the running daemon re-read its config; says why if it refuses", help: RELOAD_HELP },
  check: { run: checkCommand, summary: "health check with nagios exit codes (0 ok, 1 warning, 2 critical)", help: CHECK_HELP },
  test: { run: selftestCommand, summary: "ask a what-is-my-IP URL through the proxy and directly; pass if it sees the exit", help: SELFTEST_HELP },
  proxy: { run: proxyCommand, summary: "run only the SOCKS5 proxy, with direct egress (no tunnel)", help: PROXY_HELP },
  "check-config": { run: checkConfigCommand, summary: "validate a config and print it with defaults", help: CHECK_CONFIG_HELP },
  "exit-config": { run: exitConfigCommand, summary: "render the exit's side (wg-quick, nft, cloud-init, NixOS) from the config", help: EXIT_CONFIG_HELP },
  genkey: { run: genkeyCommand, summary: "print a new WireGuard private key", help: GENKEY_HELP },
  pubkey: { run: pubkeyCommand, summary: "print the public key of the private key on stdin", help: PUBKEY_HELP },
  genpsk: { run: genpskCommand, summary: "print a new WireGuard preshared key", help: GENPSK_HELP },
  version: { run: versionCommand, summary: "print the version, commit and runtime", help: VERSION_HELP },
  demo: { run: demoCommand, summary: "run the whole path in throwaway network namespaces (root)", help: DEMO_HELP },
};

/** The top-level help text. */
export function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `Usage: egressd <command> [flags]

egressd sends the traffic of a SOCKS5 proxy, and nothing else, out through a WireGuard tunnel
to an exit host, fails closed when the tunnel is down, and exports Prometheus metrics.

Commands:
${lines.join("\n")}

Run \`egressd <command> --help\` for a command's flags.

Exit codes:
  0  success
  1  runtime failure (the host, the network or the exit did not cooperate)
  2  usage or config error (fix the command line or the config file)
`;
}

/** Runs the CLI with `argv` (without the program name) and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    await out(usage());
    return name === undefined ? Exit.usage : Exit.ok;
  }
  if (name === "--version" || name === "-V") return versionCommand([]);
  const command = COMMANDS[name];
  if (!command) {
    err(`egressd: unknown command "${name}"; run \`egressd --help\` for the list`);
    return Exit.usage;
  }
  try {
    return await command.run(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      err(`egressd ${name}: ${e.message}; run \`egressd ${name} --help\``);
      return Exit.usage;
    }
    err(`egressd ${name}: ${e instanceof Error ? e.message : String(e)}`);
    return Exit.failure;
  }
}
