"""The one reader of "a file, or `-` for standard input".

Config files, plan JSON, status and whois JSON and journal text all arrive
this way; reading them in one place keeps every message the same and every
failure an `InputError` naming the source (exit 2), never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

from homelab_tunnel.errors import InputError

STDIN = "-"


def label(source: str) -> str:
    """How messages name the input: the path, or `<stdin>`."""
    return "<stdin>" if source == STDIN else source


def read_bytes(source: str, *, expected: str = "") -> bytes:
    """The raw bytes of a file, or of stdin for `-`."""
    hint = f"; {expected}" if expected else ""
    if source == STDIN:
        stream = getattr(sys.stdin, "buffer", None)
        if stream is None or sys.stdin.closed:
            raise InputError(label(source), [f"standard input is closed{hint}"])
        try:
            data: bytes = stream.read()
        except OSError as exc:
            raise InputError(label(source), [f"cannot read: {exc.strerror or exc}"]) from None
        return data
    try:
        return Path(source).read_bytes()
    except FileNotFoundError:
        raise InputError(source, [f"no such file{hint}"]) from None
    except IsADirectoryError:
        raise InputError(source, [f"is a directory, not a file{hint}"]) from None
    except OSError as exc:
        raise InputError(source, [f"cannot read: {exc.strerror or exc}"]) from None


def decode(data: bytes, source: str, *, expected: str = "", lenient: bool = False) -> str:
    """UTF-8 text; a byte order mark (UTF-8, or UTF-16 as PowerShell's `>` writes) is fine.

    `lenient` replaces undecodable bytes instead of refusing the input: for
    logs, where one odd byte must not hide the lines around it.
    """
    encoding = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        return data.decode(encoding, errors="replace" if lenient else "strict")
    except UnicodeDecodeError as exc:
        hint = f"; {expected}" if expected else ""
        raise InputError(
            label(source), [f"not UTF-8 text (byte {exc.start} cannot be decoded){hint}"]
        ) from None


def read_text(source: str, *, expected: str = "", lenient: bool = False) -> str:
    """A file's text, or stdin's for `-`; unreadable or undecodable input names the source."""
    data = read_bytes(source, expected=expected)
    return decode(data, source, expected=expected, lenient=lenient)
