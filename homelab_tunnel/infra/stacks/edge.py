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
from homelab_tunnel.infra.backend import configure_backend
from homelab_tunnel.infra.constructs.addresses import EdgeAddresses
from homelab_tunnel.infra.constructs.backup import EdgeBackup
from homelab_tunnel.infra.constructs.channel import EdgeChannel, config_mac_expression
from homelab_tunnel.infra.constructs.dns import EdgeDns
from homelab_tunnel.infra.constructs.edge_secret import EdgeSecret
from homelab_tunnel.infra.constructs.firewall import EdgeFirewall
from homelab_tunnel.infra.constructs.host import EdgeHost
from homelab_tunnel.infra.constructs.monitoring import EdgeAlerts
from homelab_tunnel.infra.constructs.project import EdgeProject
from homelab_tunnel.infra.constructs.storage import EdgeStorage
from homelab_tunnel.infra.terraform_literal import terraform_literal
from homelab_tunnel.payload import EdgeConfigObject, SoftwareObject
from homelab_tunnel.render.secrets import (
    BACKUP_ACCESS_KEY,
    BACKUP_SECRET_KEY,
    CHANNEL_ACCESS_KEY,
    CHANNEL_SECRET_KEY,
    EDGE_SECRET,
    WEBHOOK_URL_CHARACTERS,
    WEBHOOK_URL_MAX_LENGTH,
    Secret,
)

