# Test harness: evaluates flake.nix and nix/package.nix with nixpkgs' lib and a stub nixpkgs.
#
# `mkDerivation` returns its attributes (phases, flags, hashes) instead of building, so the test can
# check them and run the phases itself; `callPackage` passes the stubs by argument name. Evaluate
# with --readonly-mode: the source filesets then get their store paths without being copied.
{
  nixpkgsLib,
  stubRoot ? "/nonexistent",
  # The revision a flake input has when its tree is clean (`self.rev`); "": a dirty tree, which has
  # `self.dirtyShortRev` instead.
  rev ? "",
}:
let
  lib = import nixpkgsLib;

  mkPkg = name: {
    type = "derivation";
    inherit name;
    outPath = "${stubRoot}/pkgs/${name}";
  };

  mkDerivation =
    arg:
    let
      attrs = if builtins.isFunction arg then arg final else arg;
      # Like mkDerivation, passthru attributes are reachable on the result.
      final = attrs // attrs.passthru or { } // {
        type = "derivation";
        name = "${attrs.pname}-${attrs.version}";
        outPath = "${stubRoot}/build/${attrs.pname}";
        finalPackage = final;
      };
    in
    final;

  stubPkgs = system: rec {
    inherit lib;
    stdenvNoCC = {
      inherit mkDerivation;
      hostPlatform.system = system;
    };
    stdenv = stdenvNoCC;
    bun = mkPkg "bun";
    cacert = mkPkg "cacert";
    callPackage =
      fn: args:
      let
        f = import fn;
      in
      f (builtins.intersectAttrs (builtins.functionArgs f) (stubPkgs system) // args);
    testers.runNixOSTest = test: {
      type = "derivation";
      name = "vm-test-run-${test.name}";
      outPath = "${stubRoot}/build/vm-test";
      inherit test;
    };
  };

  flake = import ../../flake.nix;
  outputs = flake.outputs {
    self = outputs // (if rev != "" then { inherit rev; } else { dirtyShortRev = "0000000-dirty"; });
    nixpkgs = {
      inherit lib;
      legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] stubPkgs;
    };
  };

  pkg = outputs.packages.x86_64-linux.default;
  fod = pkg.node_modules;
  phases = d: {
    inherit (d) buildPhase installPhase;
    configurePhase = d.configurePhase or null;
    installCheckPhase = d.installCheckPhase or null;
  };
  overlaid = outputs.overlays.default (stubPkgs "x86_64-linux") (stubPkgs "x86_64-linux");
  vmTest = outputs.checks.x86_64-linux.gateway.test;
  nixosModule = outputs.nixosModules.default {
    inherit lib;
    pkgs = stubPkgs "x86_64-linux";
  };
in
{
  description = flake.description;
  nixpkgsUrl = flake.inputs.nixpkgs.url;
  outputNames = lib.attrNames outputs;
  packages = lib.mapAttrs (_: lib.attrNames) outputs.packages;
  checks = lib.mapAttrs (_: lib.attrNames) outputs.checks;
  nixosModules = lib.attrNames outputs.nixosModules;
  overlayAdds = lib.attrNames overlaid;
  overlayPackageName = overlaid.egressd.name;
  package = {
    inherit (pkg)
      name
      version
      dontStrip
      dontPatchELF
      dontFixup
      doInstallCheck
      ;
    mainProgram = pkg.meta.mainProgram;
    platforms = pkg.meta.platforms;
    nativeBuildInputs = map toString pkg.nativeBuildInputs;
    phases = phases pkg;
    nodeModulesPath = toString fod;
    # Forces the fileset to evaluate (a store path; not copied under --readonly-mode).
    src = toString pkg.src;
  };
  nodeModules = {
    inherit (fod)
      name
      outputHash
      outputHashAlgo
      outputHashMode
      dontFixup
      ;
    phases = phases fod;
    src = toString fod.src;
  };
  nixosModule = {
    imports = map toString nixosModule.imports;
    # lib.mkDefault: an override of priority 1000 around this flake's package.
    packagePriority = nixosModule.services.egressd.package.priority;
    packageName = nixosModule.services.egressd.package.content.name;
  };
  vmTest = {
    inherit (vmTest) name;
    nodes = lib.attrNames vmTest.nodes;
    testScriptLength = builtins.stringLength vmTest.testScript;
  };
}
