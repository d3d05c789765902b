"""user_data's size is known, and checked against DigitalOcean's limit, before apply."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path
from typing import Any

from support.config import ROOT, config_with, write_config
from typer.testing import CliRunner

from homelab_tunnel.cli import app
from homelab_tunnel.config.values import MAX_PEM_BYTES
from homelab_tunnel.payload import USER_DATA_LIMIT, fixed_files, user_data, user_data_size
from homelab_tunnel.render.compact import compact_python, compact_shell
from homelab_tunnel.render.secrets import SECRETS, fill

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


ROOT_PEM = (ROOT / "tests" / "data" / "tls" / "test-root.pem").read_text()
# A private CA with a few roots.
PEM_ROOT = ROOT_PEM * 4
# Every switch that adds to user_data on: backups, a private CA with its roots
# at their largest, DERP maps, egress, IPv6, a checksum pin.
EVERYTHING_ON = {
    "reserved_ipv6": True,
    "egress_via_reserved_ip": True,
    "headscale": {
        "domain": "headscale.example.com",
        "base_domain": "tail.example.net",
        "deb_sha256": "0" * 64,
        "derp_urls": ["https://derp.example.com/derpmap/default"],
    },
    "tls": {
        "acme_ca": "https://acme.example.com/directory",
        "caa_issuer": "acme.example.com",
        "ca_roots": PEM_ROOT,
    },
}
USER_DATA_BUDGET = 32 * 1024


def test_user_data_stays_within_its_budget_with_every_feature_on() -> None:
    assert user_data_size(config_with(**EVERYTHING_ON)) <= USER_DATA_BUDGET


def test_the_most_roots_tls_ca_roots_takes_still_fit() -> None:
    most = ROOT_PEM * (MAX_PEM_BYTES // len(ROOT_PEM))
    tls = {**EVERYTHING_ON["tls"], "ca_roots": most}  # type: ignore[dict-item]
    assert user_data_size(config_with(**{**EVERYTHING_ON, "tls": tls})) <= USER_DATA_LIMIT


def test_the_number_of_sites_no_longer_changes_user_data() -> None:
    """Sites travel in the config object: 500 of them cost user_data nothing."""
    assert user_data(config_with(sites=_sites(500))) == user_data(config_with(sites=_sites(1)))


def test_check_takes_500_sites(tmp_path: Path) -> None:
    path = write_config(tmp_path, sites=_sites(500))
    result = runner.invoke(app, ["check", "--config", str(path)])
    assert result.exit_code == 0, result.output


def test_check_refuses_user_data_over_the_limit(tmp_path: Path) -> None:
    """Only the DERP map list and the CA roots reach user_data; too many maps are refused."""
    urls = [f"https://derp-{index:04}.example.com/derpmap/default" for index in range(1500)]
    headscale = {**EVERYTHING_ON["headscale"], "deb_sha256": None, "derp_urls": urls}  # type: ignore[dict-item]
    path = write_config(tmp_path, headscale=headscale)
    size = user_data_size(config_with(headscale=headscale))
    assert size > USER_DATA_LIMIT
    result = runner.invoke(app, ["check", "--config", str(path)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"{path}: headscale.derp_urls: the droplet's user_data would be {size} bytes, over "
        f"DigitalOcean's limit of {USER_DATA_LIMIT} bytes; list fewer DERP maps (and "
        "tls.ca_roots), the only inputs whose size reaches user_data\n"
    )
    out = tmp_path / "cdktf.out"
    synth = runner.invoke(app, ["synth", "--config", str(path), "--out", str(out)])
    assert synth.exit_code == 2
    assert not out.exists()


def test_check_always_reports_the_size(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    size = user_data_size(config_with())
    result = runner.invoke(app, ["check", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert f"user_data: {size} of {USER_DATA_LIMIT} bytes" in result.stdout
    as_json = runner.invoke(app, ["check", "--config", str(path), "--json"])
    assert f"{size} of {USER_DATA_LIMIT} bytes" in as_json.stdout


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
    shipped = {
        f.path.split("/homelab-tunnel/", 1)[1]: f.content
        for f in fixed_files()
        if f.path.endswith(".sh")
    }
    assert len(shipped) >= 6
    for name, content in shipped.items():
        source = (edge_files / name).read_text()
        assert len(content) < len(source), name
        # Steps and helpers are sourced by bootstrap.sh; the metadata guard is cloud-init's sh.
        if not name.startswith("steps/") and name not in ("metadata-guard.sh", "helpers.sh"):
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
