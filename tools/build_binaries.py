"""Build the Go programs the tests run (tools/binaries.toml) once, into a cache outside the clone.

Each entry is built in a scratch module that requires it (`go get` at the
pinned version, `go mod tidy`, `go install`): unlike `go install module@version`
this works for modules whose version list the proxy refuses to show, and it
keeps the entry's own dependency versions. An entry with `own_module = true`
is built inside a copy of its own module instead (`go mod download`, then
`go build` there), so the `replace` directives of its go.mod apply, which a
requiring module ignores. A failure leaves `FAILED` beside the cache folder
with the go command's last line, which the tests quote when they skip;
nothing else stops `make test`. Entries with `bench = true` are built only
when named (`make bench` names them).

    python tools/build_binaries.py [NAME ...]    # default: every entry but bench ones
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

PINS = Path(__file__).resolve().parent / "binaries.toml"
BUILD_TIMEOUT = 30 * 60


@dataclass(frozen=True)
class Program:
    name: str
    module: str
    version: str
    commands: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    own_module: bool = False
    bench: bool = False

    @property
    def folder(self) -> Path:
        escaped = self.module.replace("/", "_")
        return cache_root() / f"{escaped}@{self.version}"

    @property
    def binaries(self) -> dict[str, Path]:
        """Command path -> the binary `go install` names after its last path element.

        A module root with a major-version suffix (`.../oauth2-proxy/v7`) is
        named after the element before it, as `go install` does.
        """
        elements = self.module.rstrip("/").split("/")
        if len(elements) > 1 and re.fullmatch(r"v[0-9]+", elements[-1]):
            elements.pop()
        last = elements[-1]
        found = {}
        for command in self.commands:
            stem = last if command == "." else command.rstrip("/").rsplit("/", 1)[-1]
            found[command] = self.folder / "bin" / stem
        return found

    @property
    def failure(self) -> Path:
        return self.folder.with_name(self.folder.name + ".FAILED")

    def built(self) -> bool:
        return all(path.is_file() for path in self.binaries.values())


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "homelab-tunnel" / "go"


def programs() -> dict[str, Program]:
    pins = tomllib.loads(PINS.read_text(encoding="utf-8"))
    return {
        name: Program(
            name,
            entry["module"],
            entry["version"],
            tuple(entry["commands"]),
            tuple(sorted(entry.get("env", {}).items())),
            entry.get("own_module", False),
            entry.get("bench", False),
        )
        for name, entry in pins.items()
    }


def _go(args: list[str], cwd: Path, log: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        ["go", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    log.append(f"$ go {' '.join(args)}\n{done.stdout}{done.stderr}")
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        # The first line that is not progress: "go: downloading ..." says nothing of why.
        reasons = [line for line in lines if not line.startswith("go: downloading ")]
        raise RuntimeError((reasons or lines or [f"go {args[0]} exited {done.returncode}"])[0])
    return done.stdout


def build(program: Program) -> None:
    """Build into a staging folder that replaces the cache folder only when complete."""
    staging = Path(tempfile.mkdtemp(prefix=f".{program.folder.name}.", dir=program.folder.parent))
    env = {
        **os.environ,
        **dict(program.env),
        "GOBIN": str(staging / "bin"),
        "GOFLAGS": "-buildvcs=false",
    }
    log: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="homelab-tunnel-go-") as scratch:
            work = Path(scratch)
            if program.own_module:
                _build_in_own_module(program, work, log, env)
            else:
                _build_as_requirement(program, work, log, env)
        (staging / "build.log").write_text("\n".join(log))
        shutil.rmtree(program.folder, ignore_errors=True)
        staging.rename(program.folder)
        program.failure.unlink(missing_ok=True)
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
        program.failure.write_text(f"{program.module}@{program.version}: {exc}\n")
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _build_as_requirement(
    program: Program, work: Path, log: list[str], env: dict[str, str]
) -> None:
    _go(["mod", "init", "homelab-tunnel.test/build"], work, log, env)
    _go(["get", f"{program.module}@{program.version}"], work, log, env)
    imports = "\n".join(f'import _ "{_package(program, c)}"' for c in program.commands)
    (work / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\n{imports}\n")
    _go(["mod", "tidy"], work, log, env)
    _go(["install", *(_package(program, c) for c in program.commands)], work, log, env)


def _build_in_own_module(program: Program, work: Path, log: list[str], env: dict[str, str]) -> None:
    """`go build` in a copy of the module, where its own go.mod (replaces included) rules."""
    listing = _go(
        ["mod", "download", "-json", f"{program.module}@{program.version}"], work, log, env
    )
    source = work / "module"
    shutil.copytree(json.loads(listing)["Dir"], source)
    for path in [source, *source.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)  # the module cache is read-only
    for command, binary in program.binaries.items():
        target = str(Path(env["GOBIN"]) / binary.name)
        _go(["build", "-o", target, f"./{command}" if command != "." else "."], source, log, env)


def _package(program: Program, command: str) -> str:
    return program.module if command == "." else f"{program.module}/{command}"


def main(names: list[str]) -> int:
    if shutil.which("go") is None:
        print("note: no Go toolchain on PATH; tests of the real daemons and provider will skip")
        return 0
    cache_root().mkdir(parents=True, exist_ok=True)
    selected = programs()
    unknown = [name for name in names if name not in selected]
    if unknown:
        print(f"unknown program(s): {', '.join(unknown)}; known: {', '.join(selected)}")
        return 2
    chosen = names or [name for name, program in selected.items() if not program.bench]
    for program in (selected[name] for name in chosen):
        if program.built():
            continue
        start = time.monotonic()
        print(f"building {program.module}@{program.version} ...", flush=True)
        try:
            build(program)
        except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
            print(f"note: cannot build {program.name}: {exc}; its tests will skip")
            continue
        print(f"built {program.name} in {time.monotonic() - start:.0f}s -> {program.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
