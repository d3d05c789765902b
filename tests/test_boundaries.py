"""Module boundaries the design depends on: cdktf stays inside constructs/ and stacks/."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import ROOT


@pytest.mark.parametrize(
    "module",
    [
        "homelab_tunnel.plan_summary",
        "homelab_tunnel.plan_report",
        "homelab_tunnel.preflight",
        "homelab_tunnel.do_api",
        "homelab_tunnel.cli",
    ],
)
def test_module_loads_without_cdktf(module: str) -> None:
    probe = (
        f"import sys, {module}; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('cdktf', 'constructs', 'jsii', 'cdktf_cdktf_provider_digitalocean')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "[]"
