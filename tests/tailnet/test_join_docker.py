"""`join-command --target docker`: a compose service the real Docker Compose accepts.

The file is loaded by Docker Compose itself (`docker compose config`, which
needs no engine), and the arguments the image's containerboot builds from it
are parsed by the real `tailscale` CLI. A real join from the container in
the lab is not here: it needs a Docker engine.
"""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from support.binaries import require
from support.config import EXAMPLE, ROOT, write_config
from typer.testing import CliRunner

from homelab_tunnel.cli import app
from homelab_tunnel.edge.versions import MIN_TAILSCALE, client_supported, parse_version
from homelab_tunnel.tailnet.join_docker import DEFAULT_TAG, IMAGE_VERSION

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})


def _join(*args: str, config: Path = EXAMPLE) -> Any:
    return runner.invoke(app, ["join-command", "--config", str(config), *args])


def _compose_file(*args: str, config: Path = EXAMPLE) -> str:
    result = _join("--target", "docker", *args, config=config)
    assert result.exit_code == 0, result.output
    return str(result.stdout)


def _compose_config(
    folder: Path, text: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    compose = require("docker-compose", "cmd")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "compose.yaml").write_text(text)
    return subprocess.run(
        [str(compose), "config", "--format", "json"], cwd=folder,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _loaded(folder: Path, text: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    done = _compose_config(folder, text, env)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_docker_compose_loads_the_service_with_tun(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path, _compose_file())
    service = loaded["services"]["tailscale"]
    assert service["image"] == f"tailscale/tailscale:{DEFAULT_TAG}"
    assert service["environment"] == {
        "TS_AUTHKEY": "",
        "TS_AUTH_ONCE": "true",
        "TS_HOSTNAME": "homelab",
        "TS_STATE_DIR": "/var/lib/tailscale",
        "TS_USERSPACE": "false",
        "TS_ACCEPT_DNS": "false",
        "TS_EXTRA_ARGS": "--login-server=https://headscale.example.com",
    }
    assert [(v["type"], v["source"], v["target"]) for v in service["volumes"]] == [
        ("volume", "tailscale-state", "/var/lib/tailscale")
    ]
    assert [d["source"] for d in service["devices"]] == ["/dev/net/tun"]
    assert service["cap_add"] == ["NET_ADMIN"]
    assert service["restart"] == "unless-stopped"
    assert "tailscale-state" in loaded["volumes"]


def test_userspace_needs_neither_the_tun_device_nor_net_admin(tmp_path: Path) -> None:
    service = _loaded(tmp_path, _compose_file("--userspace"))["services"]["tailscale"]
    assert service["environment"]["TS_USERSPACE"] == "true"
    assert "devices" not in service and "cap_add" not in service


def test_the_key_comes_from_the_environment_once(tmp_path: Path) -> None:
    text = _compose_file()
    with_key = _loaded(tmp_path / "a", text, {"TS_AUTHKEY": "tskey-auth-k1"})
    assert with_key["services"]["tailscale"]["environment"]["TS_AUTHKEY"] == "tskey-auth-k1"
    assert "tskey" not in text  # the file never holds a key


def test_a_site_in_the_services_network_is_what_compose_accepts(tmp_path: Path) -> None:
    text = _compose_file()
    stub = [line for line in text.splitlines() if line.startswith("  #   ") or line == "  # site:"]
    site = "\n".join(line.replace("# ", "", 1) for line in stub)
    site = site.replace("<your image, listening on 2342>", "example/photos:1")
    loaded = _loaded(tmp_path, text.replace("\nvolumes:\n", f"\n{site}\n\nvolumes:\n"))
    assert loaded["services"]["site"]["network_mode"] == "service:tailscale"


def test_negative_twin_compose_refuses_a_broken_service(tmp_path: Path) -> None:
    done = _compose_config(tmp_path, _compose_file().replace("restart:", "restarts:"))
    assert done.returncode != 0
    assert "restarts" in done.stderr


def _containerboot_up_args(environment: dict[str, str]) -> list[str]:
    """`tailscale up`'s arguments as containerboot builds them.

    tailscale.com v1.102.3, cmd/containerboot/tailscaled.go:113-146: accept-dns,
    authkey, hostname, then TS_EXTRA_ARGS split on blanks.
    """
    accept_dns = "true" if environment.get("TS_ACCEPT_DNS") == "true" else "false"
    return [
        "up",
        f"--accept-dns={accept_dns}",
        f"--authkey={environment['TS_AUTHKEY']}",
        f"--hostname={environment['TS_HOSTNAME']}",
        *environment["TS_EXTRA_ARGS"].split(),
    ]


def _tailscale_up(tmp_path: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    tailscale = require("tailscale", "cmd/tailscale")
    return subprocess.run(
        [str(tailscale), f"--socket={tmp_path / 'no-daemon.sock'}", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_the_real_tailscale_accepts_the_arguments_containerboot_passes(tmp_path: Path) -> None:
    """Flag level: parsed, then it looks for tailscaled (none here: nothing reaches the network)."""
    environment = _loaded(tmp_path, _compose_file(), {"TS_AUTHKEY": "tskey-auth-k1"})["services"][
        "tailscale"
    ]["environment"]
    done = _tailscale_up(tmp_path, _containerboot_up_args(environment))
    assert "flag provided but not defined" not in done.stderr
    assert "failed to connect to local tailscaled" in done.stderr


def test_negative_twin_the_real_tailscale_refuses_an_unknown_flag(tmp_path: Path) -> None:
    done = _tailscale_up(tmp_path, ["up", "--login-servr=https://headscale.example.com"])
    assert "flag provided but not defined: -login-servr" in done.stderr


# ---------------------------------------------------------------------------
# The version gate on the image tag
# ---------------------------------------------------------------------------


def test_the_default_image_is_the_client_the_lab_runs() -> None:
    pins = tomllib.loads((ROOT / "tools" / "binaries.toml").read_text())
    assert pins["tailscale"]["version"] == f"v{IMAGE_VERSION}"


def test_the_default_image_passes_the_gate_of_every_known_headscale() -> None:
    assert all(
        client_supported(parse_version(IMAGE_VERSION), minimum)
        for minimum in MIN_TAILSCALE.values()
    )


def test_an_image_older_than_headscales_minimum_is_refused() -> None:
    result = _join("--target", "docker", "--image-tag", "v1.78.3")
    assert result.exit_code == 2
    assert result.stderr == (
        "--image-tag: 'v1.78.3' is Tailscale 1.78.3, older than 1.80, the oldest client "
        "Headscale 0.29.2 accepts (a refused client's traffic falls back to a relay); "
        f"use {DEFAULT_TAG} or newer\n"
    )


def test_the_gate_follows_the_configs_headscale(tmp_path: Path) -> None:
    config = write_config(tmp_path, headscale={"version": "0.28.0"})
    assert _join("--target", "docker", "--image-tag", "v1.74.0", config=config).exit_code == 0
    assert _join("--target", "docker", "--image-tag", "v1.72.4", config=config).exit_code == 2


def test_a_moving_stable_tag_is_allowed_and_said(tmp_path: Path) -> None:
    text = _compose_file("--image-tag", "stable")
    assert "A moving tag: pulls follow Tailscale's newest stable release." in text
    assert _loaded(tmp_path, text)["services"]["tailscale"]["image"] == (
        "tailscale/tailscale:stable"
    )


@pytest.mark.parametrize("tag", ["nightly", "v1.80", "1.80.0\nservices: {}", ""])
def test_a_tag_that_names_no_release_is_refused(tag: str) -> None:
    result = _join("--target", "docker", "--image-tag", tag)
    assert result.exit_code == 2
    assert "is not a release tag: give vX.Y.Z" in result.stderr


# ---------------------------------------------------------------------------
# Which machine, which target
# ---------------------------------------------------------------------------


def test_machine_picks_another_of_the_sites_machines(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        sites=[
            {"domain": "blog.example.com", "upstream": "homelab", "port": 8080},
            {"domain": "files.example.com", "upstream": "nas", "port": 5000},
        ],
    )
    text = _compose_file("--machine", "nas", config=config)
    environment = _loaded(tmp_path / "c", text)["services"]["tailscale"]["environment"]
    assert environment["TS_HOSTNAME"] == "nas"
    assert "(files.example.com on 5000)" in text
    assert 'MACHINE="${MACHINE:-nas}"' in _join("--machine", "nas", config=config).stdout


def test_a_machine_no_site_names_is_refused() -> None:
    result = _join("--target", "docker", "--machine", "printer")
    assert result.exit_code == 2
    assert (
        result.stderr == "--machine: 'printer' serves none of the config's sites; one of: homelab\n"
    )


def test_docker_options_are_refused_for_the_apt_script() -> None:
    result = _join("--userspace")
    assert result.exit_code == 2
    assert "--image-tag and --userspace are for --target docker" in result.stderr


@pytest.mark.parametrize("edge", ["203.0.113.10\nservices: {}", "root@203.0.113.10", "a b"])
def test_an_edge_that_is_not_an_address_or_name_is_refused(edge: str) -> None:
    result = _join("--target", "docker", "--edge", edge)
    assert result.exit_code == 2
    assert "is not an IP address or a host name" in result.stderr


def test_the_edge_given_is_in_the_key_step() -> None:
    text = _compose_file("--edge", "203.0.113.10")
    assert 'export TS_AUTHKEY="$(ssh root@203.0.113.10 /usr/local/lib/homelab-tunnel/' in text
