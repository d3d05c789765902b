"""user_data checked by the real tools: cloud-init's schema checker, shellcheck, systemd."""

from __future__ import annotations

import base64
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
from homelab_tunnel.payload import BOOTSTRAP_STEPS, fixed_files, software
from homelab_tunnel.payload import user_data as render_user_data
from homelab_tunnel.render.compact import compact_python
from homelab_tunnel.render.secrets import BACKUP_ACCESS_KEY, BACKUP_SECRET_KEY, SECRETS, WEBHOOK_URL
from homelab_tunnel.render.user_data import (
    BOOTSTRAP_UNIT,
    FIRST_BOOT,
    LOADER,
    LOADER_PATHS,
    UNPACK,
    EdgeFile,
    _text_entry,
    software_sha256,
)
from homelab_tunnel.render.user_data import rendered_files as rendered_for

# Scripts that run on their own; the bootstrap steps are sourced by bootstrap.sh.
SCRIPTS = sorted((ROOT / "cloud-init").glob("*.sh"))
STEPS = ROOT / "cloud-init" / "steps"


def rendered_files(config: TunnelConfig) -> list[EdgeFile]:
    return rendered_for(config, software_sha256(fixed_files()))


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
    # DigitalOcean refuses user_data over 64 KiB. Only first-boot files and the
    # loader travel there; tests/test_payload.py holds the 32 KiB budget.
    assert len(render_user_data(example_config).encode()) < 20 * 1024


def test_rendered_files_arrive_byte_for_byte(example_config: TunnelConfig) -> None:
    written = {item["path"]: item for item in _document(example_config)["write_files"]}
    for file in rendered_files(example_config):
        assert written[file.path]["content"] == file.content, file.path
        assert written[file.path]["permissions"] == f"{file.mode:04o}"


def test_day_to_day_files_are_not_in_user_data(example_config: TunnelConfig) -> None:
    """Sites, policy and health settings travel in the config object, so they never
    replace the droplet."""
    text = render_user_data(example_config)
    paths = {item["path"] for item in _document(example_config)["write_files"]}
    assert not {p for p in paths if p.endswith(("Caddyfile", "policy.hujson", "health.env"))}
    for site in example_config.sites:
        assert site.domain not in text


def test_block_scalars_keep_edge_cases_intact() -> None:

    for content in ("  leading spaces\nx\n", "no newline", "two\n\n", "\ttab\n"):
        text = "\n".join(["write_files:", *_text_entry(EdgeFile("/x", content))]) + "\n"
        assert yaml.safe_load(text)["write_files"][0]["content"] == content


def _members(archive: bytes) -> dict[str, tuple[int, str]]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:bz2") as tar:
        return {m.name: (m.mode, tar.extractfile(m).read().decode()) for m in tar}  # type: ignore[union-attr]


def test_user_data_carries_only_the_loader(example_config: TunnelConfig) -> None:
    item = next(i for i in _document(example_config)["write_files"] if i["path"] == LOADER)
    assert item["encoding"] == "b64"
    members = _members(base64.b64decode(item["content"]))
    assert sorted(members) == sorted(path.lstrip("/") for path in LOADER_PATHS)
    by_path = {file.path.lstrip("/"): (file.mode, file.content) for file in fixed_files()}
    assert all(members[name] == by_path[name] for name in members)


def test_the_software_bundle_holds_every_fixed_file_with_its_mode() -> None:
    members = _members(software())
    assert members == {file.path.lstrip("/"): (file.mode, file.content) for file in fixed_files()}
    assert members["usr/local/lib/homelab-tunnel/bootstrap.sh"][0] == 0o755
    assert all(
        f"usr/local/lib/homelab-tunnel/steps/{step}.sh" in members for step in BOOTSTRAP_STEPS
    )


def test_user_data_pins_the_software_by_its_hash(example_config: TunnelConfig) -> None:
    edge = next(f for f in rendered_files(example_config) if f.path.endswith("edge.env"))
    assert f"SOFTWARE_SHA256={software_sha256(fixed_files())}\n" in edge.content
    channel = next(f for f in rendered_files(example_config) if f.path.endswith("channel.env"))
    assert f"/software/{software_sha256(fixed_files())}.tar.bz2\n" in channel.content


def test_the_software_is_the_same_bytes_in_any_process(example_config: TunnelConfig) -> None:
    # Any byte of difference in user_data (which pins it) replaces the droplet.
    program = (
        "import sys, hashlib; from homelab_tunnel.payload import software;"
        "sys.stdout.write(hashlib.sha256(software()).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", program], capture_output=True, text=True, check=True,
            env={"PATH": "/usr/bin:/bin", "TZ": tz}, cwd=ROOT, timeout=60,
        ).stdout
        for tz in ("UTC", "Pacific/Auckland")
    }  # fmt: skip
    assert len(digests) == 1


