# NixOS VM test: the gateway of docs/design.md, with VMs for a pod, the gateway, the exit (vps) and a web server.
#
#   pod (10.1.0.2) --vlan 2--> gateway: egressd, SOCKS5 on 10.1.0.1:1080, metrics on 10.1.0.1:9586
#                                  | wg-egress 10.100.0.2 ==== WireGuard over vlan 1 ====> vps: wg0
#   internet (vlan 1, 203.0.113.0/24):  gateway 203.0.113.2, vps (the exit) 203.0.113.1, web 203.0.113.80
#
# The web server answers with the client address it sees, so the test can tell the paths apart:
# through the proxy it must be the exit's 203.0.113.1, never the gateway's own 203.0.113.2.
#
# Run it (on a Linux machine with KVM):  nix build .#checks.x86_64-linux.gateway -L
# Used as: pkgs.testers.runNixOSTest (import ./nix/tests/gateway.nix { egressdModule = ...; })
{ egressdModule }:
let
  # Throwaway keys for this test only (egressd genkey / pubkey / genpsk). Never use them elsewhere.
  keys = {
    gatewayPrivate = "+H3IxV+8cTRNtdRIXMeHDOyNVRbuxgJoyLQpKnoAdko=";
    gatewayPublic = "qHe/6jNSY8Bg7hkoz3cMzgz23IMlIFtz728owpKztVY=";
    exitPrivate = "YGcBKM+LKPiLjuhBiAr7EHBJlf65yEfHOSmcwEUGqGM=";
    exitPublic = "MbEXI83r8uRLFBLKc9vuF6v5YtnvSLSOSU0HYb+kBBQ=";
    preshared = "PqIAAUBxe3/P4O3v9RTIjfLxJ/9kvjKFryXPBFm0kaY=";
  };
  web = "203.0.113.80";
