"""`make docs-reference`: write the generated reference pages of the docs site.

Each page is made from the code it describes (the config model, the CLI); a
test regenerates them and compares, so a change to either that is not followed
by this command fails `make test`. A page is replaced whole or not at all.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def pages() -> dict[str, Callable[[], str]]:
    """Each generated page (relative to the repository) and what writes it."""
    from homelab_tunnel.cli.reference import cli_reference
    from homelab_tunnel.config.reference import config_reference

    return {
        "docs/reference/config.md": config_reference,
        "docs/reference/cli.md": cli_reference,
    }


def main() -> int:
    texts = {name: make() for name, make in pages().items()}  # all made before any is written
    for name, text in texts.items():
        path = ROOT / name
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.tmp")
        partial.write_text(text)
        partial.replace(path)
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
