"""`homelab-tunnel plan-summary` as CI runs it: formats, exit codes, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.plans import plan_path
from typer.testing import CliRunner

from homelab_tunnel.cli import app

runner = CliRunner(env={"COLUMNS": "120", "NO_COLOR": "1"})
DOWNTIME = (
    "downtime: the sites go down while this applies, or something the edge relies on is removed"
)


def _run(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, ["plan-summary", *args], input=stdin)
    return result.exit_code, result.stdout, result.stderr


# Exit code of each recorded plan under each --fail-on threshold.
EXIT_CODES = {
    "create": {"data-loss": 0, "address-change": 0, "downtime": 0},
    "noop": {"data-loss": 0, "address-change": 0, "downtime": 0},
    "firewall-in-place": {"data-loss": 0, "address-change": 0, "downtime": 0},
    "user-data-change": {"data-loss": 0, "address-change": 0, "downtime": 1},
    "site-removed": {"data-loss": 0, "address-change": 1, "downtime": 1},
    "volume-removed": {"data-loss": 1, "address-change": 1, "downtime": 1},
}


@pytest.mark.parametrize(
    ("name", "threshold", "code"),
    [
        (name, threshold, code)
        for name, codes in EXIT_CODES.items()
        for threshold, code in codes.items()
    ],
)
def test_fail_on_exit_code_per_recorded_plan(name: str, threshold: str, code: int) -> None:
    exit_code, stdout, stderr = _run(str(plan_path(name)), "--fail-on", threshold)
    assert exit_code == code, stdout + stderr
    assert stdout.startswith(f"{plan_path(name)}: Terraform 1.11.4 plan")
    refusal = stdout.splitlines()[-1]
    assert refusal.endswith(f"(--fail-on {threshold})") is bool(code), refusal
    assert stderr == ""


@pytest.mark.parametrize(("name", "code"), [("volume-removed", 1), ("site-removed", 0)])
def test_fail_on_data_loss_is_the_short_form(name: str, code: int) -> None:
    exit_code, stdout, _ = _run(str(plan_path(name)), "--fail-on-data-loss")
    assert exit_code == code
    assert ("refusing a data loss change (--fail-on data-loss)" in stdout) is bool(code)


def test_without_fail_on_a_data_loss_plan_is_reported_not_refused() -> None:
    exit_code, stdout, _ = _run(str(plan_path("volume-removed")))
    assert exit_code == 0
    assert "verdict: DATA LOSS" in stdout


def test_the_stricter_of_two_thresholds_wins() -> None:
    exit_code, stdout, _ = _run(
        str(plan_path("site-removed")), "--fail-on-data-loss", "--fail-on", "address-change"
    )
    assert exit_code == 1
    assert stdout.splitlines()[-1].endswith("(--fail-on address-change)")


def test_text_lists_each_change_with_its_forcing_attribute() -> None:
    _, stdout, _ = _run(str(plan_path("user-data-change")))
    lines = stdout.splitlines()
    assert lines[1] == f"verdict: {DOWNTIME}"
    assert lines[2] == "0 to create, 1 to update, 2 to replace, 0 to delete"
    droplet = next(line for line in lines if "digitalocean_droplet.edge" in line)
    assert droplet.split() == [
        "downtime",
        "replace",
        "digitalocean_droplet.edge",
        "(user_data",
        "changed)",
    ]
    assert "what will happen:" in lines


def test_markdown_is_a_pr_comment_with_verdict_table_and_warnings() -> None:
    exit_code, stdout, _ = _run(str(plan_path("user-data-change")), "--format", "markdown")
    assert exit_code == 0
    lines = stdout.splitlines()
    assert lines[0] == f"### ⏳ Terraform plan: {DOWNTIME}"
    assert (
        "- **downtime** `digitalocean_droplet.edge`: droplet replaced because user_data "
        "changed: the sites are down until the new droplet boots (~3-5 min); state survives "
        "on the volume"
    ) in lines
    rows = [line for line in lines if line.startswith("| ") and "`digitalocean_" in line]
    assert rows == [
        "| **downtime** | replace | `digitalocean_droplet.edge` | forced by `user_data` |",
        "| **downtime** | replace | `digitalocean_reserved_ip_assignment.edge` "
        "| forced by `droplet_id` |",
        "| safe | update | `digitalocean_firewall.edge` |  |",
    ]


def test_markdown_of_a_noop_plan_says_nothing_changes() -> None:
    _, stdout, _ = _run(str(plan_path("noop")), "--format", "markdown")
    assert stdout.splitlines()[0] == (
        "### ✅ Terraform plan: no changes: the edge already matches the configuration"
    )
    assert "| danger |" not in stdout


def test_json_format_carries_counts_classes_and_paths() -> None:
    _, stdout, _ = _run(str(plan_path("user-data-change")), "--format", "json")
    document = json.loads(stdout)
    assert document["verdict"] == "downtime"
    assert document["counts"] == {
        "create": 0,
        "update": 1,
        "replace": 2,
        "delete": 0,
        "forget": 0,
    }
    assert [(c["address"], c["danger"], c["replace_paths"]) for c in document["changes"]] == [
        ("digitalocean_droplet.edge", "downtime", ["user_data"]),
        ("digitalocean_reserved_ip_assignment.edge", "downtime", ["droplet_id"]),
        ("digitalocean_firewall.edge", "safe", []),
    ]


def test_dash_reads_the_plan_from_stdin() -> None:
    exit_code, stdout, stderr = _run(
        "-", "--fail-on-data-loss", stdin=plan_path("volume-removed").read_bytes()
    )
    assert exit_code == 1
    assert stdout.startswith("<stdin>: Terraform 1.11.4 plan")
    assert stdout.splitlines()[-1].startswith("<stdin>: refusing a data loss change")
    assert stderr == ""


def test_utf16_output_of_powershell_redirection_is_read(tmp_path: Path) -> None:
    converted = tmp_path / "plan.json"
    converted.write_text(plan_path("site-removed").read_text(), encoding="utf-16")
    exit_code, stdout, _ = _run(str(converted), "--fail-on", "address-change")
    assert exit_code == 1
    assert "app.example.com (A) deleted" in stdout


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"{not json", "not valid JSON (Expecting property name"),
        (b'{"format_version": "1.0", "values": {}}', "this is state"),
        (b'{"format_version": "0.9", "planned_values": {}}', "format_version '0.9'"),
        (b"\xff\xfeA\x00\x00\xd8", "not UTF-8 text"),
    ],
    ids=["malformed", "state", "old-format", "undecodable"],
)
def test_bad_input_exits_2_naming_the_file(tmp_path: Path, content: bytes, problem: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    exit_code, stdout, stderr = _run(str(bad), "--fail-on-data-loss")
    assert exit_code == 2
    assert stdout == ""
    assert stderr.startswith(f"{bad}: {problem}")
    assert "expected the output of `terraform show -json PLANFILE`" in stderr
    assert "Traceback" not in stderr


def test_missing_file_exits_2(tmp_path: Path) -> None:
    exit_code, _, stderr = _run(str(tmp_path / "absent.json"))
    assert exit_code == 2
    assert stderr.startswith(f"{tmp_path / 'absent.json'}: no such file")


def test_unknown_fail_on_class_is_a_usage_error() -> None:
    exit_code, _, stderr = _run(str(plan_path("noop")), "--fail-on", "everything")
    assert exit_code == 2
    allowed = " ".join(stderr.replace("│", " ").split())
    assert "'data-loss', 'address-change', 'exposure', 'downtime'" in allowed


@pytest.mark.parametrize("output_format", ["text", "markdown", "json"])
def test_the_backup_keys_secret_never_reaches_a_pr_comment(
    tmp_path: Path, output_format: str
) -> None:
    """`terraform show -json` holds sensitive values in clear; plan-summary never echoes values."""
    secret = "SPACES-SECRET-dQw4w9WgXcQ"
    document = json.loads(plan_path("user-data-change").read_text())
    document["resource_changes"].append(
        {
            "address": "digitalocean_spaces_key.backup",
            "mode": "managed",
            "type": "digitalocean_spaces_key",
            "name": "backup",
            "change": {
                "actions": ["create"],
                "before": None,
                "after": {"name": "homelab-edge-backup", "secret_key": secret, "access_key": "AK1"},
                "after_unknown": {},
                "after_sensitive": {"secret_key": True},
            },
        }
    )
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(document))
    exit_code, stdout, stderr = _run(str(plan), "--format", output_format)
    assert exit_code == 0, stderr
    assert "digitalocean_spaces_key.backup" in stdout
    assert secret not in stdout + stderr
