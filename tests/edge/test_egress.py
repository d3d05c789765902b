"""reserved-ip-egress.sh against stand-ins for `ip` and the metadata service.

The lab runs the real script against the real kernel; these pin what it must
do on any run, including a second one in the same boot.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from support.config import ROOT

SCRIPT = ROOT / "homelab_tunnel" / "edge" / "files" / "reserved-ip-egress.sh"

# Rules live in a file. `ip rule show` prints them and then keeps writing, as a
# long listing does: a reader that stops early (grep -q) kills it with SIGPIPE.
FAKE_IP = """#!/bin/bash
rules="$FAKE_STATE/rules"
touch "$rules"
case "$1 $2" in
  "rule show")
    printf '0:\\tfrom all lookup local\\n'
    cat "$rules"
    sleep 0.2
    for i in $(seq 1 200); do printf '32766:\\tfrom all lookup main\\n'; done
    ;;
  "rule add")
    shift 2
    if grep -qxF -- "$*" "$rules"; then
      echo "RTNETLINK answers: File exists" >&2
      exit 2
    fi
    echo "$*" >>"$rules"
    ;;
  "route replace")
    shift 2
    echo "$*" >>"$FAKE_STATE/routes"
    ;;
  *) echo "fake ip: unexpected $*" >&2; exit 2 ;;
esac
"""

FAKE_CURL = """#!/bin/sh
for arg; do url="$arg"; done
case "$url" in
  */anchor_ipv4/gateway) echo 198.51.100.1 ;;
  */ipv4/address) echo 203.0.113.2 ;;
  */ipv4/gateway) echo 203.0.113.1 ;;
  *) exit 22 ;;
esac
"""


def _run(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, script in (("ip", FAKE_IP), ("curl", FAKE_CURL)):
        (bin_dir / name).write_text(script)
        (bin_dir / name).chmod(0o755)
    env = {"PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin", "FAKE_STATE": str(tmp_path)}
    return subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def first(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return _run(tmp_path)


def test_keeps_the_own_address_for_its_traffic_and_for_stun_and_wireguard_replies(
    tmp_path: Path, first: subprocess.CompletedProcess[str]
) -> None:
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "rules").read_text().splitlines() == [
        "from 203.0.113.2 lookup 100 priority 1000",
        "priority 900 ipproto udp sport 3478 lookup 100",
        "priority 901 ipproto udp sport 41641 lookup 100",
    ]
    assert (tmp_path / "routes").read_text().splitlines() == [
        "default via 203.0.113.1 dev eth0 table 100",
        "default via 198.51.100.1 dev eth0",
    ]


def test_a_second_run_adds_nothing_and_succeeds(
    tmp_path: Path, first: subprocess.CompletedProcess[str]
) -> None:
    assert first.returncode == 0, first.stderr
    rules = (tmp_path / "rules").read_text()
    assert len(rules.splitlines()) == 3  # what the first run set up, kept as it is
    again = _run(tmp_path)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "rules").read_text() == rules  # routes: `ip route replace` is idempotent
