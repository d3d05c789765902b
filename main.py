"""cdktf entry point (`cdktf synth|diff|deploy`): wires config to the EdgeStack.

The config file comes from HOMELAB_TUNNEL_CONFIG (default: the bundled example).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from cdktf import App

from homelab_tunnel.config import load_config
from homelab_tunnel.errors import InputError
from homelab_tunnel.stacks.app import add_edge_stack

DEFAULT_CONFIG = "examples/homelab-tunnel.toml"


def main() -> None:
    path = Path(os.environ.get("HOMELAB_TUNNEL_CONFIG", DEFAULT_CONFIG))
    try:
        config = load_config(path)
    except InputError as exc:
        print("\n".join(exc.lines()), file=sys.stderr)
        sys.exit(2)
    app = App()
    add_edge_stack(app, config, Path(app.outdir))
    app.synth()


if __name__ == "__main__":
    main()
