"""user_data's size is known, and checked against DigitalOcean's limit, before apply."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.config import ROOT, config_with, write_config
from typer.testing import CliRunner

from homelab_tunnel.cli import app
from homelab_tunnel.payload import USER_DATA_LIMIT, fixed_files, user_data, user_data_size
from homelab_tunnel.render.compact import compact_python, compact_shell
from homelab_tunnel.render.secrets import SECRETS, WEBHOOK_URL_MAX_LENGTH, fill

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})


def _sites(count: int) -> list[dict[str, Any]]:
    return [
        {"domain": f"s{index}.example.com", "upstream": "homelab", "port": 8000 + index}
        for index in range(count)
    ]


def test_the_size_counts_the_longest_value_terraform_allows_for_each_secret() -> None:
    config = config_with()
    text = user_data(config)
    assert all(secret.placeholder in text for secret in SECRETS)
    filled = fill(text, {secret: "x" * secret.max_length for secret in SECRETS})
    assert user_data_size(config) == len(filled.encode())


def _most_sites_that_fit() -> int:
    """The boundary, found by bisection: the bundle's size moves as the edge's files change."""
    low, high = 1, 400
    while low < high:
        middle = (low + high + 1) // 2
        if user_data_size(config_with(sites=_sites(middle))) <= USER_DATA_LIMIT:
            low = middle
        else:
            high = middle - 1
    return low


FITS = _most_sites_that_fit()
# (number of sites, exit code of `check`): DigitalOcean takes at most 64 KiB.
SITE_COUNTS = [(1, 0), (FITS, 0), (FITS + 1, 2), (200, 2)]


def test_a_useful_number_of_sites_fits() -> None:
    # Was 40 before the backups' seal, signed manifests and atomic restore (about 9 KiB of
    # user_data); the in-place config channel takes the sites out of user_data.
    assert FITS >= 20


@pytest.mark.parametrize(("count", "exit_code"), SITE_COUNTS)
def test_check_refuses_user_data_over_the_limit(tmp_path: Path, count: int, exit_code: int) -> None:
    path = write_config(tmp_path, sites=_sites(count))
    result = runner.invoke(app, ["check", "--config", str(path)])
    assert result.exit_code == exit_code, result.output
    if exit_code == 2:
        size = user_data_size(config_with(sites=_sites(count)))
        assert size > USER_DATA_LIMIT
        assert result.stderr == (
            f"{path}: sites: the droplet's user_data would be {size} bytes with {count} "
            f"sites (counting a {WEBHOOK_URL_MAX_LENGTH}-character webhook URL), over "
            f"DigitalOcean's limit of {USER_DATA_LIMIT} bytes; serve fewer sites from this edge\n"
        )


def test_check_always_reports_the_size(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    size = user_data_size(config_with())
    result = runner.invoke(app, ["check", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert f"user_data: {size} of {USER_DATA_LIMIT} bytes" in result.stdout
    as_json = runner.invoke(app, ["check", "--config", str(path), "--json"])
    assert f"{size} of {USER_DATA_LIMIT} bytes" in as_json.stdout


def test_synth_refuses_before_writing_anything(tmp_path: Path) -> None:
    path = write_config(tmp_path, sites=_sites(80))
    out = tmp_path / "cdktf.out"
    result = runner.invoke(app, ["synth", "--config", str(path), "--out", str(out)])
    assert result.exit_code == 2
    assert "over DigitalOcean's limit of 65536 bytes" in result.stderr
    assert not out.exists()


def test_cdktf_entry_point_refuses_too(tmp_path: Path) -> None:
    path = write_config(tmp_path, sites=_sites(80))
    env = {**os.environ, "CDKTF_OUTDIR": str(tmp_path / "out"), "HOMELAB_TUNNEL_CONFIG": str(path)}
    done = subprocess.run(
        [sys.executable, "main.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert f"{path}: sites: the droplet's user_data would be" in done.stderr
    assert not (tmp_path / "out").exists()


def _without_docstrings(tree: ast.AST) -> str:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and len(body) >= (1 if isinstance(node, ast.Module) else 2)
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            del body[0]
    return ast.dump(tree)


def test_bundled_python_is_the_same_program_without_its_docs() -> None:
    """Docstrings, comments and blank lines go; every statement and literal stays."""
    package = ROOT / "homelab_tunnel"
    shipped = [f for f in fixed_files() if f.path.endswith(".py")]
    assert len(shipped) > 10
    for file in shipped:
        source = (package / file.path.split("/homelab_tunnel/", 1)[1]).read_text()
        assert len(file.content) < len(source)
        assert ast.dump(ast.parse(file.content)) == _without_docstrings(ast.parse(source))


def test_compacting_keeps_strings_and_code_on_comment_lines() -> None:
    source = (
        '"""Module doc."""\n'
        "\n"
        "# a comment line\n"
        "TEXT = '''first\n"
        "\n"
        "# not a comment\n"
        "'''\n"
        "\n"
        "\n"
        "def f() -> str:  # trailing comment\n"
        '    """Only the docstring: kept, the body needs it."""\n'
        "\n"
        "\n"
        "def g() -> str:\n"
        '    """Dropped."""\n'
        "    return '#' + TEXT  # a '#' in a string stays\n"
    )
    assert compact_python(source) == (
        "TEXT = '''first\n"
        "\n"
        "# not a comment\n"
        "'''\n"
        "def f() -> str:\n"
        '    """Only the docstring: kept, the body needs it."""\n'
        "def g() -> str:\n"
        "    return '#' + TEXT\n"
    )


def _bash_normal_form(script: str) -> str:
    """How bash itself reads `script`: its body as `declare -f` prints it (no comments)."""
    done = subprocess.run(
        ["bash", "-c", 'eval "edge_script() {\n$1\n}" && declare -f edge_script', "_", script],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout


def test_bundled_scripts_are_the_same_programs_for_bash() -> None:
    edge_files = ROOT / "homelab_tunnel/edge/files"
    shipped = {Path(f.path).name: f.content for f in fixed_files() if f.path.endswith(".sh")}
    assert len(shipped) >= 5
    for name, content in shipped.items():
        source = (edge_files / name).read_text()
        assert len(content) < len(source), name
        assert content.startswith("#!/usr/bin/env bash\n"), name
        assert _bash_normal_form(content) == _bash_normal_form(source), name


def test_the_bash_comparison_sees_a_dropped_line() -> None:
    source = "echo one\ncat <<EOF\n# kept: heredoc text\nEOF\necho two  # comment\n"
    assert _bash_normal_form(source) != _bash_normal_form(source.replace("echo two", ""))
    assert _bash_normal_form(source) != _bash_normal_form(source.replace("# kept", "kept"))


def test_compacting_a_script_keeps_heredoc_bodies() -> None:
    source = (
        "#!/usr/bin/env bash\n"
        "# comment\n"
        "\n"
        "cat >f <<'EOF'\n"
        "# Written by bootstrap: kept\n"
        "\n"
        "EOF\n"
        "  # indented comment\n"
        "echo $((1 << 2))  # kept: not a whole-line comment\n"
    )
    assert compact_shell(source) == (
        "#!/usr/bin/env bash\n"
        "cat >f <<'EOF'\n"
        "# Written by bootstrap: kept\n"
        "\n"
        "EOF\n"
        "echo $((1 << 2))  # kept: not a whole-line comment\n"
    )
