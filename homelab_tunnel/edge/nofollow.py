"""Files in Headscale's state directory, touched only through directory descriptors.

/var/lib/headscale belongs to the `headscale` user, and the backup and restore
run as root: a name there may be a link the user planted to a root-only
file, and a name checked a moment ago may be another file now. So nothing
here follows a link or resolves a path twice. Files are opened relative to an
open directory with O_NOFOLLOW and must be regular files with one link; new
files are written under a temporary name and renamed over the old name (a
rename replaces a link, it never writes through it), and their owner is set
on the open file (fchown), never by path.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Unsafe(Exception):
    """A name that is not a plain file (or directory) of its own: refused, with one line."""


@contextlib.contextmanager
def directory(path: Path) -> Iterator[int]:
    """An open descriptor of `path`, itself no link."""
    try:
        fd = os.open(path, DIRECTORY)
    except OSError as exc:
        raise Unsafe(f"{path} is not a directory of its own ({exc.strerror})") from None
    try:
        yield fd
    finally:
        os.close(fd)


def read(dir_fd: int, name: str, where: str = "") -> bytes | None:
    """The bytes of regular file `name` (None when absent); Unsafe for a link or anything else."""
    label = f"{where}/{name}" if where else name
    try:
        fd = os.open(name, READ, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == 40:  # ELOOP: the name is a symbolic link
            raise Unsafe(f"{label} is a symbolic link; refusing to read through it") from None
        raise Unsafe(f"cannot open {label}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        found = os.fstat(handle.fileno())
        if not stat.S_ISREG(found.st_mode):
            raise Unsafe(f"{label} is not a regular file; refusing to read it")
        if found.st_nlink != 1:
            raise Unsafe(f"{label} has {found.st_nlink} hard links; refusing to read it")
        return handle.read()


def exists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def owner(dir_fd: int) -> tuple[int, int]:
    found = os.fstat(dir_fd)
    return found.st_uid, found.st_gid


def write(dir_fd: int, name: str, data: bytes, *, mode: int, owner: tuple[int, int]) -> None:
    """`name` replaced by a new regular file holding `data`, owned by `owner`, atomically."""
    temporary = f".{name}.{secrets.token_hex(4)}.new"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | READ, mode, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fchown(handle.fileno(), *owner)
            os.fsync(handle.fileno())
        os.rename(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=dir_fd)
        raise


def move(src_fd: int, name: str, dst_fd: int, new_name: str | None = None) -> None:
    """Rename `name` (the entry itself, link or not) from one open directory to another."""
    os.rename(name, new_name or name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)


def subdirectory(dir_fd: int, name: str, mode: int = 0o700) -> int:
    """`name` in the open directory, created if missing; its descriptor (Unsafe if a link)."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, mode, dir_fd=dir_fd)
    try:
        return os.open(name, DIRECTORY, dir_fd=dir_fd)
    except OSError as exc:
        raise Unsafe(f"{name} is not a directory of its own ({exc.strerror})") from None


def unique_subdirectory(dir_fd: int, stem: str) -> tuple[int, str]:
    """A new directory `<stem>-<random>` no one else made: its descriptor and name."""
    while True:
        name = f"{stem}-{secrets.token_hex(3)}"
        try:
            os.mkdir(name, 0o700, dir_fd=dir_fd)
        except FileExistsError:
            continue
        return os.open(name, DIRECTORY, dir_fd=dir_fd), name
