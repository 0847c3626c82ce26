/** scripts/docgen/help.ts: parsing --help texts into flags and blocks (pure tables). */
import { describe, expect, test } from "bun:test";
import { parseHelp, takesFile } from "../../scripts/docgen/help.ts";

describe("parseHelp", () => {
  test.each([
    ["short and long with an argument", "  -c, --config FILE   the config file", { short: "-c", long: "--config", arg: "FILE", desc: "the config file" }],
    ["long only, no argument", "  --json         print the raw status object", { long: "--json", desc: "print the raw status object" }],
    ["choices in the argument", "  --dns system|tunnel   system or tunnel", { long: "--dns", arg: "system|tunnel", choices: ["system", "tunnel"] }],
    ["deep indentation before the flag", "      --json     print JSON", { long: "--json", desc: "print JSON" }],
    ["no description", "  --keep", { long: "--keep", desc: "" }],
  ])("%s", (_name, line, want) => {
    const h = parseHelp(`Usage: egressd x\n\nSomething.\n${line}\n`);
    expect(h.flags[0]).toMatchObject(want);
    expect(h.flags.at(-1)).toMatchObject({ short: "-h", long: "--help" });
  });

  test("continuation lines join the description; the usage line supplies arguments and choices", () => {
    const h = parseHelp(
      "Usage: egressd x [--socket PATH] [--log-format journal|text|json]\n\nDoes x.\n" +
        "  -s, --socket   control socket\n  --log-format F      journal, text\n                      or json\n",
    );
    expect(h.flags[0]).toMatchObject({ short: "-s", long: "--socket", arg: "PATH" });
    expect(takesFile(h.flags[0]!)).toBe(true);
    expect(h.flags[1]).toMatchObject({ long: "--log-format", arg: "F", choices: ["journal", "text", "json"], desc: "journal, text or json" });
    expect(takesFile(h.flags[1]!)).toBe(false);
  });

  test("prose, preformatted lines and labelled paragraphs are separate blocks; flags under Internal: are internal", () => {
    const h = parseHelp(
      "Usage: egressd x\n\nFirst line\ncontinues here.\nExit codes: 0 ok.\n  client  an indented list\n          goes on\n\n  --once      once\nInternal:\n  --serve ADDR   not for people\n",
    );
    expect(h.blocks.map((b) => b.kind)).toEqual(["para", "para", "pre", "flags", "para", "flags"]);
    expect(h.blocks[0]).toEqual({ kind: "para", text: "First line continues here." });
    expect(h.blocks[2]).toEqual({ kind: "pre", lines: ["client  an indented list", "        goes on"] });
    expect(h.flags.map((f) => [f.long, f.internal])).toEqual([["--once", false], ["--serve", true], ["--help", false]]);
  });

  test.each([["no usage line", "egressd x\n"], ["empty", ""]])("refuses a help text with %s", (_n, text) => {
    expect(() => parseHelp(text)).toThrow('does not start with "Usage: "');
  });
});
