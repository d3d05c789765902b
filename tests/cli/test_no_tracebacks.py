"""No tracebacks, ever: awkward inputs and environments, through the real command in a process.

Each case runs `homelab-tunnel` as a user would (a fresh process, real file
descriptors: a closed stdin is really closed) and expects the documented
exit code, one line per problem on stderr, and no traceback.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.config import DATA, EXAMPLE

TAILSCALE = DATA / "tailscale"
HEADSCALE = DATA / "headscale"
PLAN = DATA / "plans" / "noop.json"
CLI = [sys.executable, "-c", "from homelab_tunnel.cli import main; main()"]


@dataclass(frozen=True)
class Case:
    args: list[str]
    exit_code: int
    says: str = ""  # expected in stdout + stderr
    stdin: str | None = "closed"  # "closed", None (inherit nothing: /dev/null), or text


def _run(case: Case, cwd: Path) -> subprocess.CompletedProcess[str]:
    # A closed fd 0 exactly as `<&-` leaves it: the child starts without stdin.
    stdin_options: dict[str, object] = {}
    if case.stdin == "closed":
        stdin_options["pass_fds"] = ()
        stdin_options["preexec_fn"] = lambda: os.close(0)
    elif case.stdin is None:
        stdin_options["stdin"] = subprocess.DEVNULL
    else:
        stdin_options["input"] = case.stdin
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "DIGITALOCEAN_TOKEN": "dop_v1_x"}
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [*CLI, *case.args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
        check=False, **stdin_options,
    )  # fmt: skip


def _deep(kind: str) -> str:
    return "[" * 100_000 if kind == "list" else '{"a":' * 100_000


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """Inputs the cases refer to by name, in the working directory."""
    (tmp_path / "deep-list.json").write_text(_deep("list"))
    (tmp_path / "deep-object.json").write_text(_deep("object"))
    (tmp_path / "latin1.toml").write_bytes(
        EXAMPLE.read_bytes().replace(b"homelab-edge", b"\xe9dge")
    )
    (tmp_path / "bom.toml").write_bytes(b"\xef\xbb\xbf" + EXAMPLE.read_bytes())
    (tmp_path / "bom16.toml").write_bytes(EXAMPLE.read_text().encode("utf-16"))
    (tmp_path / "bom-status.json").write_bytes(
        b"\xef\xbb\xbf" + (TAILSCALE / "status-direct.json").read_bytes()
    )
    (tmp_path / "bom-plan.json").write_bytes(b"\xef\xbb\xbf" + PLAN.read_bytes())
    (tmp_path / "journal.log").write_bytes(
        b"\x80\xff odd\n" + (HEADSCALE / "journal-0.29-text.log").read_bytes()
    )
    return tmp_path


STATUS = str(TAILSCALE / "status-direct.json")
CASES: dict[str, Case] = {
    "plan-summary: a file, stdin closed": Case(["plan-summary", str(PLAN)], 0, "no changes"),
    "plan-summary: -, stdin closed": Case(["plan-summary", "-"], 2, "<stdin>: standard input is closed"),
    "check: stdin closed": Case(["check", "--config", str(EXAMPLE)], 0, "is valid"),
    "doctor: a file, stdin closed": Case(["doctor", "--status", STATUS], 0, "no site upstreams"),
    "doctor: -, stdin closed": Case(["doctor", "--status", "-"], 2, "standard input is closed"),
    "plan-summary: deep list": Case(["plan-summary", "deep-list.json"], 2, "deep-list.json: JSON nested too deeply"),
    "plan-summary: deep object": Case(["plan-summary", "deep-object.json"], 2, "nested too deeply"),
    "plan-summary: deep on stdin": Case(["plan-summary", "-"], 2, "<stdin>: JSON nested too deeply", _deep("list")),
    "doctor: deep status": Case(["doctor", "--status", "deep-object.json"], 2, "deep-object.json: not `tailscale status --json` output (JSON nested too deeply)"),
    "doctor: deep status on stdin": Case(["doctor", "--status", "-"], 2, "<stdin>: not `tailscale status", _deep("list")),
    "doctor: deep whois": Case(["doctor", "--status", STATUS, "--whois", "deep-list.json"], 2, "deep-list.json: not `tailscale whois --json` output (nested too deeply)"),
    "doctor: journal with non-UTF-8 bytes": Case(["doctor", "--config", str(EXAMPLE), "--status", STATUS, "--journal", "journal.log"], 1, "Headscale rejected Tailscale 1.36"),
    "check: config not UTF-8": Case(["check", "--config", "latin1.toml"], 2, "latin1.toml: not UTF-8 text (byte"),
    "check: config with a UTF-8 BOM": Case(["check", "--config", "bom.toml"], 0, "bom.toml is valid"),
    "check: config in UTF-16 with BOM": Case(["check", "--config", "bom16.toml"], 0, "bom16.toml is valid"),
    "doctor: status with a BOM": Case(["doctor", "--status", "bom-status.json"], 0, "note: no site upstreams"),
    "plan-summary: plan with a BOM": Case(["plan-summary", "bom-plan.json"], 0, "no changes"),
    "synth: --out under /proc": Case(["synth", "--config", str(EXAMPLE), "--out", "/proc/homelab-out"], 2, "--out: cannot write '/proc/homelab-out'"),
    "synth: --out through a file": Case(["synth", "--config", str(EXAMPLE), "--out", "bom.toml/out"], 2, "which is a file, not a directory"),
    "backups restore: --at before year 1 in UTC": Case(["backups", "restore", "--ssh", "root@203.0.113.10", "--at", "0001-01-01T00:00:00+01:00"], 2, "--at: '0001-01-01T00:00:00+01:00' is outside the years 1 to 9999 in UTC"),
    "backups restore: --at after 9999 in UTC": Case(["backups", "restore", "--ssh", "root@203.0.113.10", "--at", "9999-12-31T23:59:59-01:00"], 2, "is outside the years 1 to 9999"),
    "preflight: unclosed IPv6 bracket": Case(["preflight", "--config", str(EXAMPLE), "--api-url", "https://[::1"], 2, "--api-url: 'https://[::1' is not an https:// URL"),
    "init: stdin closed, a flag missing": Case(["init", "--out", "e.toml", "--name", "a1", "--region", "fra1", "--zone", "example.com"], 2, "init: --site: required (no terminal to ask on)"),
    "init: --out under /proc": Case(["init", "--out", "/proc/e.toml", "--name", "a1", "--region", "fra1", "--zone", "example.com", "--site", "example.com=nas:80"], 2, "/proc/e.toml: cannot write"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_awkward_input_gets_an_answer_not_a_traceback(files: Path, case: Case) -> None:
    done = _run(case, files)
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    assert done.returncode == case.exit_code, output
    assert case.says in output
    if case.exit_code == 2:
        assert len(done.stderr.splitlines()) == 1, done.stderr


# ---------------------------------------------------------------------------
# Rich markup and emoji codes in paths and names print literally
# ---------------------------------------------------------------------------

ODD_FOLDERS = ["[red]x[", "]", "[bold", ":thumbs_up:", "a\\"]  # "[red]x[/][bold/..."


@pytest.fixture
def odd_config(tmp_path: Path) -> Path:
    folder = tmp_path.joinpath(*ODD_FOLDERS)
    folder.mkdir(parents=True)
    config = folder / "[b]:smile:.toml"
    shutil.copy(EXAMPLE, config)
    return config


MARKUP_CASES: dict[str, Callable[[Path], list[str]]] = {
    "check": lambda c: ["check", "--config", str(c)],
    "check --json": lambda c: ["check", "--config", str(c), "--json"],
    "synth": lambda c: ["synth", "--config", str(c), "--out", str(c.parent / "[out]:x:")],
    "join-command": lambda c: ["join-command", "--config", str(c)],
    "doctor": lambda c: ["doctor", "--status", STATUS, "--upstream", str(c.parent)],
    "missing config": lambda c: ["check", "--config", str(c.parent / "[red]gone[/].toml")],
    "plan-summary": lambda c: ["plan-summary", str(c)],
}


@pytest.mark.parametrize("argv", list(MARKUP_CASES.values()), ids=list(MARKUP_CASES))
def test_markup_in_paths_prints_literally(
    odd_config: Path, argv: Callable[[Path], list[str]]
) -> None:
    done = _run(Case(argv(odd_config), -1), odd_config.parent)
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    assert done.returncode in (0, 1, 2), output
    shown = str(odd_config.parent)
    if argv(odd_config)[-1].endswith(".json") or "--json" in argv(odd_config):
        shown = json.dumps(shown)[1:-1]
    assert shown in output, output
    assert "\N{THUMBS UP SIGN}" not in output and "\N{SMILING FACE WITH OPEN MOUTH}" not in output


def test_negative_twin_rich_would_turn_the_codes_into_emoji() -> None:
    from rich.console import Console

    console = Console(record=True, width=200, file=io.StringIO())
    console.print(":thumbs_up:")
    assert "\N{THUMBS UP SIGN}" in console.export_text()


# ---------------------------------------------------------------------------
# Escape sequences from the tailnet print escaped
# ---------------------------------------------------------------------------

# Clear the screen, retitle the terminal, forge a line: a peer names itself.
HOSTILE_NAME = "evil\x1b[2J\x1b]0;pwned\x07\nok: all direct"


@pytest.mark.parametrize("json_output", [False, True], ids=["table", "json"])
def test_a_peer_name_with_escape_sequences_cannot_drive_the_terminal(
    tmp_path: Path, json_output: bool
) -> None:
    status = json.loads((TAILSCALE / "status-direct.json").read_text())
    [peer] = status["Peer"].values()
    peer["HostName"] = HOSTILE_NAME
    peer["DNSName"] = f"{HOSTILE_NAME}.tail.example.net."
    (tmp_path / "status.json").write_text(json.dumps(status))
    argv = ["doctor", "--status", "status.json", "--upstream", "100.64.0.2"]
    done = _run(Case([*argv, "--json"] if json_output else argv, 0), tmp_path)
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    assert "\x1b" not in output and "\x07" not in output
    assert not any(line.startswith("ok: all direct") for line in output.splitlines())
    if json_output:
        [node] = [n for n in json.loads(done.stdout)["nodes"] if n["name"].startswith("evil")]
        assert node["name"].startswith(HOSTILE_NAME)  # the data itself is kept, JSON-escaped
    else:
        assert "evil\\x1b[2J" in output  # shown, escaped


def test_negative_twin_rich_passes_an_escape_sequence_through() -> None:
    from rich.console import Console

    buffer = io.StringIO()
    Console(file=buffer, width=200).print("evil\x1b[2J")
    assert "\x1b[2J" in buffer.getvalue()


# ---------------------------------------------------------------------------
# An --out synth cannot write is refused before cdktf starts (seconds sooner)
# ---------------------------------------------------------------------------

_SAYS_IF_CDKTF_LOADED = (
    "import atexit, sys; atexit.register(lambda: print('cdktf loaded:', 'cdktf' in sys.modules, "
    "file=sys.stderr)); from homelab_tunnel.cli import main; main()"
)


@pytest.mark.parametrize(
    ("out", "exit_code", "loaded"),
    [("/proc/homelab-out", 2, False), ("out", 0, True)],  # the twin: a writable one synthesizes
    ids=["unwritable", "writable"],
)
def test_an_unwritable_out_is_refused_before_cdktf_is_imported(
    tmp_path: Path, out: str, exit_code: int, loaded: bool
) -> None:
    shutil.copy(EXAMPLE, tmp_path / "edge.toml")
    argv = ["synth", "--config", "edge.toml", "--out", out]
    done = subprocess.run(
        [sys.executable, "-c", _SAYS_IF_CDKTF_LOADED, *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == exit_code, done.stderr
    assert f"cdktf loaded: {loaded}" in done.stderr
