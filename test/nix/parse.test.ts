/** Every .nix file parses (`nix-instantiate --parse`); this needs only Debian's nix-bin. */
import { describe, expect, test } from "bun:test";
import { HAVE_NIX, nixFiles, run } from "./helpers.ts";

const SKIP = HAVE_NIX ? "" : " [skipped: needs nix-instantiate (Debian package nix-bin)]";

describe.skipIf(!HAVE_NIX)(`nix-instantiate --parse${SKIP}`, () => {
  const files = nixFiles();

  test("finds the module, the package, the flake, the VM test and the harnesses", () => {
    for (const f of ["flake.nix", "nix/module.nix", "nix/package.nix", "nix/tests/gateway.nix", "test/nix/eval.nix", "test/nix/flake-eval.nix"]) {
      expect(files).toContain(f);
    }
  });

  for (const file of files) {
    test(file, () => {
      const r = run(["nix-instantiate", "--parse", file]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
    });
  }

  test("a syntax error is reported (the check can fail)", () => {
    const r = run(["nix-instantiate", "--parse", "-E", "{ a = 1; b = ; }"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("syntax error");
  });
});