# The webhook URL is a credential for most services (Slack, Discord): it comes
# from TF_VAR_health_webhook_url at plan time, never from the config file.
# Empty, or https and URL characters literal in health.env and the YAML around
# it, bounded so user_data's size is known before apply. Terraform's regex is
# RE2, where `$` (without the m flag) matches only at the very end, unlike
# Python's; a backslash (\z) would have to survive HCL's string escapes too.
WEBHOOK_URL_PATTERN = (
    f"^(https://[{WEBHOOK_URL_CHARACTERS}]{{1,{WEBHOOK_URL_MAX_LENGTH - len('https://')}}})?$"
)


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
        edge_config: EdgeConfigObject,
        software: SoftwareObject,
        local_state_path: str,
    ) -> None:
        super().__init__(scope, id_)
        DigitaloceanProvider(self, "digitalocean")
        configure_backend(self, config.backend, local_path=local_state_path)
        self.storage = EdgeStorage(
            self,
            "storage",
            name=config.volume_name,
            region=config.region,
            size_gb=config.volume.size_gb,
        )
        self.addresses = EdgeAddresses(
            self, "addresses", region=config.region, ipv6=config.reserved_ipv6
        )
        self.dns = EdgeDns(
            self,
            "dns",
            zone=config.dns.zone,
            create_zone=config.dns.create_zone,
            ttl=config.dns.ttl,
            caa_issuer=config.tls.caa_issuer,
            record_names=[config.record_name(domain) for domain in config.domains],
            ipv4=self.addresses.ipv4_address,
            ipv6=self.addresses.ipv6_address,
        )
        self.channel = EdgeChannel(
            self,
            "channel",
            name=config.name,
            bucket=config.channel_bucket,
            region=config.channel_region,
            software_key=software.key,
            software_base64=software.base64,
        )
        self.edge_secret = EdgeSecret(
            self, "edge-secret", name=config.name, bucket=self.channel.bucket.name
        )
        webhook = self._webhook_variable().string_value
        self.channel.publish(
            key=edge_config.key,
            body=terraform_literal(edge_config.body),
            mac=config_mac_expression(self.edge_secret.value, edge_config.sha256, webhook),
            webhook=webhook,
            after=list(self.dns.records),
        )
        self.backup = (
            EdgeBackup(
                self,
                "backup",
                name=config.name,
                bucket=config.backup_bucket,
                region=config.backup.region or config.region,
                retention_days=config.backup.retention_days,
            )
            if config.backup.enabled
            else None
        )
        self.host = self._host(config, user_data)
        self.addresses.assign_to(self.host.droplet)
        self.firewall = EdgeFirewall(
            self,
            "firewall",
            name=config.name,
            droplet=self.host.droplet,
            ssh_allowed_cidrs=config.ssh_allowed_cidrs,
            forwarded=[(forward.protocol, forward.port) for forward in config.ports],
        )
        self.alerts = (
            EdgeAlerts(
                self,
                "alerts",
                name=config.name,
                droplet=self.host.droplet,
                email=config.alert_email,
            )
            if config.alert_email
            else None
        )
        self.project = EdgeProject(
            self, "project", name=config.name, resources=self._project_resources()
        )
        self._outputs(config, edge_config)

    def _host(self, config: TunnelConfig, user_data: str) -> EdgeHost:
        """The droplet, held back until its addresses, records and config exist.

        Caddy's first ACME attempt on boot then finds DNS already pointing at
        the edge, and the first boot finds its software and config in the bucket.
        """
        ready_first: list[ITerraformDependable] = [
            self.addresses.ipv4,
            *self.dns.records,
            self.channel.software,
            self.channel.config,
        ]
        if self.addresses.ipv6 is not None:
            ready_first.append(self.addresses.ipv6)
        secrets: dict[Secret, str] = {
            CHANNEL_ACCESS_KEY: self.channel.key.access_key,
            CHANNEL_SECRET_KEY: self.channel.key.secret_key,
            EDGE_SECRET: self.edge_secret.value,
        }
        if self.backup is not None:
            # Filled at plan time from the scoped key; sensitive, never in the config.
            secrets[BACKUP_ACCESS_KEY] = self.backup.key.access_key
            secrets[BACKUP_SECRET_KEY] = self.backup.key.secret_key
        literal = terraform_literal(user_data)
        for secret, reference in secrets.items():
            literal = literal.replace(secret.placeholder, reference)
        return EdgeHost(
            self,
            "host",
            name=config.name,
            region=config.region,
            size=config.size,
            image=config.image,
            ssh_key_fingerprints=config.ssh_key_fingerprints(),
            ssh_key_names=config.ssh_key_names(),
            user_data=literal,
            volume=self.storage.volume,
            depends_on=ready_first,
        )

    def _webhook_variable(self) -> TerraformVariable:
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
            error_message=(
                "health_webhook_url must be empty or an https:// URL of at most "
                f"{WEBHOOK_URL_MAX_LENGTH} characters, without blanks, quotes, "
                "backslashes, '$' or backticks"
            ),
        )
        return webhook

    def _project_resources(self) -> list[str]:
        resources = [self.host.droplet.urn, self.storage.volume.urn, self.addresses.ipv4.urn]
        if self.addresses.ipv6 is not None:
            resources.append(self.addresses.ipv6.urn)
        if self.dns.domain is not None:
            resources.append(self.dns.domain.urn)
        return resources

    def _outputs(self, config: TunnelConfig, edge_config: EdgeConfigObject) -> None:
        ipv4 = self.addresses.ipv4_address
        outputs: list[tuple[str, object, str]] = [
            ("reserved_ip", ipv4, "public IPv4 of the edge; DNS points here"),
            (
                "droplet_ipv4",
                self.host.droplet.ipv4_address,
                "the droplet's own address (advertised by the embedded DERP relay)",
            ),
            (
                "site_urls",
                [f"https://{site.domain}" for site in config.sites],
                "the allowlisted sites served by the edge",
            ),
            ("headscale_url", config.headscale_url, "Headscale login server"),
            (
                "config_version",
                edge_config.version,
                "the config version written to the config bucket; doctor compares the edge's",
            ),
            ("config_bucket", self.channel.bucket.name, "the Spaces bucket of the edge's config"),
            (
                "headscale_version",
                config.headscale.version,
                "Headscale release on the edge; plan-summary names a change of it",
            ),
            (
                "ssh_command",
                f"ssh root@{ipv4}",
                "needs your address in ssh_allowed_cidrs; SSH is closed otherwise",
            ),
        ]
        if self.addresses.ipv6_address is not None:
            outputs.insert(
                1,
                (
                    "reserved_ipv6",
                    self.addresses.ipv6_address,
                    "public IPv6 of the edge; AAAA records point here",
                ),
            )
        if self.backup is not None:
            outputs.append(
                ("backup_bucket", self.backup.bucket.name, "the Spaces bucket holding the backups")
            )
        for name, value, description in outputs:
            TerraformOutput(self, name, value=value, description=description)
