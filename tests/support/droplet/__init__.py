"""The droplet box: a booted Debian machine that gets user_data exactly as a droplet does.

rootfs (the cached Debian 13 tree), seed (what the image and NoCloud add per
droplet), volume (a loop device as the state volume), machine (systemd-nspawn
--boot on a copy-on-write overlay), metadata (DigitalOcean's metadata service)
and firewall (the cloud firewall, generated from the synthesized stack),
composed by cloud.py: `Cloud().up()`, then `create_droplet(user_data, ...)`.
"""
