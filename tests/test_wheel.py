"""The built wheel works on its own: installed in a fresh virtualenv, run outside the checkout.

Catches what a checkout hides: package data left out of the wheel, a path
that only exists next to the sources, an import of a test helper.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.config import DATA, EXAMPLE, ROOT, write_config
from support.fake_digitalocean import TOKEN, FakeDigitalOcean
from support.fake_digitalocean.volumes import _create
from support.shapes import BY_NAME
from support.terraform import OfflineTerraform, Unavailable, offline_terraform
from support.terraform_standin import install_standin

from homelab_tunnel.config import load_config
from homelab_tunnel.payload import user_data


def _uv() -> str | None:
    local = ROOT / ".tools" / "bin" / "uv"
    return str(local) if local.exists() else shutil.which("uv")


UV = _uv()
pytestmark = pytest.mark.skipif(UV is None, reason="uv is missing (`make` installs it in .tools/)")


def _run(*argv: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        list(argv), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{' '.join(argv)}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel and the locked runtime dependencies, nothing else."""
    assert UV is not None
    work = tmp_path_factory.mktemp("wheel")
    _run(UV, "build", "--wheel", "--out-dir", str(work / "dist"), str(ROOT), cwd=ROOT)
    (wheel,) = (work / "dist").glob("homelab_tunnel-*.whl")
    requirements = _run(
        UV, "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project", cwd=ROOT
    ).stdout
    (work / "requirements.txt").write_text(requirements)
    venv = work / "venv"
    _run(
        UV, "venv", "--quiet", "--python", shutil.which("python3") or "python3", str(venv), cwd=work
    )
    _run(
        UV, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
        "-r", str(work / "requirements.txt"), str(wheel), cwd=work,
    )  # fmt: skip
    return venv


def test_installed_wheel_renders_the_same_user_data(installed: Path, tmp_path: Path) -> None:
    config = tmp_path / "edge.toml"
    shutil.copy(EXAMPLE, config)
    done = _run(
        str(installed / "bin" / "homelab-tunnel"), "render", "user-data", "--config", str(config),
        cwd=tmp_path,
    )  # fmt: skip
    assert done.stdout == user_data(load_config(EXAMPLE))


def test_installed_wheel_synthesizes_the_example(installed: Path, tmp_path: Path) -> None:
    config = tmp_path / "edge.toml"
    shutil.copy(EXAMPLE, config)
    _run(
        str(installed / "bin" / "homelab-tunnel"), "synth", "--config", str(config),
        "--out", "cdktf.out", cwd=tmp_path,
    )  # fmt: skip
    document = json.loads((tmp_path / "cdktf.out/stacks/homelab-edge/cdk.tf.json").read_text())
    assert document["resource"]["digitalocean_droplet"]["edge"]["name"] == "homelab-edge"


def test_wheel_is_not_run_from_the_checkout(installed: Path) -> None:
    done = _run(
        str(installed / "bin" / "python"), "-c",
        "import homelab_tunnel; print(homelab_tunnel.__file__)", cwd=installed,
    )  # fmt: skip
    assert Path(done.stdout.strip()).is_relative_to(installed)


# ---------------------------------------------------------------------------
# diff and deploy from the installed tool: no Makefile, no checkout
# ---------------------------------------------------------------------------


def _tool(installed: Path, *args: str, cwd: Path, env: dict[str, str]) -> Any:
    return subprocess.run(
        [str(installed / "bin" / "homelab-tunnel"), *args], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip


def test_installed_wheel_deploys_through_terraform_behind_the_gates(
    installed: Path, tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    """A stand-in Terraform; the snapshot through the fake DigitalOcean API."""
    cert, key = certificate
    write_config(tmp_path, backup={"enabled": False})
    standin = install_standin(tmp_path / "bin", plan=DATA / "plans" / "user-data-change.json")
    with FakeDigitalOcean(cert, key) as api:
        _create(api.state, {"name": "homelab-edge-state", "region": "fra1", "size_gigabytes": 5})
        env = {
            "PATH": f"{standin.folder}:/usr/bin:/bin",
            "HOME": str(tmp_path),
            "DIGITALOCEAN_TOKEN": TOKEN,
            "SPACES_ACCESS_KEY_ID": "spaces-id",
            "SPACES_SECRET_ACCESS_KEY": "spaces-secret",
            "DIGITALOCEAN_API_URL": api.url,
            "REQUESTS_CA_BUNDLE": str(cert),
            "NO_PROXY": "127.0.0.1",
        }
        done = _tool(installed, "deploy", "--yes", "--config", "edge.toml", cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        (snapshot,) = api.state.snapshots.values()
    assert snapshot["name"].endswith("-pre-apply")
    assert standin.commands() == ["version", "init", "plan", "show", "apply"]
    standin.configure(plan=DATA / "plans" / "volume-removed.json")
    done = _tool(installed, "deploy", "--yes", "--config", "edge.toml", cwd=tmp_path, env=env)
    assert done.returncode == 1
    assert "refusing a data loss change (--fail-on data-loss)" in done.stdout
    assert standin.commands().count("apply") == 1


@pytest.fixture
def offline(tmp_path_factory: pytest.TempPathFactory) -> OfflineTerraform:
    try:
        return offline_terraform(tmp_path_factory.mktemp("terraform"))
    except Unavailable as exc:
        pytest.skip(str(exc))


def test_installed_wheel_deploys_for_real_into_the_fake_account(
    installed: Path, offline: OfflineTerraform, tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    """The real Terraform and provider: deploy creates the edge, then diff has nothing to do."""
    cert, key = certificate
    write_config(tmp_path, BY_NAME["base"].raw())
    with FakeDigitalOcean(cert, key) as api:
        api.state.domains.clear()  # the base shape creates its zone
        env = offline.env(api_url=api.url, cert=cert)
        done = _tool(installed, "deploy", "--yes", "--config", "edge.toml", cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "verdict: safe: only creations and in-place updates" in done.stdout
        assert [d["name"] for d in api.state.droplets.values()] == ["homelab-edge"]
        assert (tmp_path / "terraform.homelab-edge.tfstate").exists()  # beside the config
        done = _tool(installed, "diff", "--config", "edge.toml", cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "verdict: no changes" in done.stdout


def test_installed_wheel_reads_the_ai_crawler_list_from_its_dependency(
    installed: Path, tmp_path: Path
) -> None:
    """block-ai sites need crawler-user-agents' data, from the installed package."""
    from homelab_tunnel.crawlers import ai_crawlers
    from homelab_tunnel.render.caddyfile import render_caddyfile

    example = EXAMPLE.parent / "private-sites.toml"
    config = tmp_path / "edge.toml"
    shutil.copy(example, config)
    done = _run(
        str(installed / "bin" / "homelab-tunnel"), "render", "caddyfile", "--config", str(config),
        cwd=tmp_path,
    )  # fmt: skip
    assert done.stdout == render_caddyfile(load_config(example), ai_crawlers())
    assert "@ai_crawler {" in done.stdout
