"""homelab-tunnel: one config file to a DigitalOcean edge VM for a homelab."""

__version__ = "0.1.0"
