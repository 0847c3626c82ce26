# services.egressd: the NixOS module.
#
# One service replaces the hand-built stack of docs/design.md (a WireGuard interface, microsocks with nft
# rules, and the WireGuard exporter). The daemon's config is RFC 42 `settings`, written as JSON; the
# schema in lib/config/schema.ts is the truth, and by default the generated file is checked against
# it at build time with `egressd check-config`.
#
# What this module does not do: configure the exit host (see nix/tests/gateway.nix for one), or route
# anything but egressd's own traffic.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.egressd;
  settingsFormat = pkgs.formats.json { };

  # The names under $CREDENTIALS_DIRECTORY. The daemon resolves a relative secret path there, so the
  # config holds only these names and systemd (LoadCredential=) copies the files in at start.
  credentialNames = {
    privateKey = "private-key";
    presharedKey = "preshared-key";
    proxyPassword = "proxy-password";
  };

  # A secret's path on the host. A string, never a Nix path: a path value would be copied into the
  # world-readable store. Newer nixpkgs has types.externalPath (absolute, outside the store); older
  # ones get an absolute-path check, and the assertions below reject store paths for both.
  secretPath = lib.types.externalPath or (lib.types.strMatching "/.+");

  # Where the unit reads its config. /etc (not the store path) so that a settings change can be
  # applied with a reload (SIGHUP re-reads this file) instead of a restart that drops connections.
  configPath = "/etc/egressd/config.json";

  impl = cfg.settings.interface.implementation;
  # auto falls back to wireguard-go when the kernel cannot create the interface, so it needs it too.
  needsUserspace = impl != "kernel";
  ifName = cfg.settings.interface.name;
  # Several exits (`settings.exits`, freeform): each has its own interface, by default
  # interface.name + "-" + its index, as the daemon derives it.
  severalExits = (cfg.settings.exits or null) != null;
  exitIfNames =
    if severalExits then
      lib.imap0 (i: e: e.interface or "${ifName}-${toString i}") cfg.settings.exits
    else
      [ ifName ];

  # "10.1.0.1:1080" or "[::1]:1080" -> { host; port; }, or null when it does not parse (the build-time
  # check-config reports those).
  parseListen =
    s:
    let
      v6 = builtins.match "[[](.*)[]]:([0-9]{1,5})" s;
      v4 = builtins.match "([^:]+):([0-9]{1,5})" s;
      m = if v6 != null then v6 else v4;
    in
    if m == null then
      null
    else
      {
        host = builtins.elemAt m 0;
        port = (lib.toIntBase10 or lib.toInt) (builtins.elemAt m 1);
      };
  isWildcard =
    host:
    builtins.elem host [
      "0.0.0.0"
      "::"
      "0:0:0:0:0:0:0:0"
    ];
  listenPorts = addrs: lib.unique (map (a: a.port) (lib.filter (a: a != null) (map parseListen addrs)));
  wildcardListens = addrs: lib.filter (a: (parseListen a) != null && isWildcard (parseListen a).host) addrs;

  # An entry is "ip:port" or { address = "ip:port"; protocols = [ ... ]; }.
  proxyListen = map (l: if builtins.isAttrs l then l.address else l) cfg.settings.proxy.listen;
  # SOCKS5 UDP ASSOCIATE relay sockets: ephemeral ports unless settings.proxy.udp.portRange
  # ("40000-40100") names them; only a named range can be opened in the firewall.
  proxyUdp = cfg.settings.proxy.udp or { };
  udpRangeMatch = if (proxyUdp.portRange or null) == null then null else builtins.match "([0-9]+)-([0-9]+)" proxyUdp.portRange;
  udpPortRanges = lib.optional ((proxyUdp.enabled or true) && udpRangeMatch != null) {
    from = lib.toInt (builtins.elemAt udpRangeMatch 0);
    to = lib.toInt (builtins.elemAt udpRangeMatch 1);
  };
  metricsListen = lib.optional (cfg.settings.metrics.listen != null) cfg.settings.metrics.listen;

  # fwmarks are numbers or "0xca6c" strings in the schema; compare them as numbers.
  markValue =
    v:
    if builtins.isInt v then
      v
    else if builtins.isString v && builtins.match "0[xX][0-9a-fA-F]{1,8}" v != null then
      (builtins.fromTOML "v = 0x${lib.toLower (builtins.substring 2 8 v)}").v
    else if builtins.isString v && builtins.match "[0-9]{1,10}" v != null then
      (lib.toIntBase10 or lib.toInt) v
    else
      null;
  routing = cfg.settings.routing or { };
  # The schema's defaults: 0xca6c and 0xca6d.
  fwmark = markValue (routing.fwmark or 51820);
  wireguardFwmark = markValue (routing.wireguardFwmark or 51821);

  controlSocket = cfg.settings.control.socket or "/run/egressd/control.sock";

  # Replies from the exit come out of the tunnel unmarked. NixOS's default strict reverse-path filter
  # looks their source up in the main table, finds the WAN route, and drops them. Only the strict mode
  # does (the check includes the input interface); "loose" and off are fine.
  firewallBackend =
    config.networking.firewall.backend
      or (if config.networking.nftables.enable then "nftables" else "iptables");
  strictReversePath =
    config.networking.firewall.enable
    && builtins.elem config.networking.firewall.checkReversePath [
      true
      "strict"
    ];

  # With `exits`, the one-exit fields the options declare (exit, interface.addresses) are left out:
  # the daemon refuses a config that has both forms.
  effectiveSettings =
    if severalExits then
      removeAttrs cfg.settings [ "exit" ] // { interface = removeAttrs cfg.settings.interface [ "addresses" ]; }
    else
      cfg.settings;
  rawConfigFile = settingsFormat.generate "egressd.json" effectiveSettings;

  # The generated config, checked at build time by the daemon's own schema. The secret files do not
  # exist at build time, so throwaway ones of the right kind stand in for the credentials.
  checkedConfigFile =
    pkgs.runCommand "egressd-config.json"
      {
        settings = rawConfigFile;
        nativeBuildInputs = [ cfg.package ];
        preferLocalBuild = true;
      }
      ''
        export CREDENTIALS_DIRECTORY="$(mktemp -d)"
        egressd genkey --output "$CREDENTIALS_DIRECTORY/${credentialNames.privateKey}"
        egressd genpsk --output "$CREDENTIALS_DIRECTORY/${credentialNames.presharedKey}"
        (umask 077 && printf 'build-time-check' > "$CREDENTIALS_DIRECTORY/${credentialNames.proxyPassword}")
        egressd check-config --quiet --config "$settings"
        cp "$settings" "$out"
      '';
  # The settings a reload cannot apply: egressd refuses a SIGHUP that changes the tunnel, its routing,
  # the leak guard's allow list or the control socket (it would have to take the kill switch down
  # while the proxy runs), and asks for a restart. A change to these restarts the unit instead.
  hostSettingsFile = settingsFormat.generate "egressd-restart-settings.json" {
    interface = cfg.settings.interface or { };
    exit = if severalExits then { } else cfg.settings.exit or { };
    exits = cfg.settings.exits or null;
    routing = cfg.settings.routing or { };
    control = cfg.settings.control or { };
    allowDestinations = cfg.settings.proxy.allowDestinations or [ ];
  };

  configFile =
    if cfg.checkConfig && pkgs.stdenv.buildPlatform.canExecute pkgs.stdenv.hostPlatform then
      checkedConfigFile
    else
      rawConfigFile;

  secretOptions = lib.filter (s: s.value != null) [
    {
      option = "privateKeyFile";
      credential = credentialNames.privateKey;
      value = cfg.privateKeyFile;
    }
    {
      option = "presharedKeyFile";
      credential = credentialNames.presharedKey;
      value = cfg.presharedKeyFile;
    }
    {
      option = "proxyPasswordFile";
      credential = credentialNames.proxyPassword;
      value = cfg.proxyPasswordFile;
    }
  ];

  # A freeform JSON section with some typed options.
  section =
    {
      description,
      options,
      example,
    }:
    lib.mkOption {
      type = lib.types.submodule {
        freeformType = settingsFormat.type;
        inherit options;
      };
      default = { };
      inherit description example;
    };
