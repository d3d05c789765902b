"""Module boundaries the design depends on.

cdktf (and jsii, constructs, the provider bindings) is imported only under
homelab_tunnel/infra/; the edge package runs on the droplet's bare python3,
so it imports nothing beyond the standard library and homelab_tunnel.findings.
"""

from __future__ import annotations

import ast
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from support.config import ROOT

from homelab_tunnel.payload import fixed_files
from homelab_tunnel.render.user_data import LIB, EdgeFile, bundle

PACKAGE = ROOT / "homelab_tunnel"
CDKTF_ROOTS = {"cdktf", "constructs", "jsii", "cdktf_cdktf_provider_digitalocean"}


def _imported_roots(source: str) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots.add(node.module.split(".")[0])
    return roots


def _cdktf_outside_infra() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[:2] == ("homelab_tunnel", "infra"):
            continue
        if _imported_roots(path.read_text()) & CDKTF_ROOTS:
            found.append(str(relative))
    if _imported_roots((ROOT / "main.py").read_text()) & CDKTF_ROOTS:
        found.append("main.py")
    return found


def test_cdktf_is_imported_only_under_infra() -> None:
    assert _cdktf_outside_infra() == []


def test_import_scan_sees_a_cdktf_import() -> None:
    assert _imported_roots("from cdktf import App\nimport constructs.x\n") == {
        "cdktf",
        "constructs",
    }


def _modules_outside_infra() -> list[str]:
    modules = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[:2] == ("homelab_tunnel", "infra"):
            continue
        modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def test_every_module_outside_infra_loads_without_cdktf() -> None:
    """Also at run time: no module pulls cdktf in through another one."""
    probe = (
        "import importlib, json, sys\n"
        f"roots = {sorted(CDKTF_ROOTS)!r}\n"
        "found = {}\n"
        f"for name in {_modules_outside_infra()!r}:\n"
        "    importlib.import_module(name)\n"
        "    loaded = sorted(m for m in sys.modules if m.split('.')[0] in roots)\n"
        "    if loaded: found[name] = loaded[:3]\n"
        "print(json.dumps(found))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {}


def _unpacked(tmp_path: Path, files: tuple[EdgeFile, ...]) -> Path:
    with tarfile.open(fileobj=io.BytesIO(bundle(files))) as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path / LIB.lstrip("/")


def _import_all_edge_modules(lib: Path) -> subprocess.CompletedProcess[str]:
    names = sorted(
        f"homelab_tunnel.edge.{path.stem}"
        for path in (lib / "homelab_tunnel" / "edge").glob("*.py")
        if path.stem != "__init__"
    )
    # -S: no site-packages; -I: nothing from the environment or the current directory.
    program = f"import sys; sys.path.insert(0, {str(lib)!r}); import " + ", ".join(names)
    return subprocess.run(
        [sys.executable, "-S", "-I", "-c", program],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        check=False,
    )


def test_edge_modules_import_from_the_bundle_with_the_standard_library_only(
    tmp_path: Path,
) -> None:
    done = _import_all_edge_modules(_unpacked(tmp_path, fixed_files()))
    assert done.returncode == 0, done.stderr


def test_an_edge_module_needing_more_than_the_standard_library_fails_there(
    tmp_path: Path,
) -> None:
    tainted = tuple(
        EdgeFile(f.path, f.content + "\nimport yaml\n", f.mode)
        if f.path.endswith("/edge/status.py")
        else f
        for f in fixed_files()
    )
    done = _import_all_edge_modules(_unpacked(tmp_path, tainted))
    assert done.returncode != 0
    assert "No module named 'yaml'" in done.stderr


@pytest.mark.parametrize("name", ["__init__.py", "findings.py"])
def test_edge_bundle_carries_the_shared_modules_it_imports(name: str) -> None:
    paths = {file.path for file in fixed_files()}
    assert f"{LIB}/homelab_tunnel/{name}" in paths
