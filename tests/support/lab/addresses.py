"""The lab's address plan: documentation ranges only (RFC 5737), nothing else is ever routed.

The shape copies DigitalOcean's: DNS names point at the reserved IP, which is
on no interface; the internet router DNATs it to the droplet's anchor address
(DigitalOcean's 10.x anchor, here 198.51.100.0/28) and SNATs the anchor back to
it on the way out. The droplet's own public address sits beside the anchor on
eth0 and is the default source.
"""

from __future__ import annotations

from dataclasses import dataclass

# Every address of the lab is inside these; the router counts and drops anything else.
LAB_NETWORKS = ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
RESERVED_IP = "192.0.2.10"


@dataclass(frozen=True)
class Droplet:
    """One droplet's addresses: its own public one and the anchor behind the reserved IP."""

    own: str
    anchor: str
    own_gateway: str = "203.0.113.1"
    anchor_gateway: str = "198.51.100.1"
    own_prefix: int = 28
    anchor_prefix: int = 28
    anchor_network: str = "198.51.100.0/28"


def droplet(number: int) -> Droplet:
    """The `number`th droplet of a run; a replaced droplet gets new addresses of its own
    (the reserved IP moves to it)."""
    if not 1 <= number <= 12:
        raise ValueError(f"droplet {number}: the lab has addresses for 12")
    return Droplet(own=f"203.0.113.{number + 1}", anchor=f"198.51.100.{number + 1}")


FIRST_DROPLET = droplet(1)
REPLACEMENT_DROPLET = droplet(2)


@dataclass(frozen=True)
class Host:
    """A box on the internet: its own /28 on a veth to the router."""

    address: str
    gateway: str
    prefix: int = 28


VISITOR = Host("203.0.113.34", "203.0.113.33")
HOME_ROUTER_WAN = Host("203.0.113.18", "203.0.113.17")
OLD_CLIENT = Host("203.0.113.50", "203.0.113.49")
ACME = Host("192.0.2.50", "192.0.2.49")
# bench/lab.py: a public-style DERP relay somewhere else on the internet.
RELAY = Host("192.0.2.66", "192.0.2.65")
# The backup bucket's S3 (moto's server), answering as <region>.digitaloceanspaces.com.
STORE = Host("192.0.2.82", "192.0.2.81")
# The package mirror (tests/support/mirror/): the hosts bootstrap installs from.
MIRROR = Host("192.0.2.98", "192.0.2.97")
# A machine that installs from the mirror and reaches nothing else (tests/mirror).
INSTALLER = Host("203.0.113.114", "203.0.113.113")
# One more machine on the tailnet (a laptop on the internet, its own user).
LAPTOP = Host("203.0.113.66", "203.0.113.65")
# The operator's machine, the one address a config's ssh_allowed_cidrs lets in.
OPERATOR = Host("203.0.113.82", "203.0.113.81")
# A visitor from elsewhere, outside a site's allow_cidrs.
STRANGER = Host("203.0.113.98", "203.0.113.97")
# A second machine on the tailnet behind a forwarded port, joining after the config names it.
GAMEBOX = Host("203.0.113.130", "203.0.113.129")

# Behind the home router's masquerade.
HOME_LAN = Host("198.51.100.66", "198.51.100.65", prefix=26)

ACME_NAME = "acme.lab.example"
RELAY_NAME = "derp.lab.example"