in
{
  options.services.egressd = {
    enable = lib.mkEnableOption "egressd, a SOCKS5 egress proxy whose traffic, and only its traffic, leaves through a WireGuard tunnel";

    package = lib.mkPackageOption pkgs "egressd" {
      example = "inputs.egressd.packages.\${pkgs.stdenv.hostPlatform.system}.default";
    };

    privateKeyFile = lib.mkOption {
      type = lib.types.nullOr secretPath;
      default = null;
      example = "/run/secrets/egressd/private-key";
      description = ''
        Path on the host of the WireGuard private key (as `wg genkey` or `egressd genkey` prints it),
        for example a sops-nix or agenix secret. systemd passes it to the service with
        `LoadCredential=`, so it may be owned by root with mode 0400; it is never copied to the Nix
        store. Required.
      '';
    };

    presharedKeyFile = lib.mkOption {
      type = lib.types.nullOr secretPath;
      default = null;
      example = "/run/secrets/egressd/preshared-key";
      description = ''
        Path on the host of the optional WireGuard preshared key shared with the exit
        (`wg genpsk`). Passed with `LoadCredential=`, never copied to the store.
      '';
    };

    proxyPasswordFile = lib.mkOption {
      type = lib.types.nullOr secretPath;
      default = null;
      example = "/run/secrets/egressd/proxy-password";
      description = ''
        Path on the host of the SOCKS5 password (RFC 1929, 1-255 bytes) for the user in
        {option}`services.egressd.settings.proxy.auth.username`. Passed with `LoadCredential=`,
        never copied to the store.
      '';
    };

    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = false;
      example = true;
      description = ''
        Whether to open the proxy port(s) on the interfaces in
        {option}`services.egressd.firewallInterfaces.proxy` and the metrics port on those in
        {option}`services.egressd.firewallInterfaces.metrics`. Ports are only opened per interface,
        never globally, so a proxy meant for the pod network is not reachable from the WAN. Works
        with both the iptables and the nftables firewall. SOCKS5 UDP ASSOCIATE relays bind
        ephemeral ports that cannot be opened in advance: set
        {option}`services.egressd.settings.proxy.udp.portRange` (e.g. `"40000-40100"`) and that
        UDP range is opened on the proxy interfaces too.
      '';
    };

    firewallInterfaces = {
      proxy = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        default = [ ];
        example = [ "cni0" ];
        description = ''
          Interfaces on which {option}`services.egressd.openFirewall` opens the ports of
          {option}`services.egressd.settings.proxy.listen`: usually the pod or LAN bridge.
        '';
      };
      metrics = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        default = [ ];
        example = [ "lan0" ];
        description = ''
          Interfaces on which {option}`services.egressd.openFirewall` opens the port of
          {option}`services.egressd.settings.metrics.listen`, where Prometheus scrapes from.
        '';
      };
    };

    checkConfig = lib.mkOption {
      type = lib.types.bool;
      default = true;
      example = false;
      description = ''
        Whether to validate the generated config at build time with `egressd check-config`, so that a
        mistake fails `nixos-rebuild` instead of the service. Throwaway keys stand in for the secret
        files, which do not exist at build time. Skipped automatically when cross-compiling.
      '';
    };

    settings = lib.mkOption {
      description = ''
        egressd's configuration, written to {file}`/etc/egressd/config.json`. Any field of the
        daemon's schema can be set here (see the README's config reference, or
        `egressd check-config`, which prints every field with its default); the most common ones are
        declared as options. Unknown fields are an error, found at build time when
        {option}`services.egressd.checkConfig` is on.

        Secret files are not set here: use {option}`services.egressd.privateKeyFile`,
        {option}`services.egressd.presharedKeyFile` and
        {option}`services.egressd.proxyPasswordFile`.

        Changing settings reloads the service (SIGHUP, which keeps live connections); changing the
        secret files or the package restarts it.
      '';
      default = { };
      example = lib.literalExpression ''
        {
          interface.addresses = [ "10.100.0.2/32" ];
          exit = {
            name = "hetzner";
            publicKey = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=";
            endpoint = "vps.example.net:51820";
          };
          proxy = {
            listen = [ "10.1.0.1:1080" ];
            allowClients = [ "10.1.0.0/24" ];
          };
          metrics.listen = "10.0.0.1:9586";
        }
      '';
      type = lib.types.submodule {
        freeformType = settingsFormat.type;
        options = {
          interface = section {
            description = "The WireGuard interface egressd creates and owns.";
            example = {
              name = "wg-egress";
              addresses = [ "10.100.0.2/32" ];
            };
            options = {
              name = lib.mkOption {
                type = lib.types.strMatching "[A-Za-z0-9_.-]{1,15}";
                default = "wg-egress";
                example = "wg-exit";
                description = "Name of the WireGuard interface (at most 15 characters).";
              };
              addresses = lib.mkOption {
                type = lib.types.listOf lib.types.str;
                default = [ ];
                example = [ "10.100.0.2/32" ];
                description = ''
                  Tunnel addresses of this gateway, as the exit's peer entry for it allows them
                  (`AllowedIPs` on the exit). At least one is required.
                '';
              };
              implementation = lib.mkOption {
                type = lib.types.enum [
                  "auto"
                  "kernel"
                  "userspace"
                ];
                default = "auto";
                example = "kernel";
                description = ''
                  `kernel` uses the kernel's WireGuard; `userspace` runs wireguard-go; `auto` tries the
                  kernel first and falls back to wireguard-go. wireguard-go is put on the service's
                  path for `auto` and `userspace` only, and the `wireguard` kernel module is loaded at
                  boot for `auto` and `kernel`.
                '';
              };
              privateKeyFile = lib.mkOption {
                type = lib.types.str;
                default = credentialNames.privateKey;
                readOnly = true;
                description = ''
                  The credential name the daemon reads the private key from. Set by the module; use
                  {option}`services.egressd.privateKeyFile` for the file on the host.
                '';
              };
            };
          };

          exit = section {
            description = "The exit host: the WireGuard peer whose address the proxied traffic leaves from.";
            example = {
              name = "hetzner";
              publicKey = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=";
              endpoint = "vps.example.net:51820";
            };
            options = {
              publicKey = lib.mkOption {
                type = lib.types.nullOr (lib.types.strMatching "[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=");
                default = null;
                example = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=";
                description = "The exit's WireGuard public key (`wg pubkey`). Required.";
              };
              endpoint = lib.mkOption {
                type = lib.types.nullOr lib.types.str;
                default = null;
                example = "vps.example.net:51820";
                description = ''
                  `host:port` of the exit. A DNS name is re-resolved when handshakes go stale.
                  Required.
                '';
              };
              presharedKeyFile = lib.mkOption {
                type = lib.types.nullOr lib.types.str;
                default = if cfg.presharedKeyFile != null then credentialNames.presharedKey else null;
                defaultText = lib.literalExpression ''if config.services.egressd.presharedKeyFile != null then "${credentialNames.presharedKey}" else null'';
                readOnly = true;
                description = ''
                  The credential name of the preshared key. Set by the module; use
                  {option}`services.egressd.presharedKeyFile` for the file on the host.
                '';
              };
            };
          };

          proxy = section {
            description = "The SOCKS5 proxy the pods use.";
            example = {
              listen = [ "10.1.0.1:1080" ];
              allowClients = [ "10.1.0.0/24" ];
            };
            options = {
              listen = lib.mkOption {
                type = lib.types.listOf (lib.types.either lib.types.str (lib.types.submodule {
                  options = {
                    address = lib.mkOption { type = lib.types.str; description = "`ip:port` the listener binds."; };
                    protocols = lib.mkOption {
                      type = lib.types.listOf (lib.types.enum [ "socks5" "http" ]);
                      default = [ "socks5" "http" ];
                      description = "What this listener speaks; both by default, told apart by the first byte.";
                    };
                  };
                }));
                default = [ "127.0.0.1:1080" ];
                example = [ "10.1.0.1:1080" { address = "10.1.0.1:3128"; protocols = [ "http" ]; } ];
                description = ''
                  `ip:port` addresses the proxy binds, each speaking SOCKS5 and HTTP (pods can use
                  `HTTPS_PROXY=http://...` or `ALL_PROXY=socks5h://...`); an entry
                  `{ address; protocols; }` limits one listener to `socks5` or `http`. A wildcard
                  (`0.0.0.0`, `[::]`) also needs `settings.proxy.allowWildcardBind = true`, because it
                  would expose the proxy on the WAN.
                '';
              };
              allowClients = lib.mkOption {
                type = lib.types.listOf lib.types.str;
                default = [
                  "127.0.0.0/8"
                  "::1/128"
                ];
                example = [ "10.1.0.0/24" ];
                description = "Client prefixes allowed to connect; others are closed before any byte is read.";
              };
              auth = lib.mkOption {
                type = lib.types.nullOr (
                  lib.types.submodule {
                    options = {
                      username = lib.mkOption {
                        type = lib.types.strMatching ".{1,255}";
                        default = "egressd";
                        example = "ircbot";
                        description = "The SOCKS5 username (RFC 1929).";
                      };
                      passwordFile = lib.mkOption {
                        type = lib.types.str;
                        default = credentialNames.proxyPassword;
                        readOnly = true;
                        description = ''
                          The credential name of the password. Set by the module; use
                          {option}`services.egressd.proxyPasswordFile` for the file on the host.
                        '';
                      };
                    };
                  }
                );
                default = null;
                example = {
                  username = "ircbot";
                };
                description = ''
                  Username/password authentication, or null for none. The password comes from
                  {option}`services.egressd.proxyPasswordFile`.
                '';
              };
            };
          };

          metrics = section {
            description = "The Prometheus endpoint (`/metrics`, `/healthz`, `/readyz`).";
            example = {
              listen = "10.0.0.1:9586";
            };
            options = {
              listen = lib.mkOption {
                type = lib.types.nullOr lib.types.str;
                default = "127.0.0.1:9586";
                example = "10.0.0.1:9586";
                description = ''
                  `ip:port` of the metrics endpoint (9586 is the WireGuard exporter's port, so
                  existing scrape configs and dashboards keep working), or null to turn it off.
                '';
              };
            };
          };
        };
      };
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.privateKeyFile != null;
        message = "services.egressd.privateKeyFile must be set: the path on the host of the WireGuard private key (for example a sops-nix secret).";
      }
      {
        assertion = severalExits || cfg.settings.interface.addresses != [ ];
        message = "services.egressd.settings.interface.addresses must list at least one tunnel address of this gateway, e.g. [ \"10.100.0.2/32\" ].";
      }
      {
        assertion = severalExits || cfg.settings.exit.publicKey != null;
        message = "services.egressd.settings.exit.publicKey must be set to the exit's WireGuard public key.";
      }
      {
        assertion = severalExits || cfg.settings.exit.endpoint != null;
        message = "services.egressd.settings.exit.endpoint must be set to the exit's host:port.";
      }
      {
        assertion = (cfg.proxyPasswordFile != null) == (cfg.settings.proxy.auth != null);
        message =
          if cfg.proxyPasswordFile != null then
            "services.egressd.proxyPasswordFile is set, but settings.proxy.auth is null; set settings.proxy.auth.username."
          else
            "services.egressd.settings.proxy.auth is set, but services.egressd.proxyPasswordFile is null; the password must come from a file.";
      }
      {
        assertion = (cfg.settings.proxy.allowWildcardBind or false) || wildcardListens proxyListen == [ ];
        message = "services.egressd.settings.proxy.listen has the wildcard address ${toString (wildcardListens proxyListen)}, which would expose the proxy on every interface including the WAN; bind the LAN/pod address, or set settings.proxy.allowWildcardBind = true.";
      }
      {
        assertion = (cfg.settings.metrics.allowWildcardBind or false) || wildcardListens metricsListen == [ ];
        message = "services.egressd.settings.metrics.listen is the wildcard address ${toString (wildcardListens metricsListen)}; bind a LAN address, or set settings.metrics.allowWildcardBind = true.";
      }
      {
        assertion = fwmark == null || wireguardFwmark == null || fwmark != wireguardFwmark;
        message = "services.egressd.settings.routing.fwmark and routing.wireguardFwmark must differ, or WireGuard's own UDP would be routed into its own tunnel.";
      }
      {
        assertion = lib.hasPrefix "/run/egressd/" controlSocket;
        message = "services.egressd.settings.control.socket must be under /run/egressd/, the service's only writable runtime directory (got ${controlSocket}).";
      }
      {
        assertion = cfg.openFirewall -> (cfg.firewallInterfaces.proxy != [ ] || cfg.firewallInterfaces.metrics != [ ]);
        message = "services.egressd.openFirewall is set, but services.egressd.firewallInterfaces.proxy and .metrics are empty; name the interfaces to open the ports on (ports are never opened on all interfaces).";
      }
      {
        assertion = cfg.openFirewall -> (cfg.firewallInterfaces.metrics == [ ] || cfg.settings.metrics.listen != null);
        message = "services.egressd.firewallInterfaces.metrics is set, but settings.metrics.listen is null (metrics are off).";
      }
    ]
    ++ map (s: {
      assertion = !lib.hasPrefix "${builtins.storeDir}/" s.value;
      message = "services.egressd.${s.option} is in the Nix store (${s.value}), which every local user can read; point it at a file outside the store, such as a sops-nix or agenix secret.";
    }) secretOptions;

    users.users.egressd = {
      isSystemUser = true;
      group = "egressd";
      description = "egressd WireGuard egress proxy";
    };
    users.groups.egressd = { };

    environment.etc."egressd/config.json".source = configFile;
    # `egressd status`, `check`, `genkey` and `pubkey` for the administrator.
    environment.systemPackages = [ cfg.package ];

    # docs/design.md, trap 2: the tunnel's source address must follow the fwmark reroute. Set here, so the
    # daemon never needs /proc/sys writable (ProtectKernelTunables=yes below).
    boot.kernel.sysctl."net.ipv4.conf.all.src_valid_mark" = 1;
    boot.kernelModules = lib.optional (impl != "userspace") "wireguard";

    networking.firewall = lib.mkMerge [
      (lib.mkIf cfg.openFirewall {
        interfaces = lib.mkMerge (
          map (i: {
            ${i} = {
              allowedTCPPorts = listenPorts proxyListen;
              allowedUDPPortRanges = udpPortRanges;
            };
          }) cfg.firewallInterfaces.proxy
          ++ map (i: { ${i}.allowedTCPPorts = listenPorts metricsListen; }) cfg.firewallInterfaces.metrics
        );
      })
      # Let replies out of the tunnel past the strict reverse-path filter (see strictReversePath). The
      # exit is the tunnel's only peer and its AllowedIPs are the whole internet, so checking their
      # source against the routing table adds nothing WireGuard does not already enforce.
      (lib.mkIf (strictReversePath && firewallBackend == "nftables") {
        extraReversePathFilterRules = ''
          iifname ${if severalExits then "{ ${lib.concatMapStringsSep ", " (n: ''"${n}"'') exitIfNames} }" else ''"${ifName}"''} accept comment "egressd: replies from the exit arrive unmarked"
        '';
      })
      (lib.mkIf (strictReversePath && firewallBackend == "iptables") {
        extraCommands = ''
          ${lib.concatMapStringsSep "\n" (n: "ip46tables -t mangle -I nixos-fw-rpfilter -i ${n} -j RETURN") exitIfNames}
        '';
        extraStopCommands = ''
          ${lib.concatMapStringsSep "\n" (n: "ip46tables -t mangle -D nixos-fw-rpfilter -i ${n} -j RETURN 2>/dev/null || true") exitIfNames}
        '';
      })
    ];

    # The same unit as systemd/egressd.service, with Nix store paths.
    systemd.services.egressd = {
      description = "egressd WireGuard egress proxy";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      # After the firewall, which (with networking.nftables.flushRuleset) flushes every table when
      # it starts; egressd's reconcile loop would repair that, but starting after it avoids the gap.
      after = [
        "network-online.target"
        "nftables.service"
        "firewall.service"
      ];
      path = [
        pkgs.wireguard-tools
        pkgs.iproute2
        pkgs.nftables
      ]
      ++ lib.optional needsUserspace pkgs.wireguard-go;
      # Settings live in /etc/egressd/config.json: a change there reloads (SIGHUP re-reads it and
      # keeps live connections), unless it touches what a reload refuses (hostSettingsFile), which
      # restarts, as does anything that changes the unit itself.
      reloadTriggers = [ configFile ];
      restartTriggers = [ hostSettingsFile ];
      unitConfig = {
        # Too many restarts in a row means a broken config or host; stop and let an alert fire.
        StartLimitIntervalSec = 300;
        StartLimitBurst = 10;
      };
      serviceConfig = {
        # READY=1 once the tunnel, rules and listeners are up. `systemctl reload` (and a settings
        # change, through reloadTriggers) asks the daemon over its control socket and fails when
        # the daemon refuses the new config, keeping the old one.
        Type = "notify";
        NotifyAccess = "main";
        ExecStart = "${lib.getExe cfg.package} run --config ${configPath}";
        ExecReload = "${lib.getExe cfg.package} reload --socket ${controlSocket}";
        WatchdogSec = "30s";
        Restart = "on-failure";
        RestartSec = "2s";
        # Live connections get daemon.drainTimeout (default 10s) to finish; keep this above it.
        TimeoutStopSec = "30s";
        # SIGTERM to the daemon alone, which stops its own children in order while it tears down.
        KillMode = "mixed";

        # Traffic is marked by uid, so the daemon needs a dedicated non-root uid.
        User = "egressd";
        Group = "egressd";
        AmbientCapabilities = [ "CAP_NET_ADMIN" ];
        CapabilityBoundingSet = [ "CAP_NET_ADMIN" ];

        LoadCredential = map (s: "${s.credential}:${s.value}") secretOptions;
        # /run/egressd holds the control socket. wireguard-go puts its UAPI socket in /run/wireguard,
        # which other tunnels on the host share: the service gets a private one mounted there
        # instead of owning (and on stop deleting) the host's.
        RuntimeDirectory = [ "egressd" ] ++ lib.optional needsUserspace "egressd/wireguard";
        RuntimeDirectoryMode = "0750";
        BindPaths = lib.optional needsUserspace "/run/egressd/wireguard:/run/wireguard";
        # Two file descriptors per proxied connection (proxy.maxConnections defaults to 20000).
        LimitNOFILE = 65536;

        NoNewPrivileges = true;
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateIPC = true;
        DevicePolicy = "closed";
        # wireguard-go needs the TUN device; nothing else in /dev.
        DeviceAllow = lib.optional needsUserspace "/dev/net/tun rw";
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectClock = true;
        ProtectHostname = true;
        ProtectProc = "invisible";
        RestrictAddressFamilies = [
          "AF_INET"
          "AF_INET6"
          "AF_NETLINK"
          "AF_UNIX"
        ];
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        RemoveIPC = true;
        SystemCallArchitectures = "native";
        SystemCallFilter = [
          "@system-service"
          "~@privileged @resources @obsolete"
        ];
        SystemCallErrorNumber = "EPERM";
        UMask = "0077";
        # The JavaScript engine's JIT writes machine code and then executes it, which
        # MemoryDenyWriteExecute=yes forbids; with it the daemon dies at start-up.
        MemoryDenyWriteExecute = false;
      };
    };
  };
}
