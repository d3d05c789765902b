"""`init`: a first config from flags or from questions at a terminal, which `check` accepts."""

from __future__ import annotations

import os
import re
import sys
import tomllib
from pathlib import Path

import pytest
from support.config import ROOT
from support.terminal import Terminal
from typer.testing import CliRunner

from homelab_tunnel.cli import app
from homelab_tunnel.config import load_config

runner = CliRunner(env={"COLUMNS": "120", "NO_COLOR": "1"})
AGE_KEY = "age1qllq5y79pfkevgcwmywkhns8c4n9jxd80ts8m2ajktu5edma3vlq7creqp"
FLAGS = [
    "--name", "my-edge", "--region", "fra1", "--zone", "example.com",
    "--site", "blog.example.com=homelab:8080", "--site", "git.example.com=nas:3000:https",
]  # fmt: skip


def _check(path: Path) -> None:
    result = runner.invoke(app, ["check", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert f"ok: {path} is valid; version gate passed" in result.stdout


def test_flags_write_a_config_that_check_accepts(tmp_path: Path) -> None:
    out = tmp_path / "edge.toml"
    result = runner.invoke(app, ["init", "--out", str(out), *FLAGS])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == f"wrote {out}"
    _check(out)
    config = load_config(out)
    assert (config.name, config.region, config.dns.zone) == ("my-edge", "fra1", "example.com")
    assert config.headscale.domain == "headscale.example.com"
    assert config.headscale.base_domain == "tail.example.com"
    assert [(s.domain, s.upstream, s.port, s.scheme) for s in config.sites] == [
        ("blog.example.com", "homelab", 8080, "http"),
        ("git.example.com", "nas", 3000, "https"),
    ]
    assert not config.backup.enabled
    assert out.read_text().startswith("# homelab-tunnel: one file describes the whole edge.")


def test_backups_from_flags_pick_a_region_near_the_edge_but_not_its_own(tmp_path: Path) -> None:
    out = tmp_path / "edge.toml"
    result = runner.invoke(
        app, ["init", "--out", str(out), *FLAGS, "--backups", "--backup-recipient", AGE_KEY]
    )
    assert result.exit_code == 0, result.output
    _check(out)
    backup = load_config(out).backup
    assert (backup.enabled, backup.region, backup.recipients) == (True, "ams3", [AGE_KEY])


def test_backups_without_a_recipient_are_refused_without_a_terminal(tmp_path: Path) -> None:
    out = tmp_path / "edge.toml"
    result = runner.invoke(app, ["init", "--out", str(out), *FLAGS, "--backups"])
    assert result.exit_code == 2
    assert result.stderr == "init: --backup-recipient: required (no terminal to ask on)\n"
    assert not out.exists()


def test_every_commented_suggestion_is_valid_when_uncommented(tmp_path: Path) -> None:
    out = tmp_path / "edge.toml"
    assert runner.invoke(app, ["init", "--out", str(out), *FLAGS]).exit_code == 0
    suggestion = re.compile(r"# ([a-z_]+ = .*)")
    lines = out.read_text().splitlines()
    uncommented = [match[1] if (match := suggestion.fullmatch(line)) else line for line in lines]
    assert len([1 for a, b in zip(lines, uncommented, strict=True) if a != b]) >= 5
    opened = tmp_path / "opened.toml"
    text = "\n".join(uncommented).replace("enabled = false", "enabled = true")
    text = text.replace('"age1..."', f'"{AGE_KEY}"')
    opened.write_text(text)
    _check(opened)


def test_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "edge.toml"
    out.write_text("# mine\n")
    result = runner.invoke(app, ["init", "--out", str(out), *FLAGS])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{out}: exists already; init never overwrites a file")
    assert out.read_text() == "# mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edge.toml"]


def test_a_dangling_symlink_counts_as_existing(tmp_path: Path) -> None:
    out = tmp_path / "edge.toml"
    out.symlink_to(tmp_path / "elsewhere.toml")
    result = runner.invoke(app, ["init", "--out", str(out), *FLAGS])
    assert result.exit_code == 2
    assert not (tmp_path / "elsewhere.toml").exists()


BAD = {
    "name": ("--name", "My_edge"),
    "region": ("--region", "Frankfurt"),
    "dns": ("--zone", "example..com"),
}


def test_bad_flags_get_the_lines_check_prints_for_the_same_values(tmp_path: Path) -> None:
    out = tmp_path / "edge.toml"
    argv = ["init", "--out", str(out), *FLAGS]
    for flag, value in BAD.values():
        argv[argv.index(flag) + 1] = value
    result = runner.invoke(app, argv)
    assert result.exit_code == 2
    assert not out.exists()
    # The same values in a file, read by check.
    good = tmp_path / "good.toml"
    assert runner.invoke(app, ["init", "--out", str(good), *FLAGS]).exit_code == 0
    text = good.read_text()
    text = text.replace('name = "my-edge"', 'name = "My_edge"')
    text = text.replace('region = "fra1"', 'region = "Frankfurt"')
    text = text.replace('zone = "example.com"', 'zone = "example..com"')
    out.write_text(text)
    checked = runner.invoke(app, ["check", "--config", str(out)])
    assert checked.exit_code == 2
    assert result.stderr == checked.stderr
    assert len(result.stderr.splitlines()) == 3


def test_a_site_outside_the_zone_is_refused_as_check_refuses_it(tmp_path: Path) -> None:
    out = tmp_path / "edge.toml"
    result = runner.invoke(
        app, ["init", "--out", str(out), *FLAGS, "--site", "shop.example.org=homelab:80"]
    )
    assert result.exit_code == 2
    assert result.stderr == (
        f"{out}: sites.2.domain: 'shop.example.org' is outside the DNS zone 'example.com'\n"
    )


@pytest.mark.parametrize(
    "spec", ["blog.example.com", "blog.example.com=homelab", "a=b:1:ftp", "=homelab:80"]
)
def test_a_site_not_in_the_flag_form_is_refused(tmp_path: Path, spec: str) -> None:
    result = runner.invoke(app, ["init", "--out", str(tmp_path / "e.toml"), *FLAGS, "--site", spec])
    assert result.exit_code == 2
    assert result.stderr == (
        f"--site: {spec!r} is not DOMAIN=MACHINE:PORT[:https], e.g. blog.example.com=homelab:8080\n"
    )


def test_without_a_terminal_every_missing_flag_is_named(tmp_path: Path) -> None:
    out = tmp_path / "edge.toml"
    result = runner.invoke(app, ["init", "--out", str(out), "--zone", "example.com"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"init: {flag}: required (no terminal to ask on)"
        for flag in ("--name", "--region", "--site")
    ]
    assert not out.exists()


def test_no_backups_with_a_backup_flag_is_a_contradiction(tmp_path: Path) -> None:
    out = tmp_path / "edge.toml"
    result = runner.invoke(
        app, ["init", "--out", str(out), *FLAGS, "--no-backups", "--backup-region", "ams3"]
    )
    assert result.exit_code == 2
    assert "--no-backups: --backup-region and --backup-recipient need backups" in result.stderr


# ---------------------------------------------------------------------------
# At a terminal
# ---------------------------------------------------------------------------

CLI = Path(sys.executable).parent / "homelab-tunnel"


def _terminal(tmp_path: Path, *args: str) -> Terminal:
    if not CLI.exists():
        pytest.skip(f"{CLI} is not installed (`make` installs it)")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "COLUMNS": "100", "TERM": "dumb"}
    return Terminal([str(CLI), "init", *args], cwd=tmp_path, env=env, timeout=30)


def test_questions_at_a_terminal_re_ask_with_checks_line_and_write_what_check_accepts(
    tmp_path: Path,
) -> None:
    out = tmp_path / "edge.toml"
    with _terminal(tmp_path, "--out", "edge.toml") as term:
        term.answer("Stack name", "My_Edge")
        refused = term.answer("Stack name", "")  # the default: homelab-edge
        assert "edge.toml: name: 'My_Edge' is not a valid name: 2-40 characters" in refused
        term.answer("DigitalOcean region", "fra1")
        term.answer("DNS zone", "example.com")
        term.answer("Headscale's public name [headscale.example.com]", "")
        term.answer("MagicDNS domain [tail.example.com]", "")
        term.answer("Site 1: public domain", "blog.example.org")
        refused = term.answer("Site 1: public domain", "blog.example.com")
        assert "edge.toml: sites.0.domain: 'blog.example.org' is outside the DNS zone" in refused
        term.answer("serves it [homelab]", "")
        term.answer("port on that machine", "http")
        refused = term.answer("port on that machine", "8080")
        assert "edge.toml: sites.0.port: must be a whole number" in refused
        term.answer("HTTPS itself?", "n")
        term.answer("Add another site?", "y")
        term.answer("Site 2: public domain", "blog.example.com")
        refused = term.answer("Site 2: public domain", "git.example.com")
        assert "edge.toml: sites.1.domain: 'blog.example.com' is already used by sites.0" in refused
        term.answer("serves it [homelab]", "nas")
        term.answer("port on that machine", "3000")
        term.answer("HTTPS itself?", "y")
        term.answer("Add another site?", "")
        term.answer("Email for alerts", "ops@example.com")
        term.answer("Spaces bucket", "")  # yes, the default
        term.answer("Spaces region of the backups [ams3]", "nyc1")
        refused = term.answer("Spaces region of the backups [ams3]", "sgp1")
        assert "edge.toml: backup.region: 'nyc1' is not a region with Spaces" in refused
        term.answer("age public key", "age1nope")
        refused = term.answer("age public key", AGE_KEY)
        assert "edge.toml: backup.recipients.0: 'age1nope' is not an age recipient" in refused
        assert term.wait() == 0, term.screen
    assert "wrote edge.toml" in term.screen
    _check(out)
    config = load_config(out)
    assert config.name == "homelab-edge"
    assert [(s.domain, s.upstream, s.port, s.scheme) for s in config.sites] == [
        ("blog.example.com", "homelab", 8080, "http"),
        ("git.example.com", "nas", 3000, "https"),
    ]
    assert config.alert_email == "ops@example.com"
    assert (config.backup.enabled, config.backup.region) == (True, "sgp1")


def test_a_terminal_is_asked_only_what_the_flags_left_out(tmp_path: Path) -> None:
    with _terminal(tmp_path, "--name", "my-edge", "--region", "nyc3", "--no-backups") as term:
        first = term.answer("DNS zone", "example.net")
        assert "Stack name" not in first and "region" not in first
        term.answer("Headscale's public name", "hs.example.net")
        term.answer("MagicDNS domain", "")
        term.answer("Site 1: public domain", "example.net")
        term.answer("serves it", "")
        term.answer("port on that machine", "443")
        term.answer("HTTPS itself?", "y")
        term.answer("Add another site?", "n")
        term.answer("Email for alerts", "")
        assert term.wait() == 0, term.screen
    assert "Spaces bucket" not in term.screen
    written = tomllib.loads((tmp_path / "homelab-tunnel.toml").read_text())
    assert written["headscale"] == {
        "domain": "hs.example.net",
        "base_domain": "tail.example.net",
        "derp_urls": [],
    }
    assert written["region"] == "nyc3" and written["backup"]["enabled"] is False
    _check(tmp_path / "homelab-tunnel.toml")


def test_a_terminal_never_gets_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "homelab-tunnel.toml").write_text("# mine\n")
    with _terminal(tmp_path) as term:
        assert term.wait() == 2
    assert "homelab-tunnel.toml: exists already" in term.screen
    assert "Stack name" not in term.screen  # refused before the first question
    assert (tmp_path / "homelab-tunnel.toml").read_text() == "# mine\n"


def test_the_written_file_is_what_the_example_documents(tmp_path: Path) -> None:
    """Every key init writes is one the example config documents too, in the same sections."""
    out = tmp_path / "edge.toml"
    assert runner.invoke(app, ["init", "--out", str(out), *FLAGS]).exit_code == 0
    written = tomllib.loads(out.read_text())
    example = tomllib.loads((ROOT / "examples" / "homelab-tunnel.toml").read_text())
    for key, value in written.items():
        assert key in example, key
        if isinstance(value, dict):
            assert set(value) <= set(example[key]), key
