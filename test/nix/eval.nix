# Test harness: evaluates nix/module.nix with nixpkgs' lib, without nixpkgs or NixOS.
#
# It declares only the NixOS options the module writes to, with the types NixOS gives them, so a
# wrong name or a wrong type fails here as it would on a real system. `pkgs` is a stub: each package
# is a fake derivation whose outPath is a directory under `stubRoot` (the test links a real
# bin/egressd there), `formats.json` keeps the JSON text, and `runCommand` keeps its script so the
# test can run it. systemd units are rendered to text the way NixOS renders them (lists become
# repeated keys, booleans true/false, Environment= quoted as JSON), for `systemd-analyze verify`.
#
#   nix-instantiate --eval --strict --json --readonly-mode test/nix/eval.nix \
#     --arg nixpkgsLib /path/to/nixpkgs.lib/lib --argstr stubRoot /tmp/x --argstr configJSON '{...}'
{
  nixpkgsLib,
  stubRoot ? "/nonexistent",
  # The user's configuration, as JSON (the common case) ...
  configJSON ? "{}",
  # ... and/or as a Nix file, for values JSON cannot express (paths, mkForce).
  configFile ? null,
  # false: emulate a NixOS before networking.firewall.backend existed (nftables.enable decides).
  withFirewallBackend ? true,
  # true: accept (unchecked) NixOS options this harness does not declare, for whole machine configs
  # such as the VM test's nodes. The options the module writes to stay declared and checked.
  allowUndeclared ? false,
  # true: emulate a nixpkgs before lib.types.externalPath (the module falls back to a string check).
  withoutExternalPath ? false,
  # What to return: "module" (default) or "options" (the option docs list).
  output ? "module",
}:
let
  fullLib = import nixpkgsLib;
  lib =
    if withoutExternalPath then
      fullLib.extend (_: prev: { types = builtins.removeAttrs prev.types [ "externalPath" ]; })
    else
      fullLib;
  inherit (lib) mkOption types;

  mkPkg =
    name: extra:
    {
      type = "derivation";
      inherit name;
      pname = name;
      outPath = "${stubRoot}/pkgs/${name}";
      meta = { };
    }
    // extra;

  jsonValue =
    types.nullOr (
      types.oneOf [
        types.bool
        types.int
        types.float
        types.str
        types.path
        (types.attrsOf jsonValue)
        (types.listOf jsonValue)
      ]
    )
    // {
      description = "JSON value";
    };

  pkgs = {
    egressd = mkPkg "egressd" { meta.mainProgram = "egressd"; };
    curl = mkPkg "curl" { };
    wireguard-tools = mkPkg "wireguard-tools" { };
    iproute2 = mkPkg "iproute2" { };
    nftables = mkPkg "nftables" { };
    wireguard-go = mkPkg "wireguard-go" { };
    # NixOS's default path for every service.
    coreutils = mkPkg "coreutils" { };
    findutils = mkPkg "findutils" { };
    gnugrep = mkPkg "gnugrep" { };
    gnused = mkPkg "gnused" { };
    systemd = mkPkg "systemd" { };
    formats.json =
      { }:
      {
        type = jsonValue;
        generate =
          name: value:
          mkPkg name {
            outPath = "${stubRoot}/store/${name}";
            json = builtins.toJSON value;
          };
      };
    runCommand =
      name: env: script:
      mkPkg name {
        outPath = "${stubRoot}/store/${name}";
        inherit env script;
      };
    stdenv = {
      buildPlatform.canExecute = _: true;
      hostPlatform.system = "x86_64-linux";
    };
  };

  # NixOS's unit option merge: lists concatenate, single values must agree.
  unitOption = types.mkOptionType {
    name = "systemd option";
    merge =
      loc: defs:
      if lib.any (d: builtins.isList d.value) defs then
        lib.concatMap (d: lib.toList d.value) defs
      else
        lib.mergeEqualOption loc defs;
  };
  unitList = mkOption {
    type = types.listOf types.str;
    default = [ ];
  };

  serviceModule =
    { config, ... }:
    {
      options = {
        enable = mkOption {
          type = types.bool;
          default = true;
        };
        description = mkOption {
          type = types.str;
          default = "";
        };
        wantedBy = unitList;
        wants = unitList;
        after = unitList;
        before = unitList;
        requires = unitList;
        path = mkOption {
          type = types.listOf (types.either types.package types.str);
          default = [ ];
        };
        environment = mkOption {
          type = types.attrsOf (types.nullOr (types.oneOf [
            types.str
            types.path
            types.package
          ]));
          default = { };
        };
        unitConfig = mkOption {
          type = types.attrsOf unitOption;
          default = { };
        };
        serviceConfig = mkOption {
          type = types.attrsOf unitOption;
          default = { };
        };
        restartTriggers = mkOption {
          type = types.listOf types.unspecified;
          default = [ ];
        };
        reloadTriggers = mkOption {
          type = types.listOf types.unspecified;
          default = [ ];
        };
      };
      config = {
        path = [
          pkgs.coreutils
          pkgs.findutils
          pkgs.gnugrep
          pkgs.gnused
          pkgs.systemd
        ];
        environment.PATH = "${lib.makeBinPath config.path}:${lib.makeSearchPathOutput "bin" "sbin" config.path}";
      };
    };

  firewallPorts = {
    options = {
      allowedTCPPorts = mkOption {
        type = types.listOf types.port;
        default = [ ];
      };
      allowedUDPPorts = mkOption {
        type = types.listOf types.port;
        default = [ ];
      };
      allowedUDPPortRanges = mkOption {
        type = types.listOf (types.attrsOf types.port);
        default = [ ];
      };
    };
  };

  nixosOptions =
    { config, ... }:
    {
      options = {
        assertions = mkOption {
          type = types.listOf types.unspecified;
          default = [ ];
        };
        warnings = mkOption {
          type = types.listOf types.str;
          default = [ ];
        };
        users.users = mkOption {
          type = types.attrsOf (
            types.submodule {
              options = {
                isSystemUser = mkOption {
                  type = types.bool;
                  default = false;
                };
                group = mkOption {
                  type = types.str;
                  default = "";
                };
                description = mkOption {
                  type = types.str;
                  default = "";
                };
              };
            }
          );
          default = { };
        };
        users.groups = mkOption {
          type = types.attrsOf (
            types.submodule {
              options.gid = mkOption {
                type = types.nullOr types.int;
                default = null;
              };
            }
          );
          default = { };
        };
        environment.etc = mkOption {
          type = types.attrsOf (
            types.submodule {
              options = {
                source = mkOption {
                  type = types.nullOr types.path;
                  default = null;
                };
                text = mkOption {
                  type = types.nullOr types.lines;
                  default = null;
                };
                mode = mkOption {
                  type = types.str;
                  default = "symlink";
                };
              };
            }
          );
          default = { };
        };
        environment.systemPackages = mkOption {
          type = types.listOf types.package;
          default = [ ];
        };
        boot.kernel.sysctl = mkOption {
          type = types.attrsOf (types.oneOf [
            types.bool
            types.int
            types.str
          ]);
          default = { };
        };
        boot.kernelModules = mkOption {
          type = types.listOf types.str;
          default = [ ];
        };
        networking.nftables.enable = mkOption {
          type = types.bool;
          default = false;
        };
        networking.firewall = {
          enable = mkOption {
            type = types.bool;
            default = true;
          };
          checkReversePath = mkOption {
            type = types.either types.bool (types.enum [
              "strict"
              "loose"
            ]);
            default = true;
          };
          interfaces = mkOption {
            type = types.attrsOf (types.submodule firewallPorts);
            default = { };
          };
          extraCommands = mkOption {
            type = types.lines;
            default = "";
          };
          extraStopCommands = mkOption {
            type = types.lines;
            default = "";
          };
          extraReversePathFilterRules = mkOption {
            type = types.lines;
            default = "";
          };
        }
        // lib.optionalAttrs withFirewallBackend {
          backend = mkOption {
            type = types.enum [
              "iptables"
              "nftables"
              "firewalld"
            ];
            default = if config.networking.nftables.enable then "nftables" else "iptables";
          };
        };
        systemd.services = mkOption {
          type = types.attrsOf (types.submodule serviceModule);
          default = { };
        };
      };
    };

  userConfig = builtins.fromJSON configJSON;

  evaluated = lib.evalModules {
    modules = [
      nixosOptions
      ../../nix/module.nix
      userConfig
      { _module.args.pkgs = pkgs; }
    ]
    ++ lib.optional allowUndeclared { _module.freeformType = types.attrsOf types.anything; }
    ++ lib.optional (configFile != null) configFile;
  };
  inherit (evaluated) config options;

  toValue =
    x:
    if x == true then
      "true"
    else if x == false then
      "false"
    else
      toString x;
  section =
    attrs:
    lib.concatStrings (
      lib.mapAttrsToList (
        name: value: lib.concatMapStrings (v: "${name}=${toValue v}\n") (lib.toList value)
      ) attrs
    );
  # As NixOS's unitConfig/serviceToUnit render a service (wantedBy becomes a symlink, not [Install]).
  renderService =
    name: s:
    let
      unit =
        lib.optionalAttrs (s.description != "") { Description = s.description; }
        // lib.optionalAttrs (s.requires != [ ]) { Requires = toString s.requires; }
        // lib.optionalAttrs (s.wants != [ ]) { Wants = toString s.wants; }
        // lib.optionalAttrs (s.after != [ ]) { After = toString s.after; }
        // lib.optionalAttrs (s.before != [ ]) { Before = toString s.before; }
        // lib.optionalAttrs (s.restartTriggers != [ ]) { X-Restart-Triggers = toString s.restartTriggers; }
        // lib.optionalAttrs (s.reloadTriggers != [ ]) { X-Reload-Triggers = toString s.reloadTriggers; }
        // s.unitConfig;
      env = lib.concatStrings (
        lib.mapAttrsToList (n: v: lib.optionalString (v != null) "Environment=${builtins.toJSON "${n}=${v}"}\n") s.environment
      );
    in
    "[Unit]\n${section unit}\n[Service]\n${env}${section s.serviceConfig}";

  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);
  egressd = config.systemd.services.egressd or null;
  etcConfig = if config.environment.etc ? "egressd/config.json" then config.environment.etc."egressd/config.json".source else null;
  # The generated JSON file: /etc's source itself, or the input of the runCommand that checks it.
  generated =
    if etcConfig == null then
      null
    else if etcConfig ? json then
      etcConfig
    else
      lib.findFirst (x: builtins.isAttrs x && x ? json) null (lib.attrValues (etcConfig.env or { }));
