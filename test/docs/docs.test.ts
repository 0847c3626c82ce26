/**
 * The man pages and completions are generated (scripts/gen-man.ts) from the command table, each
 * command's --help and the config schema: the committed files must equal a fresh generation, the
 * pages must render with man(1) without warnings, and the completions must load in their shells.
 */
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { COMMANDS } from "../../lib/cli/main.ts";
import { configSchema } from "../../lib/config/schema.ts";
import { parseHelp } from "../../scripts/docgen/help.ts";
import { schemaFields } from "../../scripts/docgen/schema.ts";
import { generate } from "../../scripts/gen-man.ts";
import { have, ROOT } from "../cli/spawn.ts";

const generated = generate();

function sh(argv: string[], env: Record<string, string> = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(argv[0]!, argv.slice(1), { cwd: ROOT, encoding: "utf8", env: { ...process.env, ...env }, timeout: 30_000 });
  return { code: r.status ?? 1, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

describe("generated files", () => {
  test.each([...generated.keys()])("%s is up to date (else: npm run man)", (path) => {
    expect(readFileSync(join(ROOT, path), "utf8")).toBe(generated.get(path)!);
  });

  test("gen-man --check exits 0 now, and 1 naming the file once a committed file drifts", () => {
    expect(sh([process.execPath, "scripts/gen-man.ts", "--check"])).toMatchObject({ code: 0, stderr: "" });
    // The check runs on a copy of the tree in which one generated file is stale.
    const tmp = sh(["mktemp", "-d"]).stdout.trim();
    try {
      sh(["cp", "-r", "package.json", "main.ts", "lib", "scripts", "examples", "man", "completions", tmp]);
      sh(["ln", "-s", join(ROOT, "node_modules"), join(tmp, "node_modules")]);
      sh(["sed", "-i", "s/print it with defaults/print it/", join(tmp, "man/egressd.1")]);
      const r = spawnSync(process.execPath, ["scripts/gen-man.ts", "--check"], { cwd: tmp, encoding: "utf8" });
      expect(r.status).toBe(1);
      expect(r.stderr).toContain("out of date (run npm run man): man/egressd.1");
    } finally {
      sh(["rm", "-rf", tmp]);
    }
  });

  test("egressd(1) has every command and every flag of its --help; egressd.json(5) every schema field", () => {
    const page = generated.get("man/egressd.1")!;
    for (const [name, entry] of Object.entries(COMMANDS)) {
      expect(page).toContain(`.SS "egressd ${name.replace(/-/g, "\\-")}"`);
      for (const f of parseHelp(entry.help).flags.filter((f) => f.long !== "--help")) expect(page).toContain(`\\fB${f.long.replace(/-/g, "\\-")}\\fR`);
    }
    const config = generated.get("man/egressd.json.5")!;
    const fields = schemaFields(configSchema);
    expect(fields.length).toBeGreaterThan(40);
    for (const f of fields) expect(config).toContain(f.path.split(".").length === 1 ? `.SS ${f.path}` : `\\fB${f.path.replace(/-/g, "\\-")}\\fR`);
    // Defaults are written as the file would hold them, not as parsed (milliseconds, numbers).
    expect(config).toContain("\\fBproxy.keepaliveIdle\\fR (duration; default \"1m\")");
    expect(config).toContain("\\fBrouting.fwmark\\fR (fwmark; default \"0xca6c\")");
    expect(config).toContain("\\fBexit.publicKey\\fR (WireGuard key; required)");
  });
});

describe("man -l", () => {
  test.skipIf(!have("man"))("renders both pages, with no warnings from groff", () => {
    for (const [page, title, needle] of [
      ["man/egressd.1", "EGRESSD(1)", "egressd check-config"],
      ["man/egressd.json.5", "EGRESSD.JSON(5)", "proxy.dns.servers"],
    ] as const) {
      const r = sh(["man", "--warnings", "-l", page], { MANWIDTH: "100", MANPAGER: "cat", PAGER: "cat", LC_ALL: "C.UTF-8" });
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(title);
      expect(r.stdout).toContain(needle);
    }
  });
});

describe("completions", () => {
  test.skipIf(!have("bash"))("bash: loads and registers egressd", () => {
    expect(sh(["bash", "-c", "source completions/egressd.bash; complete -p egressd"])).toEqual({ code: 0, stdout: "complete -F _egressd egressd\n", stderr: "" });
  });

  test.skipIf(!have("bash")).each([
    [["egressd", "st"], ["status"]],
    [["egressd", "check"], ["check", "check-config"]],
    [["egressd", "run", "--log-format", ""], ["journal", "text", "json"]],
    [["egressd", "proxy", "--dns", "t"], ["tunnel"]],
    [["egressd", "genkey", "-"], ["-o", "--output", "-f", "--force", "-h", "--help"]],
    [["egressd", "demo", "--"], ["--once", "--keep", "--uid", "--help"]], // not the internal --serve-whoami
    [["egressd", "check-config", "--config", "examples/min"], ["examples/minimal.json"]],
  ])("bash: %j completes to %j", (words, want) => {
    const script = `source completions/egressd.bash; COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}; _egressd; printf '%s\\n' "\${COMPREPLY[@]}"`;
    const r = sh(["bash", "-c", script]);
    expect(r.stderr).toBe("");
    expect(r.stdout.split("\n").filter(Boolean)).toEqual(want);
  });

  test.skipIf(!have("zsh"))("zsh: the completion function parses", () => {
    expect(sh(["zsh", "-n", "completions/_egressd"])).toEqual({ code: 0, stdout: "", stderr: "" });
  });

  test.skipIf(!have("fish"))("fish: loads and completes commands and flag values", () => {
    const r = sh(["fish", "--no-config", "-c", "source completions/egressd.fish; complete -C 'egressd proxy --dns '; complete -C 'egressd rel'"]);
    expect(r.stderr).toBe("");
    expect(r.stdout.split("\n").map((l) => l.split("\t")[0])).toEqual(expect.arrayContaining(["system", "tunnel", "reload"]));
  });
});
