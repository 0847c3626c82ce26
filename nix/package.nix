# egressd as a Nix package: one Bun-compiled executable.
#
# Two derivations: the npm dependencies, fetched by `bun install` in a fixed-output derivation (the
# only step with network access, pinned by bun.lock and by outputHash), then `bun build --compile`
# offline. Only the runtime dependencies are fetched (--production): bun itself comes from nixpkgs,
# and typescript/@types/bun are for the type check, not the build.
#
# When bun.lock changes, outputHash must change too: build once, and Nix prints the new hash
# ("got: sha256-..."); or compute it with test/nix (see nix/README.md).
{
  lib,
  stdenvNoCC,
  bun,
  cacert,
  # The revision `egressd version` shows; the flake passes its own (a store path has no .git).
  commit ? "unknown",
}:
let
  packageJson = lib.importJSON ../package.json;

  # Only what the build reads (by path from the repository root), so edits to tests, docs or nix/ do
  # not rebuild the binary. A filter rather than lib.fileset, to work with any Nix and nixpkgs.
  sourceOf =
    name: wanted:
    lib.cleanSourceWith {
      inherit name;
      src = ../.;
      filter =
        path: _type:
        let
          rel = lib.removePrefix "${toString ../.}/" (toString path);
        in
        lib.any (w: rel == w || lib.hasPrefix "${w}/" rel) wanted;
    };
  src = sourceOf "egressd-source" [
    "main.ts"
    "lib"
    "package.json"
    "bun.lock"
    "tsconfig.json"
    "scripts/build.sh"
  ];

  node_modules = stdenvNoCC.mkDerivation {
    pname = "egressd-node-modules";
    inherit (packageJson) version;
    src = sourceOf "egressd-lockfile" [
      "package.json"
      "bun.lock"
    ];

    nativeBuildInputs = [
      bun
      cacert
    ];
    impureEnvVars = lib.fetchers.proxyImpureEnvVars;

    dontConfigure = true;
    buildPhase = ''
      runHook preBuild
      export HOME="$TMPDIR" BUN_INSTALL_CACHE_DIR="$TMPDIR/bun-cache"
      bun install --frozen-lockfile --ignore-scripts --production --no-progress
      runHook postBuild
    '';
    installPhase = ''
      runHook preInstall
      mkdir -p "$out"
      cp -R node_modules "$out/"
      runHook postInstall
    '';
    # Nothing to patch, and patchShebangs would add store references a fixed output may not have.
    dontFixup = true;

    # The NAR hash of $out for bun.lock as committed. Pure JavaScript only, so the same on every system.
    outputHash = "sha256-M6YflSPGiBBKzWPasc6JA3LwJOsHALZPCNPw540aXB8=";
    outputHashAlgo = "sha256";
    outputHashMode = "recursive";
  };
in
stdenvNoCC.mkDerivation (finalAttrs: {
  pname = "egressd";
  inherit (packageJson) version;
  inherit src;

  nativeBuildInputs = [ bun ];

  configurePhase = ''
    runHook preConfigure
    cp -R ${node_modules}/node_modules .
    runHook postConfigure
  '';
  # The same command as package.json's "build" script.
  buildPhase = ''
    runHook preBuild
    export HOME="$TMPDIR" EGRESSD_COMMIT=${lib.escapeShellArg commit}
    bash scripts/build.sh
    runHook postBuild
  '';
  installPhase = ''
    runHook preInstall
    install -Dm755 dist/egressd "$out/bin/egressd"
    runHook postInstall
  '';

  # A Bun-compiled executable is the bun runtime with the program appended to it: strip removes the
  # program, and patchelf rewrites offsets it depends on. The runtime is nixpkgs' bun, already
  # linked against the store's glibc, so there is nothing to fix up.
  dontStrip = true;
  dontPatchELF = true;
  dontFixup = true;

  doInstallCheck = true;
  installCheckPhase = ''
    runHook preInstallCheck
    "$out/bin/egressd" version | grep -F "egressd ${finalAttrs.version} "
    runHook postInstallCheck
  '';

  passthru = {
    inherit node_modules;
  };

  meta = {
    description = packageJson.description;
    license = lib.licenses.mit;
    mainProgram = "egressd";
    # Linux only: policy routing, nftables and WireGuard. bun is built for these two.
    platforms = [
      "x86_64-linux"
      "aarch64-linux"
    ];
  };
})
