"""Pinned versions of what the edge runs, and which Tailscale clients Headscale accepts.

Standard library only: the edge's health agent judges client versions with it.

The failure this module exists for: an edge running Tailscale 1.36 was rejected
by Headscale ("unsupported client version") and every site fell back to a
distant relay. `check` refuses such a config; doctor finds such a client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HEADSCALE_VERSION = "0.29.2"
"""The Headscale release the edge installs unless the config pins another."""

LITESTREAM_VERSION = "0.5.18"
"""The Litestream release that streams Headscale's database to the backup bucket."""


@dataclass(frozen=True, order=True)
class Version:
    """MAJOR.MINOR.PATCH; a missing patch ("1.80", as Headscale logs it) is 0."""

    major: int
    minor: int
    patch: int = 0

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    @property
    def series(self) -> str:
        """MAJOR.MINOR, the unit Headscale upgrades and Tailscale capabilities move in."""
        return f"{self.major}.{self.minor}"

    @property
    def unstable(self) -> bool:
        """Tailscale builds with an odd minor (1.91.x) are its unstable track."""
        return self.minor % 2 == 1


# "v1.80", "1.80.0", "1.36.0-t1234abcd-g5678ef90", "1.91.0-dev20260101-t0123": the
# leading MAJOR.MINOR[.PATCH] is the version, anything after '-' or '+' is build info.
_VERSION = re.compile(r"v?([0-9]+)\.([0-9]+)(?:\.([0-9]+))?(?:[-+][!-~]*)?")


def parse_version(text: str) -> Version:
    """Parse a Headscale or Tailscale version; `ValueError` names what was expected."""
    match = _VERSION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a version (expected MAJOR.MINOR[.PATCH], e.g. 1.80.0)")
    major, minor, patch = match.groups()
    return Version(int(major), int(minor), int(patch or 0))


# ---------------------------------------------------------------------------
# Headscale -> minimum Tailscale client
# ---------------------------------------------------------------------------

# juanfont/headscale, `MinSupportedCapabilityVersion` translated through
# `capVerToTailscaleVer`: hscontrol/capver/capver.go in 0.26.x (88) and 0.27.x (90),
# hscontrol/capver/capver_generated.go from 0.28.0 on (106, then 113 in 0.29.x).
# Headscale compares capability versions; a client of this Tailscale release or
# newer has at least that capability version. Add a row with every Headscale minor
# release the edge may run; `check` refuses versions missing here.
MIN_TAILSCALE: dict[str, Version] = {
    "0.26": Version(1, 62, 0),
    "0.27": Version(1, 64, 0),
    "0.28": Version(1, 74, 0),
    "0.29": Version(1, 80, 0),
}


# Tailscale release series -> capability version, as Headscale knows them
# (hscontrol/capver/capver_generated.go, `tailscaleToCapVer`, at v0.29.2). Headscale
# logs rejected clients by capability version, and by name only when its own map
# has the number ("unsupported client version:  (56)" on 0.26/0.27); this table
# names the client in both cases.
TAILSCALE_CAPVER: dict[str, int] = {
    "1.24": 32, "1.26": 32, "1.28": 32, "1.30": 41, "1.32": 46, "1.34": 51,
    "1.36": 56, "1.38": 58, "1.40": 61, "1.42": 62, "1.44": 63, "1.46": 65,
    "1.48": 68, "1.50": 74, "1.52": 79, "1.54": 79, "1.56": 82, "1.58": 85,
    "1.60": 87, "1.62": 88, "1.64": 90, "1.66": 95, "1.68": 97, "1.70": 102,
    "1.72": 104, "1.74": 106, "1.76": 106, "1.78": 109, "1.80": 113, "1.82": 115,
    "1.84": 116, "1.86": 123, "1.88": 125, "1.90": 130, "1.92": 131, "1.94": 131,
    "1.96": 133, "1.98": 138,
}  # fmt: skip


def tailscale_for_capver(capver: int) -> str | None:
    """The Tailscale series that speak `capver` ("1.74/1.76"), or None when unknown."""
    series = [name for name, number in TAILSCALE_CAPVER.items() if number == capver]
    return "/".join(series) or None


def min_tailscale(headscale_version: str) -> Version | None:
    """The oldest Tailscale client this Headscale accepts; None when the table lacks it."""
    return MIN_TAILSCALE.get(parse_version(headscale_version).series)


def client_supported(client: Version, minimum: Version) -> bool:
    """Whether Headscale accepts the client.

    Compared on MAJOR.MINOR only: Headscale checks the capability version, which
    changes with minor releases, so 1.80.0 and 1.80.4 are the same to it. An
    unstable build (1.79.x) sorts below the stable release it leads to and is
    refused, even if late builds of it may already carry the new capability.
    """
    return (client.major, client.minor) >= (minimum.major, minimum.minor)


def upgrade_problem(installed: str, target: str) -> str | None:
    """Why Headscale would refuse to start on `installed`'s database at `target`, or None.

    Headscale's database remembers the release that last used it and refuses a
    skipped minor release or a minor downgrade; patch changes within one minor
    are fine in either direction (hscontrol/db/versioncheck.go,
    `checkVersionUpgradePath`, enforced from 0.29.0 and the documented upgrade
    path before that).
    """
    old, new = parse_version(installed), parse_version(target)
    if old.major != new.major:
        return f"Headscale {old} -> {new} changes the major version; the database refuses it"
    step = new.minor - old.minor
    if step < 0:
        return (
            f"Headscale {old} -> {new} is a downgrade to an older minor release; "
            "the database refuses it (restore a backup made before the upgrade instead)"
        )
    if step > 1:
        between = [f"{old.major}.{minor}.x" for minor in range(old.minor + 1, new.minor)]
        stepping = " -> ".join([str(old), *between, str(new)])
        return (
            f"Headscale {old} -> {new} skips {step - 1} minor release(s); the database "
            f"refuses it. Upgrade one minor release at a time: {stepping}"
        )
    return None
