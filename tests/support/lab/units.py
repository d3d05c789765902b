"""systemd in the edge box, as far as the edge's scripts use it.

bootstrap.sh and restore-state.sh start, stop and ask about units with
`systemctl`. In the edge box that is a shim (SYSTEMCTL below): it writes its
arguments into /run/homelab-tunnel-lab/systemctl/ and waits for the answer,
which a thread of the harness (`Systemd.serve`) gives after doing what systemd
would: a service runs its ExecStart in the box with its User=, Environment=,
EnvironmentFile=, drop-ins' Environment=, WorkingDirectory=, UMask=,
RuntimeDirectory=, ConditionPathExists= and AssertPathExists= (with `!`); a
oneshot is waited for unless --no-block; a path unit (PathChanged=) and a timer (OnActiveSec=,
OnUnitActiveSec=) are small daemons in the box that `systemctl start` their
service, as systemd does. `systemd-run --unit=NAME [--setenv=K=V] -- CMD` (a
shim too) starts CMD as a daemon of that name, detached from its caller.
The packages' own units (Headscale's .deb, Debian's caddy.service) are
written out below, as shipped, minus what the lab does not honour:
sandboxing (ProtectSystem=, PrivateTmp=, capabilities), Restart= and
ordering; Caddy runs as root (binding 443 as user caddy needs a capability).
The health timer is recorded, not run: tests run the health agent when they
ask for it.
"""

from __future__ import annotations

import contextlib
import shlex
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from support.lab.boxes import Box
from support.lab.processes import Daemon

UNITS = "/etc/systemd/system"
REQUESTS = "/run/homelab-tunnel-lab/systemctl"
PACKAGES = "/run/homelab-tunnel-lab/packages"
SERVICES = Path(__file__).resolve().parent / "box_services.py"
RECORDED_ONLY = {"homelab-tunnel-health.timer"}

PACKAGE_UNITS = {
    # juanfont/headscale packaging/systemd/headscale.service
    "headscale.service": (
        "[Service]\nType=simple\nUser=headscale\nGroup=headscale\n"
        "ExecStart=/usr/bin/headscale serve\nExecReload=/usr/bin/kill -HUP $MAINPID\n"
        "WorkingDirectory=/var/lib/headscale\n"
        "RuntimeDirectory=headscale\nRuntimeDirectoryMode=0750\nUMask=0077\n"
    ),
    # Debian's caddy.service; root instead of User=caddy (see above), with that user's HOME.
    "caddy.service": (
        "[Service]\nType=notify\nEnvironment=HOME=/var/lib/caddy\n"
        "ExecStart=/usr/bin/caddy run --environ --config /etc/caddy/Caddyfile\n"
        "ExecReload=/usr/bin/caddy reload --config /etc/caddy/Caddyfile --force\n"
    ),
}

# In the edge box, /usr/local/bin/systemctl: hand the arguments to the harness, wait.
SYSTEMCTL = f"""#!/bin/sh
# homelab-tunnel lab: systemctl asks the harness, the box's stand-in for systemd.
dir={REQUESTS}
mkdir -p "$dir"
id="$$-$(date +%s%N)"
printf '%s\\n' "$@" >"$dir/$id.new" && mv "$dir/$id.new" "$dir/$id.request"
n=0
while [ ! -e "$dir/$id.exit" ]; do
  n=$((n + 1))
  if [ "$n" -gt 9000 ]; then echo "systemctl: the lab's systemd did not answer" >&2; exit 1; fi
  sleep 0.02
done
cat "$dir/$id.output"
code="$(cat "$dir/$id.exit")"
rm -f "$dir/$id".*
exit "$code"
"""

# In the edge box, /usr/local/bin/systemd-run: the same request, marked as a transient unit.
SYSTEMD_RUN = SYSTEMCTL.replace("printf '%s\\n' \"$@\"", "printf '%s\\n' __run__ \"$@\"").replace(
    "# homelab-tunnel lab: systemctl asks", "# homelab-tunnel lab: systemd-run asks"
)

