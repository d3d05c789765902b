"""EdgeStack: composes the constructs and does all the wiring between them."""

from __future__ import annotations

from cdktf import (
    Fn,
    ITerraformDependable,
    TerraformOutput,
    TerraformStack,
    TerraformVariable,
)
from cdktf_cdktf_provider_digitalocean.provider import DigitaloceanProvider
from constructs import Construct

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.constructs.addresses import EdgeAddresses
from homelab_tunnel.constructs.dns import EdgeDns
from homelab_tunnel.constructs.firewall import EdgeFirewall
from homelab_tunnel.constructs.host import EdgeHost
from homelab_tunnel.constructs.monitoring import EdgeAlerts
from homelab_tunnel.constructs.project import EdgeProject
from homelab_tunnel.constructs.storage import EdgeStorage
from homelab_tunnel.render.cloud_init import WEBHOOK_URL_PLACEHOLDER
from homelab_tunnel.stacks.backend import configure_backend
from homelab_tunnel.stacks.user_data import terraform_literal

# The webhook URL is a credential for most services (Slack, Discord): it comes
# from TF_VAR_health_webhook_url at plan time, never from the config file.
# Printable ASCII without spaces: safe in the env file and the YAML around it.
# No backslashes, which Terraform's string syntax would read as escapes.
WEBHOOK_URL_PATTERN = "^(https://[!-~]+)?$"


class EdgeStack(TerraformStack):
    """The whole edge for one config: addresses and DNS first, then the droplet.

    The DigitalOcean token comes from DIGITALOCEAN_TOKEN at plan time; nothing
    secret is part of the synthesized JSON.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: TunnelConfig,
        user_data: str,
        local_state_path: str,
    ) -> None:
        super().__init__(scope, id_)
        DigitaloceanProvider(self, "digitalocean")
        configure_backend(self, config.backend, local_path=local_state_path)

        self.storage = EdgeStorage(
            self, "storage", name=config.volume_name, region=config.region, volume=config.volume
        )
        self.addresses = EdgeAddresses(
            self, "addresses", region=config.region, ipv6=config.reserved_ipv6
        )
        self.dns = EdgeDns(
            self,
            "dns",
            dns=config.dns,
            record_names=[config.record_name(domain) for domain in config.domains],
            ipv4=self.addresses.ipv4_address,
            ipv6=self.addresses.ipv6_address,
        )
        # Addresses and records exist before the droplet boots, so Caddy's
        # first ACME attempt finds DNS already pointing at the edge.
        ready_first: list[ITerraformDependable] = [self.addresses.ipv4, *self.dns.records]
        if self.addresses.ipv6 is not None:
            ready_first.append(self.addresses.ipv6)
        webhook = TerraformVariable(
            self,
            "health_webhook_url",
            type="string",
            default="",
            nullable=False,
            sensitive=True,
            description="https URL the edge's health timer posts problems to; empty: none",
        )
        webhook.add_validation(
            condition=Fn.can(Fn.regex(WEBHOOK_URL_PATTERN, webhook.string_value)),
            error_message="health_webhook_url must be empty or an https:// URL",
        )
        self.host = EdgeHost(
            self,
            "host",
            config=config,
            user_data=terraform_literal(user_data).replace(
                WEBHOOK_URL_PLACEHOLDER, webhook.string_value
            ),
            volume=self.storage.volume,
            depends_on=ready_first,
        )
        droplet = self.host.droplet
        self.addresses.assign_to(droplet)
        self.firewall = EdgeFirewall(
            self,
            "firewall",
            name=config.name,
            droplet=droplet,
            ssh_allowed_cidrs=config.ssh_allowed_cidrs,
        )
        self.alerts = (
            EdgeAlerts(self, "alerts", name=config.name, droplet=droplet, email=config.alert_email)
            if config.alert_email
            else None
        )

        project_resources = [droplet.urn, self.storage.volume.urn, self.addresses.ipv4.urn]
        if self.addresses.ipv6 is not None:
            project_resources.append(self.addresses.ipv6.urn)
        if self.dns.domain is not None:
            project_resources.append(self.dns.domain.urn)
        self.project = EdgeProject(self, "project", name=config.name, resources=project_resources)

        self._outputs(config)

    def _outputs(self, config: TunnelConfig) -> None:
        ipv4 = self.addresses.ipv4_address
        TerraformOutput(
            self, "reserved_ip", value=ipv4, description="public IPv4 of the edge; DNS points here"
        )
        if self.addresses.ipv6_address is not None:
            TerraformOutput(
                self,
                "reserved_ipv6",
                value=self.addresses.ipv6_address,
                description="public IPv6 of the edge; AAAA records point here",
            )
        TerraformOutput(
            self,
            "droplet_ipv4",
            value=self.host.droplet.ipv4_address,
            description="the droplet's own address (advertised by the embedded DERP relay)",
        )
        TerraformOutput(
            self,
            "site_urls",
            value=[f"https://{site.domain}" for site in config.sites],
            description="the allowlisted sites served by the edge",
        )
        TerraformOutput(
            self, "headscale_url", value=config.headscale_url, description="Headscale login server"
        )
        TerraformOutput(
            self,
            "ssh_command",
            value=f"ssh root@{ipv4}",
            description="needs your address in ssh_allowed_cidrs; SSH is closed otherwise",
        )
