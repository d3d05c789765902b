"""cdktf constructs, one concern each. The stack wires them together.

Every resource gets an explicit, short logical id so Terraform addresses read
like `digitalocean_droplet.edge` and stay stable when code moves around:
renaming one would replace the real resource.
"""

from homelab_tunnel.node_runtime import use_bundled_node

use_bundled_node()