def test_runcmd_unpacks_the_loader_then_starts_the_bootstrap_unit(
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
    loader = tmp_path / LOADER.lstrip("/")
    loader.parent.mkdir(parents=True)
    item = next(i for i in document["write_files"] if i["path"] == LOADER)
    loader.write_bytes(base64.b64decode(item["content"]))
    program = UNPACK.replace(f"'{LOADER}'", repr(str(loader))).replace(
        "extractall('/'", f"extractall({str(tmp_path)!r}"
    )
    subprocess.run([sys.executable, "-c", program], check=True, timeout=60)
    software_py = tmp_path / "usr/local/lib/homelab-tunnel/homelab_tunnel/edge/software.py"
    assert software_py.read_text() == compact_python(
        (ROOT / "homelab_tunnel" / "edge" / "software.py").read_text()
    )
    unit = (tmp_path / "etc/systemd/system" / BOOTSTRAP_UNIT).read_text()
    assert "ExecStartPre=/usr/bin/python3 -m homelab_tunnel.edge.software install\n" in unit
    assert "ExecStart=/usr/local/lib/homelab-tunnel/bootstrap.sh\n" in unit
    assert "Restart=on-failure\n" in unit


def test_the_webhook_is_not_in_user_data(example_config: TunnelConfig) -> None:
    """It travels in the config object's metadata, so changing it replaces nothing."""
    assert WEBHOOK_URL.placeholder not in render_user_data(example_config)


def test_every_secret_user_data_carries_is_left_for_terraform(example_config: TunnelConfig) -> None:
    text = render_user_data(example_config)
    # The backup pair twice: backup.env, and Litestream's own config (root's only).
    twice = {BACKUP_ACCESS_KEY, BACKUP_SECRET_KEY}
    for secret in SECRETS:
        assert text.count(secret.placeholder) == (2 if secret in twice else 1), secret.name
    secret_files = {f.path: f.mode for f in rendered_files(example_config) if f.mode == 0o600}
    assert set(secret_files) == {
        "/etc/homelab-tunnel/channel.env",
        "/etc/homelab-tunnel/edge-secret",
        "/etc/homelab-tunnel/backup.env",
        "/etc/homelab-tunnel/litestream.yml",
    }


def test_edge_env_carries_what_bootstrap_needs(example_config: TunnelConfig) -> None:
    edge = next(f for f in rendered_files(example_config) if f.path.endswith("edge.env"))
    values = dict(line.split("=", 1) for line in edge.content.splitlines() if "=" in line)
    assert values == {
        "EDGE_NAME": "homelab-edge",
        "STATE_VOLUME": "homelab-edge-state",
        "HEADSCALE_VERSION": "0.29.2",
        "HEADSCALE_DEB_SHA256": "",
        "EGRESS_VIA_RESERVED_IP": "false",
        "BACKUP_ENABLED": "true",
        "LITESTREAM_VERSION": "0.5.18",
        "SOFTWARE_SHA256": software_sha256(fixed_files()),
    }


def test_no_secret_in_user_data(example_config: TunnelConfig) -> None:
    text = render_user_data(example_config).lower()
    for marker in ("authkey", "hskey-", "private_key:", "password"):
        assert marker not in text.split("loader.tar.bz2")[0], marker


def _shellcheck(script: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["shellcheck", "--severity=style", *options, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@needs_shellcheck
@pytest.mark.parametrize(
    "script", [s for s in SCRIPTS if s.name != "bootstrap.sh"], ids=lambda p: p.name
)
def test_shellcheck_is_clean(script: Path) -> None:
    result = _shellcheck(script)
    assert result.returncode == 0, result.stdout


@needs_shellcheck
def test_shellcheck_is_clean_for_bootstrap_with_its_steps(tmp_path: Path) -> None:
    """bootstrap.sh sources helpers.sh, then each step with the helpers in scope: check them
    as they run (shellcheck follows the `source` of helpers.sh)."""
    whole = tmp_path / "bootstrap-with-steps.sh"
    parts = [(ROOT / "cloud-init" / "bootstrap.sh").read_text()]
    parts += [(STEPS / f"{step}.sh").read_text() for step in BOOTSTRAP_STEPS]
    whole.write_text("\n".join(parts))
    result = _shellcheck(whole, "--external-sources", f"--source-path={ROOT / 'cloud-init'}")
    assert result.returncode == 0, result.stdout


def test_every_step_in_the_order_has_a_script_and_every_script_a_place() -> None:
    scripts = {path.stem for path in STEPS.glob("*.sh")}
    assert scripts == set(BOOTSTRAP_STEPS)
    assert len(BOOTSTRAP_STEPS) == len(set(BOOTSTRAP_STEPS))


@needs_shellcheck
def test_shellcheck_catches_a_broken_script(tmp_path: Path) -> None:
    script = tmp_path / "broken.sh"
    script.write_text("#!/usr/bin/env bash\nrm -rf $1/*\n")
    assert subprocess.run(["shellcheck", str(script)], capture_output=True, timeout=60).returncode


def test_every_script_is_strict_and_executable() -> None:
    for script in SCRIPTS:
        # metadata-guard.sh is POSIX sh (cloud-init's bootcmd): no pipefail there, no pipes.
        strict = "set -eu\n" if script.name == "metadata-guard.sh" else "set -euo pipefail"
        assert strict in script.read_text(), script.name
        if script.name != "helpers.sh":  # sourced, never run
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


def test_the_loader_runs_with_nothing_but_itself(
    tmp_path: Path, example_config: TunnelConfig
) -> None:
    """Before the software is there, the loader's modules must import from the loader alone."""
    item = next(i for i in _document(example_config)["write_files"] if i["path"] == LOADER)
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(item["content"])), mode="r:bz2") as tar:
        tar.extractall(tmp_path, filter="data")
    done = subprocess.run(
        [sys.executable, "-S", "-I", "-c", "import sys; sys.path.insert(0, sys.argv[1]);"
         "import homelab_tunnel.edge.software", str(tmp_path / "usr/local/lib/homelab-tunnel")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
