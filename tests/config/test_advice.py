"""Warnings on a valid config: SSH open to the world is allowed, and said out loud."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.config import config_with, write_config
from typer.testing import CliRunner

from homelab_tunnel.cli import app
from homelab_tunnel.config.advice import config_warnings

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})

# (ssh_allowed_cidrs, the warning's text, or None for no warning)
SSH_SOURCES: list[tuple[list[str], str | None]] = [
    (["0.0.0.0/0"], "0.0.0.0/0 opens SSH (TCP 22) to the whole IPv4 internet"),
    (["::/0"], "::/0 opens SSH (TCP 22) to the whole IPv6 internet"),
    (["0.0.0.0/1", "128.0.0.0/1"], "0.0.0.0/1, 128.0.0.0/1 opens SSH (TCP 22) to the whole IPv4"),
    (["0.0.0.0/1"], "opens SSH (TCP 22) to half or more of the IPv4 internet"),
    (["203.0.113.7/32", "::/0"], "::/0 opens SSH (TCP 22) to the whole IPv6 internet"),
    (["203.0.113.7/32"], None),
    (["10.0.0.0/8", "2001:db8::/32"], None),
    (["0.0.0.0/2", "64.0.0.0/3"], None),  # three eighths: wide, but not the world
    ([], None),
]


@pytest.mark.parametrize(("cidrs", "expected"), SSH_SOURCES)
def test_ssh_open_to_the_world_is_a_warning(cidrs: list[str], expected: str | None) -> None:
    warnings = config_warnings(config_with(ssh_allowed_cidrs=cidrs))
    if expected is None:
        assert warnings == []
    else:
        assert [w.subject for w in warnings] == ["ssh_allowed_cidrs"]
        assert expected in warnings[0].message


@pytest.mark.parametrize(
    ("cidrs", "expected"),
    [
        (
            ["203.0.113.7/32", "203.0.113.0/24"],
            [
                (
                    "ssh_allowed_cidrs.0",
                    "203.0.113.7/32 is inside ssh_allowed_cidrs.1 (203.0.113.0/24)",
                )
            ],
        ),
        (
            ["2001:db8::/32", "2001:db8:1::/48", "198.51.100.0/24"],
            [("ssh_allowed_cidrs.1", "2001:db8:1::/48 is inside ssh_allowed_cidrs.0")],
        ),
        (["203.0.113.7/32", "203.0.113.8/32"], []),  # neighbours, not nested
        (["10.0.0.0/8", "::ffff:10.0.0.1/128"], []),  # another family
    ],
)
def test_a_network_inside_another_listed_one_is_a_warning(
    cidrs: list[str], expected: list[tuple[str, str]]
) -> None:
    warnings = config_warnings(config_with(ssh_allowed_cidrs=cidrs))
    assert [w.subject for w in warnings] == [subject for subject, _ in expected]
    for found, (_, text) in zip(warnings, expected, strict=True):
        assert found.message.startswith(text)


def test_check_prints_the_warning_and_still_passes(tmp_path: Path) -> None:
    path = write_config(tmp_path, ssh_allowed_cidrs=["0.0.0.0/0", "::/0"])
    result = runner.invoke(app, ["check", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert (
        "warning: ssh_allowed_cidrs: 0.0.0.0/0 opens SSH (TCP 22) to the whole IPv4 internet; "
        "list only the addresses you connect from" in result.stdout
    )
    assert "::/0 opens SSH (TCP 22) to the whole IPv6 internet" in result.stdout
    assert "0 problem(s), 2 warning(s)" in result.stdout


def test_synth_prints_the_warning_too(tmp_path: Path) -> None:
    path = write_config(tmp_path, ssh_allowed_cidrs=["0.0.0.0/0"])
    result = runner.invoke(app, ["synth", "--config", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "warning: ssh_allowed_cidrs: 0.0.0.0/0 opens SSH" in result.stdout
