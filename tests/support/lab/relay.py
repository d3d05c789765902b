"""A public-style DERP relay somewhere else on the internet, for bench/lab.py's case (c).

Tailscale's own derper in a box of its own, its egress rate-limited with tbf
like an overloaded relay fleet, and Headscale switched to it: the embedded
DERP off, this relay the only region. That is the seed's slow situation,
which the product avoids by default (derp.urls empty, the edge its own relay).
"""

from __future__ import annotations

import json

from homelab_tunnel.render.user_data import CONF
from support.binaries import binary, why_missing
from support.lab.addresses import RELAY, RELAY_NAME
from support.lab.lab import Lab
from support.lab.pebble import server_certificate
from support.lab.probes import curl
from support.lab.requirements import LabUnavailable
from support.lab.shell import wait_for

REGION = 900
DERP_MAP = f"""\
regions:
  {REGION}:
    regionid: {REGION}
    regioncode: public
    regionname: public-style relay
    nodes:
      - name: {REGION}a
        regionid: {REGION}
        hostname: {RELAY_NAME}
        ipv4: {RELAY.address}
        stunport: 3478
        derpport: 443
"""
DERP_MAP_PATH = "/etc/headscale/public-derp.yaml"


class PublicRelay:
    def __init__(self, lab: Lab, rate: str) -> None:
        self.lab = lab
        self.rate = rate

    def start(self) -> None:
        derper = binary("tailscale", "cmd/derper")
        if derper is None:
            raise LabUnavailable(why_missing("tailscale"))
        lab = self.lab
        box = lab.internet_box("relay", RELAY, {"derper": derper})
        certs = lab.directory / "relay-certs"
        certs.mkdir()
        ca, ca_key = lab.pebble.listener_ca, lab.pebble.listener_ca_key
        server_certificate(ca, ca_key, RELAY_NAME, RELAY.address, certs / RELAY_NAME)
        box.spawn(
            "derper",
            ["derper", "-hostname", RELAY_NAME, "-certmode", "manual", "-certdir", certs,
             "-a", ":443", "-http-port", "-1", "-stun-port", "3478",
             "-c", "/var/lib/derper/derper.key"],
        )  # fmt: skip
        box.run(["tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", self.rate,
                 "burst", "32kbit", "latency", "400ms"])  # fmt: skip
        url = f"https://{RELAY_NAME}/"
        wait_for(
            "derper", lambda: curl(lab.visitor, url, "-f", roots=lab.roots).returncode == 0, 20
        )


def use_only_public_relay(lab: Lab) -> None:
    """Headscale with the embedded DERP off and the public-style relay as its only region."""
    edge = lab.edge
    rendered = edge.box.path(f"{CONF}/headscale.yaml").read_text()
    assert rendered.count("    enabled: true\n") == 1 and rendered.count("  paths: []\n") == 1
    changed = rendered.replace("    enabled: true\n", "    enabled: false\n").replace(
        "  paths: []\n", f"  paths: [{DERP_MAP_PATH}]\n"
    )
    edge.box.write(DERP_MAP_PATH, DERP_MAP)
    edge.box.write(f"{CONF}/headscale.yaml", changed)
    edge.start_headscale()
    for node in (edge.node, lab.home.node):
        wait_for(
            f"{node.box.role}: the public-style relay as its only region",
            lambda n=node: (
                list(json.loads(n.cli("debug", "derp-map").stdout)["Regions"]) == [str(REGION)]
            ),
            60,
            0.5,
        )
