/**
 * The command line: `egressd <command> [flags]`. Dispatches to one file per subcommand and maps
 * uncaught failures to exit codes; a subcommand's own work lives in its file.
 */
import { checkCommand } from "./check.ts";
import { checkConfigCommand } from "./check-config.ts";
import { type Command, err, Exit, out, UsageError } from "./common.ts";
import { demoCommand } from "./demo.ts";
import { exitConfigCommand } from "./exit-config.ts";
import { genkeyCommand, genpskCommand, pubkeyCommand } from "./keys.ts";
import { proxyCommand } from "./proxy.ts";
import { reloadCommand } from "./reload.ts";
import { runCommand } from "./run.ts";
import { selftestCommand } from "./selftest.ts";
import { statusCommand } from "./status.ts";
import { versionCommand } from "./version.ts";

const COMMANDS: Record<string, { run: Command; summary: string }> = {
  run: { run: runCommand, summary: "run the daemon: tunnel, routing, proxy, metrics" },
  status: { run: statusCommand, summary: "show the running daemon's tunnel, proxy and routing state" },
  reload: { run: reloadCommand, summary: "make the running daemon re-read its config; says why if it refuses" },
  check: { run: checkCommand, summary: "health check with nagios exit codes (0 ok, 1 warning, 2 critical)" },
  test: { run: selftestCommand, summary: "ask a what-is-my-IP URL through the proxy and directly; pass if it sees the exit" },
  proxy: { run: proxyCommand, summary: "run only the SOCKS5 proxy, with direct egress (no tunnel)" },
  "check-config": { run: checkConfigCommand, summary: "validate a config and print it with defaults" },
  "exit-config": { run: exitConfigCommand, summary: "render the exit's side (wg-quick, nft, cloud-init, NixOS) from the config" },
  genkey: { run: genkeyCommand, summary: "print a new WireGuard private key" },
  pubkey: { run: pubkeyCommand, summary: "print the public key of the private key on stdin" },
  genpsk: { run: genpskCommand, summary: "print a new WireGuard preshared key" },
  version: { run: versionCommand, summary: "print the version and runtime" },
  demo: { run: demoCommand, summary: "run the whole path in throwaway network namespaces (root)" },
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
