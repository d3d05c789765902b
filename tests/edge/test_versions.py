"""Versions: parsing what Tailscale and Headscale print, and the Headscale -> client table."""

from __future__ import annotations

import pytest

from homelab_tunnel.edge.versions import (
    HEADSCALE_VERSION,
    MIN_TAILSCALE,
    Version,
    client_supported,
    min_tailscale,
    parse_version,
    tailscale_for_capver,
    upgrade_problem,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.80.0", Version(1, 80, 0)),
        ("v1.80", Version(1, 80, 0)),
        ("1.80", Version(1, 80, 0)),
        ("1.36.0-t1234abcd-g5678ef90", Version(1, 36, 0)),
        ("1.91.0-dev20260101-t0123abcd", Version(1, 91, 0)),
        (" 0.29.2\n", Version(0, 29, 2)),
    ],
)
def test_versions_parse_as_tailscale_and_headscale_print_them(text: str, expected: Version) -> None:
    assert parse_version(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "1", "latest", "1.x.0", "v", "1.80.0.1", "1..2", "0.28.1\nrm -rf /", "1.80.0-a b",
     "\u0661.80.0", "1.80.0;reboot"],
)  # fmt: skip
def test_non_versions_are_refused_with_the_expected_form(text: str) -> None:
    with pytest.raises(ValueError, match=r"MAJOR\.MINOR"):
        parse_version(text)


def test_a_missing_patch_equals_patch_zero() -> None:
    assert parse_version("1.80") == parse_version("1.80.0") < parse_version("1.80.1")


def test_odd_minor_is_the_unstable_track() -> None:
    assert parse_version("1.91.3").unstable
    assert not parse_version("1.90.3").unstable


def test_table_matches_headscale_capver_minimums() -> None:
    assert {series: str(version) for series, version in MIN_TAILSCALE.items()} == {
        "0.26": "1.62.0",
        "0.27": "1.64.0",
        "0.28": "1.74.0",
        "0.29": "1.80.0",
    }


def test_pinned_headscale_is_in_the_table() -> None:
    assert min_tailscale(HEADSCALE_VERSION) is not None


def test_minimum_is_found_for_any_patch_release() -> None:
    assert min_tailscale("0.29.0") == min_tailscale("v0.29.2") == Version(1, 80, 0)


def test_unknown_headscale_has_no_minimum() -> None:
    assert min_tailscale("0.30.0") is None
    assert min_tailscale("0.25.1") is None


@pytest.mark.parametrize(
    ("client", "supported"),
    [
        ("1.36.0", False),
        ("1.79.9", False),  # unstable builds before 1.80 are refused
        ("1.80.0", True),
        ("1.80", True),
        ("1.91.2", True),  # unstable, but newer than the minimum
        ("1.102.1", True),  # newer than Headscale's own capver map
        ("2.0.0", True),
    ],
)
def test_client_support_against_headscale_029(client: str, supported: bool) -> None:
    assert client_supported(parse_version(client), Version(1, 80, 0)) is supported


def test_capability_version_names_the_tailscale_series() -> None:
    assert tailscale_for_capver(56) == "1.36"
    assert tailscale_for_capver(106) == "1.74/1.76"
    assert tailscale_for_capver(57) is None


@pytest.mark.parametrize(
    ("installed", "target"),
    [("0.28.0", "0.29.2"), ("0.29.0", "0.29.2"), ("0.29.2", "0.29.1"), ("v0.28.1", "0.29.0")],
)
def test_one_minor_up_or_any_patch_change_is_allowed(installed: str, target: str) -> None:
    assert upgrade_problem(installed, target) is None


def test_skipping_a_minor_release_is_refused_with_the_path() -> None:
    problem = upgrade_problem("0.27.1", "0.29.2")
    assert problem is not None
    assert "skips 1 minor release" in problem
    assert "0.27.1 -> 0.28.x -> 0.29.2" in problem


def test_minor_downgrade_is_refused() -> None:
    problem = upgrade_problem("0.29.2", "0.28.0")
    assert problem is not None
    assert "downgrade" in problem


def test_major_change_is_refused() -> None:
    problem = upgrade_problem("0.29.2", "1.0.0")
    assert problem is not None
    assert "major" in problem
