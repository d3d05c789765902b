"""cdktf stacks: composition and synthesis. The only other place cdktf is imported."""

from homelab_tunnel.node_runtime import use_bundled_node

use_bundled_node()
