"""The documentation site builds with `mkdocs build --strict`, and strict means strict.

mkdocs.yml turns every validation MkDocs 1.6 has into a warning and --strict
turns warnings into a failed build; the twins below break one thing each in a
copy of docs/ and show the build fails naming it. The generated reference
pages must equal what the code writes now.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from support.config import ROOT, tool

MKDOCS = ROOT / ".venv" / "bin" / "mkdocs"
pytestmark = pytest.mark.skipif(
    not MKDOCS.exists(), reason="mkdocs is missing (`make` installs it)"
)


def _build(project: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"NO_MKDOCS_2_WARNING": "1", "NO_COLOR": "1"}
    return subprocess.run(
        [str(MKDOCS), "build", "--strict", "--site-dir", str(site)],
        cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of mkdocs.yml and docs/ to break."""
    copy = tmp_path / "project"
    shutil.copytree(ROOT / "docs", copy / "docs")
    shutil.copy(ROOT / "mkdocs.yml", copy / "mkdocs.yml")
    return copy


def test_site_builds_strict_and_fetches_no_web_fonts(tmp_path: Path) -> None:
    """`font: false`: no page names a font host, so building and reading need no network."""
    done = _build(ROOT, tmp_path / "site")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "getting-started" / "index.html").exists()
    assert (tmp_path / "site" / "reference" / "config" / "index.html").exists()
    pages = [page.read_text() for page in (tmp_path / "site").rglob("*.html")]
    assert not [page for page in pages if "fonts.googleapis.com" in page]


def test_broken_link_fails_the_build(project: Path, tmp_path: Path) -> None:
    page = project / "docs" / "getting-started.md"
    page.write_text(page.read_text() + "\nSee [the missing page](operations/missing.md).\n")
    done = _build(project, tmp_path / "site")
    assert done.returncode != 0
    assert "operations/missing.md" in done.stderr


def test_broken_anchor_fails_the_build(project: Path, tmp_path: Path) -> None:
    page = project / "docs" / "getting-started.md"
    page.write_text(page.read_text() + "\nSee [a key](reference/config.md#no-such-key).\n")
    done = _build(project, tmp_path / "site")
    assert done.returncode != 0
    assert "no-such-key" in done.stderr


def test_page_left_out_of_the_navigation_fails_the_build(project: Path, tmp_path: Path) -> None:
    (project / "docs" / "orphan.md").write_text("# Orphan\n")
    done = _build(project, tmp_path / "site")
    assert done.returncode != 0
    assert "orphan.md" in done.stderr


def test_nav_entry_without_a_page_fails_the_build(project: Path, tmp_path: Path) -> None:
    (project / "docs" / "getting-started.md").unlink()
    done = _build(project, tmp_path / "site")
    assert done.returncode != 0
    assert "getting-started.md" in done.stderr


# ---------------------------------------------------------------------------
# Generated pages
# ---------------------------------------------------------------------------


def test_generated_reference_pages_are_current() -> None:
    stale = [
        name
        for name, make in tool("docs_reference").pages().items()
        if not (ROOT / name).exists() or (ROOT / name).read_text() != make()
    ]
    assert stale == [], f"{', '.join(stale)} differ from the code: run `make docs-reference`"


def test_docs_reference_writes_every_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = tool("docs_reference")
    monkeypatch.setattr(module, "ROOT", tmp_path)
    assert module.main() == 0
    for name, make in module.pages().items():
        assert (tmp_path / name).read_text() == make()


# ---------------------------------------------------------------------------
# The README, the landing page on GitHub
# ---------------------------------------------------------------------------


def test_readme_starts_with_the_two_commands() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert lines[0].startswith("# ")
    start = lines.index("```sh")
    assert lines[1:start] == [""]
    assert [line.split()[:2] for line in lines[start + 1 : start + 3]] == [
        ["make", "synth"],
        ["make", "test"],
    ]


def test_readme_links_reach_existing_files() -> None:
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [target for target in targets if "://" not in target]
    assert local, "the README links to no page of the docs"
    missing = [target for target in local if not (ROOT / target).exists()]
    assert missing == []
