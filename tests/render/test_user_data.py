"""user_data checked by the real tools: cloud-init's schema checker, shellcheck, systemd."""

from __future__ import annotations

import base64
import bz2
import io
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.config import ROOT, config_with

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.crawlers import ai_crawlers
from homelab_tunnel.payload import fixed_files
from homelab_tunnel.payload import user_data as render_user_data
from homelab_tunnel.render.compact import compact_shell
from homelab_tunnel.render.secrets import WEBHOOK_URL
from homelab_tunnel.render.user_data import (
    BOOTSTRAP,
    BOOTSTRAP_UNIT,
    BUNDLE,
    FIRST_BOOT,
    UNPACK,
    EdgeFile,
    _text_entry,
    rendered_files,
)

SCRIPTS = sorted((ROOT / "cloud-init").glob("*.sh"))
needs_cloud_init = pytest.mark.skipif(
    shutil.which("cloud-init") is None,
    reason="cloud-init missing: `make test` installs Debian's cloud-init (needs apt-get as root)",
)
needs_shellcheck = pytest.mark.skipif(
    shutil.which("shellcheck") is None,
    reason="shellcheck missing: `make test` installs Debian's shellcheck (needs apt-get as root)",
)
needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed here (Debian package: systemd)",
)


def _document(config: TunnelConfig) -> dict[str, Any]:
    return dict(yaml.safe_load(render_user_data(config)))


