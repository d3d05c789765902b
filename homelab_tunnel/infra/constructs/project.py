"""A DigitalOcean project so the edge's resources show up together."""

from __future__ import annotations

from cdktf_cdktf_provider_digitalocean.project import Project
from constructs import Construct


class EdgeProject(Construct):
    def __init__(self, scope: Construct, id_: str, *, name: str, resources: list[str]) -> None:
        super().__init__(scope, id_)
        self.project = Project(
            self,
            "project",
            name=name,
            description="homelab-tunnel edge: Headscale, Caddy and Tailscale in front of a homelab",
            purpose="Service or API",
            environment="Production",
            resources=resources,
        )
        self.project.override_logical_id("edge")
