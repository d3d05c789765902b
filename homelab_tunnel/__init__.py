"""homelab-tunnel: one config file to a DigitalOcean edge VM for a homelab.

The folders are the architecture: config.py validates once; render/ turns the
config into the edge's files; infra/ (the only cdktf) into Terraform JSON;
edge/ runs on the droplet; tailnet/, plan/ and digitalocean/ check things
from the operator's side; cli/ is the thin layer over all of them.
"""
