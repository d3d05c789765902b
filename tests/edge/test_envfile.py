"""The one parser of backup.env: systemd's reading of the lines homelab-tunnel writes.

The same file is compared with a real systemd's EnvironmentFile= in
tests/lab/test_real_systemd.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from homelab_tunnel.edge.envfile import EnvFileError, parse

# What render/backup.py writes, with the values that have tripped parsers: a base64
# secret ending in '=', blanks inside a value (the recipients), blanks around one.
TEXT = (
    "# Read by the backup and restore steps\n"
    "; a comment too\n"
    "\n"
    "BACKUP_SECRET_ACCESS_KEY=abc+/def=\n"
    "BACKUP_RECIPIENTS=age1one age1two\n"
    "  BACKUP_PREFIX =  homelab-edge  \n"
    "BACKUP_EMPTY=\n"
)
EXPECTED = {
    "BACKUP_SECRET_ACCESS_KEY": "abc+/def=",
    "BACKUP_RECIPIENTS": "age1one age1two",
    "BACKUP_PREFIX": "homelab-edge",
    "BACKUP_EMPTY": "",
}


def test_values_are_read_as_systemd_reads_them() -> None:
    assert parse(TEXT) == EXPECTED


def test_bash_read_drops_the_trailing_equals_sign_the_parser_keeps() -> None:
    """The old reader (`IFS='=' read -r name value`) lost it: the twin of the test above."""
    done = subprocess.run(
        ["bash", "-c", "IFS='=' read -r name value <<<\"$1\"; printf '%s' \"$value\"", "_",
         "BACKUP_SECRET_ACCESS_KEY=abc+/def="],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert done.stdout == "abc+/def"
    assert parse("BACKUP_SECRET_ACCESS_KEY=abc+/def=\n")["BACKUP_SECRET_ACCESS_KEY"] == "abc+/def="


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("KEY='quoted'", "KEY holds a quote or a backslash, which systemd unescapes"),
        ('KEY="quoted"', "KEY holds a quote or a backslash, which systemd unescapes"),
        ("KEY=back\\slash", "KEY holds a quote or a backslash, which systemd unescapes"),
        ("no equals sign", "not a KEY=value line"),
        ("1KEY=x", "not a KEY=value line"),
    ],
)
def test_lines_outside_the_subset_are_refused_with_their_place(line: str, why: str) -> None:
    with pytest.raises(EnvFileError) as raised:
        parse(f"# first\n{line}\n", "backup.env")
    assert str(raised.value) == f"backup.env:2: {why}"


def _export(path: Path, *names: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "homelab_tunnel.edge.envfile", "export", str(path), *names],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_bash_gets_the_exact_values_through_export(tmp_path: Path) -> None:
    path = tmp_path / "backup.env"
    path.write_text(TEXT)
    exports = _export(path, "BACKUP_SECRET_ACCESS_KEY", "BACKUP_RECIPIENTS")
    assert exports.returncode == 0, exports.stderr
    shown = subprocess.run(
        ["bash", "-c", 'eval "$1"; printf "%s|%s" "$BACKUP_SECRET_ACCESS_KEY" "$BACKUP_RECIPIENTS"',
         "_", exports.stdout],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert shown.stdout == "abc+/def=|age1one age1two"
    assert "BACKUP_PREFIX" not in exports.stdout  # only what was asked for


def test_export_of_a_missing_name_or_file_is_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "backup.env"
    path.write_text(TEXT)
    missing = _export(path, "BACKUP_BUCKET")
    assert (missing.returncode, missing.stderr) == (2, "envfile: not set: BACKUP_BUCKET\n")
    absent = _export(tmp_path / "absent.env")
    assert absent.returncode == 2
    assert absent.stderr.startswith(f"envfile: cannot read {tmp_path / 'absent.env'}: ")
