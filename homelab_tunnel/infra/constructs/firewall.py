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

from homelab_tunnel.config.ports import EDGE_PORTS

ANYWHERE = ["0.0.0.0/0", "::/0"]
# Forwarded ports are IPv4: the edge DNATs them to the upstream's tailnet IPv4.
ANY_IPV4 = ["0.0.0.0/0"]

# (protocol, port range, why). Every port the edge needs from the internet and
# nothing else: closing UDP 41641 or 3478 silently pushes peers onto a relay.
PUBLIC_INBOUND: tuple[tuple[str, str | None, str], ...] = (
    *((protocol, str(port), why) for protocol, port, why in EDGE_PORTS),
    ("icmp", None, "ping and path MTU discovery"),
)


class EdgeFirewall(Construct):
    """Inbound: the public ports above, SSH only from `ssh_allowed_cidrs`, and the
    `forwarded` (protocol, port or range) pairs of `[[ports]]` from any IPv4 address.

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
        forwarded: list[tuple[str, str]],
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
        inbound += [
            FirewallInboundRule(protocol=protocol, port_range=ports, source_addresses=ANY_IPV4)
            for protocol, ports in forwarded
        ]
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