# In the edge box, /usr/local/bin/dpkg-query: the versions of the programs the lab installed.
DPKG_QUERY = f"""#!/bin/sh
# homelab-tunnel lab: `dpkg-query -W [--showformat=...] PACKAGE` from {PACKAGES}.
for package; do :; done
version="$(awk -v p="$package" '$1 == p {{ print $2 }}' {PACKAGES} 2>/dev/null)"
[ -n "$version" ] || {{ echo "dpkg-query: no packages found matching $package" >&2; exit 1; }}
printf '%s' "$version"
"""


class LabUnitError(Exception):
    """What systemctl would print when a start fails (an assertion)."""


@dataclass
class Unit:
    """The parts of a unit file the lab honours."""

    name: str
    exec_start: list[str] = field(default_factory=list)
    exec_reload: list[str] = field(default_factory=list)
    type: str = "simple"
    user: str | None = None
    environment: dict[str, str] = field(default_factory=dict)
    environment_files: list[str] = field(default_factory=list)
    working_directory: str | None = None
    umask: str | None = None
    runtime_directory: str | None = None
    state_directory: str | None = None
    conditions: list[str] = field(default_factory=list)
    assertions: list[str] = field(default_factory=list)
    path_changed: list[str] = field(default_factory=list)
    target: str | None = None  # Unit= of a path unit or a timer
    on_active: float | None = None
    on_unit_active: float | None = None


def seconds(span: str) -> float:
    """A systemd time span of one unit ("1min", "30s", "1d")."""
    units = {"ms": 0.001, "s": 1, "sec": 1, "min": 60, "h": 3600, "d": 86400}
    number = span.rstrip("abcdefghijklmnopqrstuvwxyz")
    return float(number) * units.get(span[len(number) :] or "s", 1)


def read_unit(text: str, name: str = "unit.service") -> Unit:
    unit = Unit(name)
    for raw in text.splitlines():
        key, _, value = raw.strip().partition("=")
        if key == "ExecStart":
            unit.exec_start = shlex.split(value)
        elif key == "ExecReload":
            unit.exec_reload = shlex.split(value)
        elif key == "Environment":
            variable, _, setting = value.partition("=")
            unit.environment[variable] = setting
        elif key == "EnvironmentFile":
            unit.environment_files.append(value)  # "-": may be missing
        elif key == "StateDirectory":
            unit.state_directory = f"/var/lib/{value}"
        elif key == "RuntimeDirectory":
            unit.runtime_directory = f"/run/{value}"
        elif key == "ConditionPathExists":
            unit.conditions.append(value)
        elif key == "AssertPathExists":
            unit.assertions.append(value)
        elif key == "PathChanged":
            unit.path_changed.append(value)
        elif key in ("OnActiveSec", "OnUnitActiveSec"):
            setattr(unit, "on_active" if key == "OnActiveSec" else "on_unit_active", seconds(value))
        else:
            attribute = {"Type": "type", "User": "user", "WorkingDirectory": "working_directory",
                         "UMask": "umask", "Unit": "target"}.get(key)  # fmt: skip
            if attribute:
                setattr(unit, attribute, value)
    return unit


def env_file(text: str) -> dict[str, str]:
    """KEY=value lines, as systemd's EnvironmentFile= reads the ones render writes."""
    found = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            found[key.strip()] = value
    return found


def full_name(name: str) -> str:
    return name if "." in name else f"{name}.service"


def daemon_name(unit: str) -> str:
    """The box daemon (and log, and `journalctl -u`) of a unit: services without .service."""
    return unit.removesuffix(".service")


