"""Reserved addresses: the public identity of the edge, independent of the droplet."""

from __future__ import annotations

from cdktf import Token
from cdktf_cdktf_provider_digitalocean.droplet import Droplet
from cdktf_cdktf_provider_digitalocean.reserved_ip import ReservedIp
from cdktf_cdktf_provider_digitalocean.reserved_ip_assignment import ReservedIpAssignment
from cdktf_cdktf_provider_digitalocean.reserved_ipv6 import ReservedIpv6
from cdktf_cdktf_provider_digitalocean.reserved_ipv6_assignment import ReservedIpv6Assignment
from constructs import Construct


class EdgeAddresses(Construct):
    """A reserved IPv4 (and optionally IPv6) created in the region, unassigned.

    They exist before the droplet so DNS can point at them first; `assign_to`
    binds them once the droplet exists. Replacing the droplet then only
    re-creates the assignment, never the address.
    """

    def __init__(self, scope: Construct, id_: str, *, region: str, ipv6: bool) -> None:
        super().__init__(scope, id_)
        self.ipv4 = ReservedIp(self, "ipv4", region=region)
        self.ipv4.override_logical_id("edge")
        self.ipv6: ReservedIpv6 | None = None
        if ipv6:
            self.ipv6 = ReservedIpv6(self, "ipv6", region_slug=region)
            self.ipv6.override_logical_id("edge")

    @property
    def ipv4_address(self) -> str:
        return self.ipv4.ip_address

    @property
    def ipv6_address(self) -> str | None:
        return self.ipv6.ip if self.ipv6 is not None else None

    def assign_to(self, droplet: Droplet) -> None:
        droplet_id = Token.as_number(droplet.id)
        assignment = ReservedIpAssignment(
            self, "ipv4-assignment", ip_address=self.ipv4.ip_address, droplet_id=droplet_id
        )
        assignment.override_logical_id("edge")
        if self.ipv6 is not None:
            assignment6 = ReservedIpv6Assignment(
                self, "ipv6-assignment", ip=self.ipv6.ip, droplet_id=droplet_id
            )
            assignment6.override_logical_id("edge")
