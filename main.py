"""cdktf entry point (`cdktf synth|diff|deploy`): wires config to the EdgeStack.

The config file comes from HOMELAB_TUNNEL_CONFIG (default: the bundled
example). It is validated before cdktf is imported, so a typo is reported in a
fraction of a second instead of after jsii has started Node.js.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from homelab_tunnel.config import load_config
from homelab_tunnel.errors import InputError
from homelab_tunnel.infra.state import check_state_location
from homelab_tunnel.payload import checked_user_data_size

DEFAULT_CONFIG = "examples/homelab-tunnel.toml"


def main() -> None:
    # Empty counts as unset: the Makefile exports the variable even when it is not given.
    path = Path(os.environ.get("HOMELAB_TUNNEL_CONFIG") or DEFAULT_CONFIG)
    try:
        config = load_config(path)
        checked_user_data_size(config, str(path))
        check_state_location(config, path, Path.cwd())
    except InputError as exc:
        print("\n".join(exc.lines()), file=sys.stderr)
        sys.exit(2)
    from homelab_tunnel.infra.synth import synth_for_cdktf_cli

    synth_for_cdktf_cli(config, path)


if __name__ == "__main__":
    main()