class Systemd:
    """The units of one droplet: what is enabled, what runs, and the shim's requests."""

    def __init__(self, box: Box, python: str) -> None:
        self.box = box
        self.python = python
        self.enabled: set[str] = set()
        self.recorded: set[str] = set()
        self.events: list[tuple[float, str, str]] = []  # (wall clock, unit, what happened)
        self._lock = threading.RLock()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    # -- units -----------------------------------------------------------------

    def unit(self, name: str) -> Unit:
        name = full_name(name)
        path = self.box.path(f"{UNITS}/{name}")
        text = path.read_text() if path.exists() else PACKAGE_UNITS.get(name)
        if text is None:
            raise KeyError(f"Unit {name} not found.")
        drop_ins = self.box.path(f"{UNITS}/{name}.d")
        for conf in sorted(drop_ins.glob("*.conf")) if drop_ins.is_dir() else []:
            text += "\n" + conf.read_text()
        return read_unit(text, name)

    def environment(self, unit: Unit) -> dict[str, str]:
        env = dict(unit.environment)
        for path in unit.environment_files:
            file = self.box.path(path.lstrip("-"))
            if path.startswith("-") and not file.exists():
                continue
            env.update(env_file(file.read_text()))
        if unit.user:
            home = self._home(unit.user)
            env.update({"USER": unit.user, "LOGNAME": unit.user, "HOME": home})
        return env

    def _home(self, user: str) -> str:
        for line in self.box.path("/etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == user:
                return fields[5]
        raise KeyError(f"no user {user} in the box")

    def command(self, unit: Unit) -> list[str]:
        """ExecStart as the unit runs it: its user, directory and umask."""
        argv = list(unit.exec_start)
        if not self.box.path(argv[0]).exists():  # no .deb here: the lab's program on PATH
            argv[0] = Path(argv[0]).name
        steps = [f"cd {unit.working_directory}"] if unit.working_directory else []
        steps += [f"umask {unit.umask}"] if unit.umask else []
        if steps:
            argv = ["sh", "-c", " && ".join([*steps, 'exec "$@"']), unit.name, *argv]
        if unit.user:
            argv = ["setpriv", f"--reuid={unit.user}", f"--regid={unit.user}", "--init-groups",
                    "--", *argv]  # fmt: skip
        return argv

    # -- operations --------------------------------------------------------------

    def is_active(self, name: str) -> bool:
        name = full_name(name)
        daemon = self.box.daemons.get(daemon_name(name))
        return name in self.recorded or bool(daemon and daemon.running())

    def start(self, name: str, *, block: bool = True) -> int:
        name = full_name(name)
        unit = self.unit(name)
        with self._lock:
            if self._closing.is_set():
                return 1
            if self.is_active(name):
                daemon = self.box.daemons[daemon_name(name)] if name not in self.recorded else None
            else:
                daemon = self._launch(unit)
        if daemon is None or unit.type != "oneshot":
            return 0
        if not block:
            threading.Thread(target=self._finished, args=(name, daemon), daemon=True).start()
            return 0
        return self._finished(name, daemon)

    def _launch(self, unit: Unit) -> Daemon | None:
        if unit.name in RECORDED_ONLY:
            self.recorded.add(unit.name)
            return None
        for kind, paths in (("assertion", unit.assertions), ("condition", unit.conditions)):
            unmet = [path for path in paths if not self._holds(path)]
            if unmet:
                self.events.append((time.time(), unit.name, f"{kind} failed: {unmet[0]}"))
                if kind == "assertion":
                    raise LabUnitError(f"Assertion failed on job for {unit.name}.")
                return None
        if unit.target:  # a path unit or a timer: a daemon that starts its service
            daemon = self.box.spawn(unit.name, self._trigger(unit))
        else:
            for directory in filter(None, (unit.runtime_directory, unit.state_directory)):
                owner = unit.user or "root"
                self.box.run(["install", "-d", "-m", "0750", "-o", owner, "-g", owner, directory])
            env = self.environment(unit)
            daemon = self.box.spawn(daemon_name(unit.name), self.command(unit), env=env)
        self.events.append((time.time(), unit.name, "started"))
        return daemon

    def _holds(self, path: str) -> bool:
        """`PATH` exists, or `!PATH` does not."""
        return self.box.path(path.lstrip("!")).exists() != path.startswith("!")

    def run_transient(self, args: list[str]) -> int:
        """`systemd-run --unit=NAME [--setenv=K=V ...] -- CMD...`: CMD as a daemon NAME."""
        split = args.index("--")
        options, argv = args[:split], args[split + 1 :]
        name = next(o.removeprefix("--unit=") for o in options if o.startswith("--unit="))
        env = dict(o.removeprefix("--setenv=").split("=", 1) for o in options
                   if o.startswith("--setenv="))  # fmt: skip
        with self._lock:
            self.box.spawn(daemon_name(full_name(name)), argv, env=env)
            self.events.append((time.time(), full_name(name), "started"))
        return 0

    def _trigger(self, unit: Unit) -> list[str]:
        assert unit.target is not None
        if unit.path_changed:
            return [self.python, SERVICES, "path-trigger", unit.target, *unit.path_changed]
        first, every = unit.on_active or 0, unit.on_unit_active or 86400
        return [self.python, SERVICES, "timer-trigger", unit.target, first, every]

    def _finished(self, name: str, daemon: Daemon) -> int:
        code = daemon.process.wait(timeout=300)
        self.events.append((time.time(), name, f"exited {code}"))
        return 0 if code == 0 else 1

    def stop(self, name: str) -> None:
        name = full_name(name)
        with self._lock:
            self.recorded.discard(name)
            if self.box.stop(daemon_name(name)) is not None:
                self.events.append((time.time(), name, "stopped"))

    def restart(self, name: str) -> int:
        self.stop(name)
        return self.start(name)

    def reload(self, name: str) -> int:
        """ExecReload with $MAINPID, as systemd runs it; 1 when the unit is not running."""
        name = full_name(name)
        unit = self.unit(name)
        daemon = self.box.daemons.get(daemon_name(name))
        if not unit.exec_reload or daemon is None or not daemon.running():
            return 1
        argv = [
            str(daemon.process.pid) if word == "$MAINPID" else word for word in unit.exec_reload
        ]
        if not self.box.path(argv[0]).exists():  # no .deb here: the lab's program on PATH
            argv[0] = Path(argv[0]).name
        done = self.box.run(argv, check=False, env=self.environment(unit))
        self.events.append((time.time(), name, f"reloaded: exit {done.returncode}"))
        return 0 if done.returncode == 0 else 1

    # -- the shim's requests ----------------------------------------------------

    def serve(self) -> None:
        """Answer the box's systemctl calls from a thread, until `close()`."""
        self._thread = threading.Thread(target=self._serve, name="lab-systemd", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """No more starts (the droplet is going away); the thread ends."""
        self._closing.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _serve(self) -> None:
        while not self._closing.is_set():
            with contextlib.suppress(OSError):  # the box may be going away
                directory = self.box.path(REQUESTS)
                for request in sorted(directory.glob("*.request")) if directory.is_dir() else []:
                    args = request.read_text().splitlines()
                    request.unlink()
                    threading.Thread(target=self._answer, args=(request, args), daemon=True).start()
            time.sleep(0.01)

    def _answer(self, request: Path, args: list[str]) -> None:
        try:
            code, output = self.systemctl(args)
        except LabUnitError as exc:
            code, output = 1, f"{exc}\n"
        except Exception as exc:  # reported to the caller, as systemctl would
            code, output = 1, f"lab systemd: {exc}\n"
        base = str(request).removesuffix(".request")
        with contextlib.suppress(OSError):
            Path(f"{base}.output").write_text(output)
            Path(f"{base}.tmp").write_text(str(code))
            Path(f"{base}.tmp").replace(f"{base}.exit")

    def systemctl(self, args: list[str]) -> tuple[int, str]:
        """One `systemctl ARGS` call: its exit code and output."""
        if args[:1] == ["__run__"]:
            return self.run_transient(args[1:]), ""
        options = {arg for arg in args if arg.startswith("-")}
        words = [arg for arg in args if not arg.startswith("-")]
        command, names = (words[0], words[1:]) if words else ("", [])
        quiet = bool(options & {"-q", "--quiet"})
        if command == "daemon-reload":
            return 0, ""
        if command in ("is-enabled", "is-active"):
            name = full_name(names[0])
            yes = name in self.enabled if command == "is-enabled" else self.is_active(name)
            word = ("enabled" if yes else "disabled") if command == "is-enabled" else None
            word = word or ("active" if yes else "inactive")
            return (0 if yes else 1 if command == "is-enabled" else 3), "" if quiet else f"{word}\n"
        actions = {
            "enable": lambda name: self.enabled.add(full_name(name)) or 0,
            "start": lambda name: self.start(name, block="--no-block" not in options),
            "stop": lambda name: self.stop(name) or 0,
            "restart": self.restart,
            "reload": self.reload,
        }
        if command not in actions:
            return 1, f"lab systemd: systemctl {command} is not modelled\n"
        codes = [actions[command](name) for name in names]
        return max(codes, default=0), ""


def packages_file(versions: Mapping[str, str]) -> str:
    """PACKAGES: `name version` lines for the dpkg-query shim."""
    return "".join(f"{name} {version}\n" for name, version in sorted(versions.items()))
