"""The lab: the edge, the homelab and the internet between them, in network namespaces.

`Lab` (lab.py) composes one concern per module: addresses, boxes (namespaces),
network (router, NAT, UDP block), pebble (the ACME CA), deploy (user_data and
units into the edge box), edge, home, nodes (tailscaled), shims (ssh, sudo,
journalctl), probes (box_probes.py run in boxes), processes (what to tear
down). `python -m support.lab` (from tests/) brings one up by hand.
"""