in
if output == "options" then
  map (o: {
    inherit (o) name type readOnly internal;
    hasDefault = o ? default;
    hasExample = o ? example;
    hasDescription = (o.description or null) != null && o.description != "";
  }) (
    lib.filter (o: lib.hasPrefix "services.egressd." o.name && o.visible && !o.internal) (
      lib.optionAttrSetToDocList options
    )
  )
else
  {
    inherit failedAssertions;
    warnings = config.warnings;
    enabled = config.services.egressd.enable;
    settingsJSON = if generated == null then null else generated.json;
    settingsStorePath = if generated == null then null else toString generated;
    configStorePath = if etcConfig == null then null else toString etcConfig;
    configCheck =
      if etcConfig == null || !(etcConfig ? script) then
        null
      else
        {
          out = toString etcConfig;
          inherit (etcConfig) script;
          nativeBuildInputs = map toString etcConfig.env.nativeBuildInputs;
        };
    unitText = if egressd == null then null else renderService "egressd" egressd;
    service =
      if egressd == null then
        null
      else
        {
          inherit (egressd)
            wantedBy
            wants
            after
            serviceConfig
            unitConfig
            ;
          path = map toString egressd.path;
          reloadTriggers = map toString egressd.reloadTriggers;
          restartTriggers = map toString egressd.restartTriggers;
          # The stub's store paths are named, not hashed: compare what the trigger files hold.
          restartTriggersJSON = map (t: t.json or null) egressd.restartTriggers;
        };
    users = config.users.users;
    groups = lib.attrNames config.users.groups;
    systemPackages = map toString config.environment.systemPackages;
    sysctl = config.boot.kernel.sysctl;
    kernelModules = config.boot.kernelModules;
    firewall = {
      interfaces = lib.mapAttrs (_: i: { inherit (i) allowedTCPPorts allowedUDPPorts allowedUDPPortRanges; }) config.networking.firewall.interfaces;
      inherit (config.networking.firewall) extraCommands extraStopCommands extraReversePathFilterRules;
    };
  }