def _schema(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "user-data"
    path.write_text(text)
    return subprocess.run(
        ["cloud-init", "schema", "--config-file", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@needs_cloud_init
@pytest.mark.parametrize(
    "changes",
    [{}, {"egress_via_reserved_ip": True, "reserved_ipv6": True, "tls": {"staging": True}}],
    ids=["example", "every-switch-on"],
)
def test_cloud_init_schema_accepts_the_user_data(tmp_path: Path, changes: dict[str, Any]) -> None:
    result = _schema(tmp_path, render_user_data(config_with(**changes)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid cloud-config" in result.stdout


@needs_cloud_init
def test_cloud_init_schema_rejects_a_broken_document(tmp_path: Path) -> None:
    broken = render_user_data(config_with()).replace("runcmd:", "runcmd: 5\nruncmd_:", 1)
    assert _schema(tmp_path, broken).returncode != 0


def test_user_data_stays_well_under_the_droplet_limit(example_config: TunnelConfig) -> None:
    # DigitalOcean refuses user_data over 64 KiB; the example (backups on) leaves room
    # for many sites. How many exactly is tests/test_payload.py's bound (at least 40).
    assert len(render_user_data(example_config).encode()) < 44 * 1024


def test_rendered_files_arrive_byte_for_byte(example_config: TunnelConfig) -> None:
    written = {item["path"]: item for item in _document(example_config)["write_files"]}
    for file in rendered_files(example_config, ai_crawlers()):
        assert written[file.path]["content"] == file.content, file.path
        assert written[file.path]["permissions"] == f"{file.mode:04o}"


def test_block_scalars_keep_edge_cases_intact() -> None:

    for content in ("  leading spaces\nx\n", "no newline", "two\n\n", "\ttab\n"):
        text = "\n".join(["write_files:", *_text_entry(EdgeFile("/x", content))]) + "\n"
        assert yaml.safe_load(text)["write_files"][0]["content"] == content


def test_fixed_files_travel_in_the_bundle_with_their_modes(example_config: TunnelConfig) -> None:
    item = next(i for i in _document(example_config)["write_files"] if i["path"] == BUNDLE)
    assert item["encoding"] == "b64"
    archive = bz2.decompress(base64.b64decode(item["content"]))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = {m.name: (m.mode, tar.extractfile(m).read().decode()) for m in tar}  # type: ignore[union-attr]
    assert members == {file.path.lstrip("/"): (file.mode, file.content) for file in fixed_files()}
    assert members[BOOTSTRAP.lstrip("/")][0] == 0o755


def test_bundle_is_the_same_bytes_in_any_process(example_config: TunnelConfig) -> None:
    # Any byte of difference in user_data replaces the droplet.
    program = (
        "import sys, hashlib; from homelab_tunnel.render.user_data import bundle;"
        "from homelab_tunnel.payload import fixed_files;"
        "sys.stdout.write(hashlib.sha256(bundle(fixed_files())).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", program], capture_output=True, text=True, check=True,
            env={"PATH": "/usr/bin:/bin", "TZ": tz}, cwd=ROOT, timeout=60,
        ).stdout
        for tz in ("UTC", "Pacific/Auckland")
    }  # fmt: skip
    assert len(digests) == 1


def test_runcmd_unpacks_then_starts_the_bootstrap_unit(
    tmp_path: Path, example_config: TunnelConfig
) -> None:
    document = _document(example_config)
    assert document["runcmd"] == [
        ["python3", "-c", UNPACK],
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", BOOTSTRAP_UNIT],
        ["sh", "-c", FIRST_BOOT],
    ]
    # Run the very unpack command against a scratch root.
    bundle_path = tmp_path / BUNDLE.lstrip("/")
    bundle_path.parent.mkdir(parents=True)
    item = next(i for i in document["write_files"] if i["path"] == BUNDLE)
    bundle_path.write_bytes(base64.b64decode(item["content"]))
    program = UNPACK.replace(f"'{BUNDLE}'", repr(str(bundle_path))).replace(
        "extractall('/'", f"extractall({str(tmp_path)!r}"
    )
    subprocess.run([sys.executable, "-c", program], check=True, timeout=60)
    bootstrap = tmp_path / BOOTSTRAP.lstrip("/")
    assert bootstrap.read_text() == compact_shell(
        (ROOT / "cloud-init" / "bootstrap.sh").read_text()
    )
    assert bootstrap.stat().st_mode & 0o111
    unit = (tmp_path / "etc/systemd/system" / BOOTSTRAP_UNIT).read_text()
    assert f"ExecStart={BOOTSTRAP}\n" in unit
    assert "Restart=on-failure\n" in unit


def test_webhook_url_is_left_for_terraform(example_config: TunnelConfig) -> None:
    text = render_user_data(example_config)
    assert text.count(WEBHOOK_URL.placeholder) == 1
    health = next(
        f for f in rendered_files(example_config, ai_crawlers()) if f.path.endswith("health.env")
    )
    assert health.mode == 0o600
    assert "HEALTH_UPSTREAMS=homelab.tail.example.net\n" in health.content


def test_edge_env_carries_what_bootstrap_needs(example_config: TunnelConfig) -> None:
    edge = next(
        f for f in rendered_files(example_config, ai_crawlers()) if f.path.endswith("edge.env")
    )
    values = dict(line.split("=", 1) for line in edge.content.splitlines() if "=" in line)
    assert values == {
        "EDGE_NAME": "homelab-edge",
        "STATE_VOLUME": "homelab-edge-state",
        "HEADSCALE_VERSION": "0.29.2",
        "HEADSCALE_DEB_SHA256": "",
        "EGRESS_VIA_RESERVED_IP": "false",
        "BACKUP_ENABLED": "true",
        "LITESTREAM_VERSION": "0.5.18",
    }


def test_no_secret_in_user_data(example_config: TunnelConfig) -> None:
    text = render_user_data(example_config).lower()
    for marker in ("authkey", "hskey-", "private_key:", "password"):
        assert marker not in text.split("edge-files.tar.bz2")[0], marker


@needs_shellcheck
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck_is_clean(script: Path) -> None:
    result = subprocess.run(
        ["shellcheck", "--severity=style", str(script)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout


@needs_shellcheck
def test_shellcheck_catches_a_broken_script(tmp_path: Path) -> None:
    script = tmp_path / "broken.sh"
    script.write_text("#!/usr/bin/env bash\nrm -rf $1/*\n")
    assert subprocess.run(["shellcheck", str(script)], capture_output=True, timeout=60).returncode


def test_every_script_is_strict_and_executable() -> None:
    for script in SCRIPTS:
        assert "set -euo pipefail" in script.read_text(), script.name
        assert script.stat().st_mode & 0o111, script.name


@needs_systemd_analyze
def test_egress_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = tmp_path / "homelab-tunnel-egress.service"
    script = ROOT / "cloud-init" / "reserved-ip-egress.sh"
    text = (ROOT / "cloud-init" / unit.name).read_text()
    unit.write_text(
        text.replace("/usr/local/lib/homelab-tunnel/reserved-ip-egress.sh", str(script))
    )
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
