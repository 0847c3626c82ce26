{
  description = "egressd: a SOCKS5 egress proxy whose traffic, and only its traffic, leaves through a WireGuard tunnel";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  # Outputs (what `nix flake show` lists):
  #   packages.<system>.default, packages.<system>.egressd   the Bun-compiled binary (nix/package.nix)
  #   overlays.default                                        adds pkgs.egressd
  #   nixosModules.default, nixosModules.egressd              services.egressd (nix/module.nix), with
  #                                                           this flake's package as the default
  #   checks.<system>.package, checks.<system>.gateway        the build, and the VM test (nix/tests/)
  # for <system> in x86_64-linux, aarch64-linux.
  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      # The commit `egressd version` shows: the flake's revision, "-dirty" for a tree with changes.
      commit =
        if self ? rev then builtins.substring 0 12 self.rev else self.dirtyShortRev or "unknown";
      build = pkgs: pkgs.callPackage ./nix/package.nix { inherit commit; };
    in
    {
      overlays.default = final: _prev: { egressd = build final; };

      packages = forAllSystems (pkgs: rec {
        egressd = build pkgs;
        default = egressd;
      });

      nixosModules.egressd =
        { lib, pkgs, ... }:
        {
          imports = [ ./nix/module.nix ];
          # Without the overlay, pkgs.egressd does not exist; default to this flake's build.
          services.egressd.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        };
      nixosModules.default = self.nixosModules.egressd;

      checks = forAllSystems (pkgs: {
        package = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        gateway = pkgs.testers.runNixOSTest (
          import ./nix/tests/gateway.nix { egressdModule = self.nixosModules.default; }
        );
      });
    };
}
