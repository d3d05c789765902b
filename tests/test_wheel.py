"""The built wheel works on its own: installed in a fresh virtualenv, run outside the checkout.

Catches what a checkout hides: package data left out of the wheel, a path
that only exists next to the sources, an import of a test helper.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from support.config import EXAMPLE, ROOT

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
