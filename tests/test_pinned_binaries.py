"""The programs the tests build are the releases the edge installs."""

from __future__ import annotations

import pytest
from support.binaries import build_binaries

from homelab_tunnel.edge.versions import HEADSCALE_VERSION, LITESTREAM_VERSION


@pytest.mark.parametrize(
    ("name", "version"), [("headscale", HEADSCALE_VERSION), ("litestream", LITESTREAM_VERSION)]
)
def test_tools_binaries_toml_builds_what_the_edge_installs(name: str, version: str) -> None:
    """Else the lab and the restore tests would quietly run another release."""
    assert build_binaries.programs()[name].version == f"v{version}"
