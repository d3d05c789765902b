"""Everything cdktf: constructs, the stack, synthesis. No other package imports cdktf.

jsii starts Node.js for cdktf, so the bundled Node is chosen before any
cdktf import below this package.
"""

from homelab_tunnel.infra.jsii_node import use_bundled_node

use_bundled_node()
