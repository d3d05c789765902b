"""What scenarios share: one snapshot of the tailnet's state, "the homelab is back", journal marks.

    before = tailnet_snapshot(lab)
    mark = lab.edge.mark()                 # journal lines from here on: lab.edge.since(mark)
    lab.replace_edge()
    home_ping = homelab_back(lab)          # online, direct both ways; the ping's output
    after = tailnet_snapshot(lab)
    assert after.same_tailnet(before)

tests/lab/README.md says how a scenario is written with them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from support.lab.shell import wait_for

if TYPE_CHECKING:
    from support.lab.lab import Lab


@dataclass(frozen=True)
class TailnetSnapshot:
    """What must outlive a droplet: Headscale's identity and nodes, who minted keys, the
    homelab's own key and address, and the edge's ssh host key."""

    noise_key: str
    nodes: dict[str, tuple[Any, ...]]  # name -> (id, user, machine key, node key, *addresses)
    keys: dict[str, int]  # pre-auth keys ever minted, per Headscale user
    home_key: str
    home_address: str
    host_key: str

    @property
    def edge_nodes(self) -> list[str]:
        """The edge's own node names (one, unless it registered twice as <name>-1)."""
        return sorted(name for name, node in self.nodes.items() if node[1] == "edge")

    @property
    def user_nodes(self) -> dict[str, tuple[Any, ...]]:
        """Every node but the edge's own."""
        return {name: node for name, node in self.nodes.items() if node[1] != "edge"}

    def same_tailnet(self, other: TailnetSnapshot) -> bool:
        """Same noise key, nodes and keys minted: nothing was re-created or re-registered."""
        return (self.noise_key, self.nodes, self.keys) == (
            other.noise_key,
            other.nodes,
            other.keys,
        )


def tailnet_snapshot(lab: Lab) -> TailnetSnapshot:
    nodes = {
        node["name"]: (
            node["id"],
            node["user"]["name"],
            node["machine_key"],
            node["node_key"],
            *node["ip_addresses"],
        )
        for node in lab.edge.nodes()
    }
    keys: dict[str, int] = {}
    listed = lab.edge.headscale("preauthkeys", "list", "-o", "json").stdout
    for key in json.loads(listed) or []:
        keys[key["user"]["name"]] = keys.get(key["user"]["name"], 0) + 1
    home = lab.home.node.status()["Self"]
    return TailnetSnapshot(
        noise_key=lab.edge.noise_key_sha256(),
        nodes=nodes,
        keys=keys,
        home_key=home["PublicKey"],
        home_address=home["TailscaleIPs"][0],
        host_key=lab.edge.host_key_fingerprint(),
    )


def homelab_back(lab: Lab, timeout: float = 60) -> str:
    """The homelab sees the edge online and the path is direct both ways; the homelab's
    `tailscale ping` of the edge ("pong from ... via <address>:41641")."""
    wait_for(
        "the homelab sees the edge online",
        lambda: lab.home.node.peer(lab.config.name).get("Online"),
        timeout,
    )
    lab.edge.node.wait_direct("homelab", timeout=timeout)
    lab.home.node.wait_direct(lab.config.name, timeout=timeout)
    return lab.home.node.ping(lab.config.name)
