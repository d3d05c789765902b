"""cdktf constructs, one concern each. The stack wires them together.

Every resource gets an explicit, short logical id so Terraform addresses read
like `digitalocean_droplet.edge` and stay stable when code moves around:
renaming one would replace the real resource. Constructs take keyword-only
primitives (names, sizes, references), never the config tree.
"""
