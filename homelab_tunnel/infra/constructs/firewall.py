"""The cloud firewall in front of the droplet."""

from __future__ import annotations

from cdktf import Token
from cdktf_cdktf_provider_digitalocean.droplet import Droplet
from cdktf_cdktf_provider_digitalocean.firewall import (
    Firewall,
    FirewallInboundRule,
    FirewallOutboundRule,
)
from constructs import Construct

ANYWHERE = ["0.0.0.0/0", "::/0"]

# (protocol, port range, why). Every port the edge needs from the internet and
# nothing else: closing UDP 41641 or 3478 silently pushes peers onto a relay.
PUBLIC_INBOUND: tuple[tuple[str, str | None, str], ...] = (
    ("tcp", "80", "HTTP: ACME challenges, redirect to HTTPS, captive-portal probe"),
    ("tcp", "443", "HTTPS for the sites and Headscale"),
    ("udp", "443", "HTTP/3"),
    ("udp", "41641", "Tailscale direct WireGuard path"),
    ("udp", "3478", "STUN for the embedded DERP relay"),
    ("icmp", None, "ping and path MTU discovery"),
)


class EdgeFirewall(Construct):
    """Inbound: the public ports above, SSH only from `ssh_allowed_cidrs`.

    Outbound is open: a DigitalOcean firewall without outbound rules blocks
    package updates and the tailnet itself.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        name: str,
        droplet: Droplet,
        ssh_allowed_cidrs: list[str],
    ) -> None:
        super().__init__(scope, id_)
        inbound = [
            FirewallInboundRule(protocol=protocol, port_range=ports, source_addresses=ANYWHERE)
            for protocol, ports, _why in PUBLIC_INBOUND
        ]
        if ssh_allowed_cidrs:
            inbound.append(
                FirewallInboundRule(
                    protocol="tcp", port_range="22", source_addresses=ssh_allowed_cidrs
                )
            )
        outbound = [
            FirewallOutboundRule(
                protocol=protocol,
                port_range=None if protocol == "icmp" else "1-65535",
                destination_addresses=ANYWHERE,
            )
            for protocol in ("tcp", "udp", "icmp")
        ]
        self.firewall = Firewall(
            self,
            "firewall",
            name=name,
            droplet_ids=[Token.as_number(droplet.id)],
            inbound_rule=inbound,
            outbound_rule=outbound,
        )
        self.firewall.override_logical_id("edge")