in
{
  name = "egressd-gateway";

  nodes = {
    web =
      { lib, ... }:
      {
        virtualisation.vlans = [ 1 ];
        networking.useDHCP = false;
        networking.interfaces.eth1.ipv4.addresses = lib.mkForce [
          {
            address = web;
            prefixLength = 24;
          }
        ];
        networking.firewall.allowedTCPPorts = [ 80 ];
        services.nginx = {
          enable = true;
          virtualHosts.default = {
            default = true;
            locations."/".return = ''200 "$remote_addr\n"'';
          };
        };
      };

    vps =
      { lib, pkgs, ... }:
      {
        virtualisation.vlans = [ 1 ];
        networking.useDHCP = false;
        networking.interfaces.eth1.ipv4.addresses = lib.mkForce [
          {
            address = "203.0.113.1";
            prefixLength = 24;
          }
        ];
        networking.firewall.allowedUDPPorts = [ 51820 ];
        networking.nat = {
          enable = true;
          externalInterface = "eth1";
          internalInterfaces = [ "wg0" ];
        };
        networking.wireguard.interfaces.wg0 = {
          ips = [ "10.100.0.1/24" ];
          listenPort = 51820;
          privateKeyFile = toString (pkgs.writeText "exit-private-key" keys.exitPrivate);
          peers = [
            {
              publicKey = keys.gatewayPublic;
              presharedKeyFile = toString (pkgs.writeText "preshared-key" keys.preshared);
              allowedIPs = [ "10.100.0.2/32" ];
            }
          ];
        };
      };

    gateway =
      { lib, pkgs, ... }:
      {
        imports = [ egressdModule ];
        virtualisation.vlans = [
          1
          2
        ];
        networking.useDHCP = false;
        networking.interfaces.eth1.ipv4.addresses = lib.mkForce [
          {
            address = "203.0.113.2";
            prefixLength = 24;
          }
        ];
        networking.interfaces.eth2.ipv4.addresses = lib.mkForce [
          {
            address = "10.1.0.1";
            prefixLength = 24;
          }
        ];
        # The nftables firewall, with NixOS's default strict reverse-path filter, which the module
        # must let the tunnel's replies through.
        networking.nftables.enable = true;
        environment.systemPackages = [ pkgs.curl ];

        # Secrets as a real deployment has them: root-only files outside the store (here written by
        # /etc with mode 0400; sops-nix would put them under /run/secrets).
        environment.etc."egressd-test/private-key" = {
          text = keys.gatewayPrivate;
          mode = "0400";
        };
        environment.etc."egressd-test/preshared-key" = {
          text = keys.preshared;
          mode = "0400";
        };

        services.egressd = {
          enable = true;
          privateKeyFile = "/etc/egressd-test/private-key";
          presharedKeyFile = "/etc/egressd-test/preshared-key";
          openFirewall = true;
          firewallInterfaces = {
            proxy = [ "eth2" ];
            metrics = [ "eth2" ];
          };
          settings = {
            interface.addresses = [ "10.100.0.2/32" ];
            exit = {
              name = "exit";
              publicKey = keys.exitPublic;
              endpoint = "203.0.113.1:51820";
            };
            proxy = {
              listen = [ "10.1.0.1:1080" ];
              allowClients = [ "10.1.0.0/24" ];
            };
            metrics.listen = "10.1.0.1:9586";
          };
        };
      };

    pod =
      { lib, pkgs, ... }:
      {
        virtualisation.vlans = [ 2 ];
        networking.useDHCP = false;
        networking.interfaces.eth1.ipv4.addresses = lib.mkForce [
          {
            address = "10.1.0.2";
            prefixLength = 24;
          }
        ];
        environment.systemPackages = [ pkgs.curl ];
      };
  };

  testScript = ''
    import json

    start_all()
    web.wait_for_unit("nginx.service")
    web.wait_for_open_port(80)
    vps.wait_for_unit("wireguard-wg0.service")
    gateway.wait_for_unit("egressd.service")

    proxied = "curl -sf --max-time 10 --socks5 10.1.0.1:1080 http://${web}/"

    with subtest("the pod's traffic leaves from the exit's address"):
        out = pod.wait_until_succeeds(proxied, timeout=60)
        assert out.strip() == "203.0.113.1", f"proxied request came from {out!r}"

    with subtest("only egressd's traffic is tunnelled; root's goes out directly"):
        out = gateway.succeed("curl -sf --max-time 10 http://${web}/")
        assert out.strip() == "203.0.113.2", f"direct request came from {out!r}"

    with subtest("the unit runs as its own user, with the credential and the generated config"):
        gateway.succeed("test \"$(systemctl show -P User egressd)\" = egressd")
        cfg = json.loads(gateway.succeed("cat /etc/egressd/config.json"))
        assert cfg["interface"]["privateKeyFile"] == "private-key", cfg["interface"]
        gateway.fail("grep -F '${keys.gatewayPrivate}' /etc/egressd/config.json")
        gateway.succeed("egressd check")
        gateway.succeed("egressd status")
        gateway.succeed("sysctl -n net.ipv4.conf.all.src_valid_mark | grep -x 1")

    with subtest("metrics keep the WireGuard exporter's names"):
        pod.succeed("curl -sf http://10.1.0.1:9586/metrics | grep '^wireguard_latest_handshake_seconds'")

    with subtest("a reload keeps the service and the proxy working"):
        gateway.succeed("systemctl reload egressd")
        gateway.succeed("systemctl is-active egressd")
        pod.succeed(proxied)

    with subtest("kill switch: with the tunnel down, nothing leaks out of the home address"):
        vps.succeed("ip link set wg0 down")
        pod.fail("curl -sf --max-time 5 --socks5 10.1.0.1:1080 http://${web}/leak-probe")
        gateway.succeed("ip link del wg-egress")
        pod.fail("curl -sf --max-time 5 --socks5 10.1.0.1:1080 http://${web}/leak-probe")
        web.fail("grep leak-probe /var/log/nginx/access.log")
        vps.succeed("ip link set wg0 up")
        out = pod.wait_until_succeeds(proxied, timeout=60)
        assert out.strip() == "203.0.113.1", f"after repair the request came from {out!r}"

    with subtest("stopping removes the interface and the rules"):
        gateway.succeed("systemctl stop egressd")
        gateway.fail("ip link show wg-egress")
        gateway.fail("ip rule | grep -q 'lookup 51820'")
  '';
}
