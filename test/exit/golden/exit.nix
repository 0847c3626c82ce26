# The exit "hetzner" of egressd's tunnel "wg-egress": a NixOS module for the exit host,
# rendered by `egressd exit-config --format nixos`. Import it from configuration.nix, and put the
# exit's private key at /etc/wireguard/wg0.key (mode 0600, e.g. with agenix or sops-nix); never inline it here.
{ ... }:
{
  boot.kernel.sysctl = {
    "net.ipv4.ip_forward" = 1;
    "net.ipv6.conf.all.forwarding" = 1;
  };
  networking.firewall.allowedUDPPorts = [ 51820 ];
  networking.nftables.enable = true;
  networking.nftables.tables.egressd_exit = {
    family = "inet";
    content = ''
      chain forward {
      	type filter hook forward priority filter; policy accept;
      	iifname "wg0" tcp flags & (syn | rst) == syn tcp option maxseg size set rt mtu
      	oifname "wg0" tcp flags & (syn | rst) == syn tcp option maxseg size set rt mtu
      	iifname "wg0" ip saddr { 10.100.0.2 } accept
      	iifname "wg0" ip6 saddr { fd00::2 } accept
      	oifname "wg0" ct state established,related accept
      	iifname "wg0" counter drop
      	oifname "wg0" counter drop
      }
      chain postrouting {
      	type nat hook postrouting priority srcnat; policy accept;
      	ip saddr { 10.100.0.2 } oifname != "wg0" masquerade
      	ip6 saddr { fd00::2 } oifname != "wg0" masquerade
      }
    '';
  };
  networking.wg-quick.interfaces.wg0 = {
    address = [ "10.100.0.1/24" "fd00::1/64" ];
    listenPort = 51820;
    mtu = 1420;
    privateKeyFile = "/etc/wireguard/wg0.key";
    peers = [
      {
        publicKey = "VyPEw0XLDV3rGkX5KLA+RY8QE4ZC4QQ/Z1YYv5V3ZiI=";
        allowedIPs = [ "10.100.0.2/32" "fd00::2/128" ];
      }
    ];
  };
}
