"""The config: value types (values), the tree (model), reading and errors (load)."""

from homelab_tunnel.config.load import format_errors, load_config, parse_config
from homelab_tunnel.config.model import (
    Backend,
    BackupConfig,
    BasicLogin,
    DnsConfig,
    ForwardAuth,
    HeadscaleConfig,
    HomelabConfig,
    LocalBackend,
    MetricsConfig,
    PortForward,
    Site,
    SiteAuth,
    SpacesBackend,
    TlsConfig,
    TunnelConfig,
    VolumeConfig,
)
from homelab_tunnel.config.values import EDGE_USER, REGIONS

__all__ = [
    "EDGE_USER",
    "REGIONS",
    "Backend",
    "BackupConfig",
    "BasicLogin",
    "DnsConfig",
    "ForwardAuth",
    "HeadscaleConfig",
    "HomelabConfig",
    "LocalBackend",
    "MetricsConfig",
    "PortForward",
    "Site",
    "SiteAuth",
    "SpacesBackend",
    "TlsConfig",
    "TunnelConfig",
    "VolumeConfig",
    "format_errors",
    "load_config",
    "parse_config",
]
