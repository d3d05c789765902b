"""Stand-in for the system commands bootstrap.sh calls, for sandboxed runs.

One `FakeSystem` per sandbox answers on 127.0.0.1; on PATH, one tiny bash
wrapper per command name forwards its name, arguments and (for gpg) stdin
over bash's /dev/tcp and prints the answer. No Python starts per call, which
keeps a bootstrap run fast. Every call is appended to <state>/calls.jsonl;
what a real machine would remember (mounts, packages, units, tailnet login)
is kept in <state>/state.json so a second run sees the first run's effects.
The scenario (FAKE_SCENARIO, comma-separated) tweaks behaviour per run.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import shutil
import socketserver
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

DEB_BYTES = b"fake headscale package\n"
# What the fake age writes: a marker, then the plaintext (decryption strips it).
AGE_HEADER = b"fake-age-encryption\n"
METADATA = {
    "interfaces/public/0/ipv4/address": "203.0.113.10",
    "interfaces/public/0/ipv6/address": "2001:db8::10",
    "reserved_ip/ipv4/ip_address": "198.51.100.7",
}


# Every scenario a test may ask for; an unknown one (a typo) fails the call
# loudly instead of silently running the happy path.
SCENARIOS = frozenset(
    {
        "bad-checksum",
        "bad-litestream-checksum",
        "blank-volume",
        "headscale-unhealthy",
        "keyring-cut-off",
        "metadata-open",
        "reserved-ip-never-active",
        "restored-node",
        "stale-edge-node",
    }
)


def option(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def curl(args: list[str], state: dict[str, Any], scenario: set[str]) -> int:
    url = next(arg for arg in args if arg.startswith("http"))
    out = option(args, "-o")
    body: bytes
    if url.startswith("http://169.254.169.254/metadata/v1/"):
        path = url.removeprefix("http://169.254.169.254/metadata/v1/")
        if path == "reserved_ip/ipv4/active":
            state["reserved_ip_checks"] += 1
            active = "reserved-ip-never-active" not in scenario and state["reserved_ip_checks"] > 1
            body = b"true" if active else b"false"
        elif path in METADATA:
            body = METADATA[path].encode()
        else:
            return 22
    elif url == "http://127.0.0.1:8080/health":
        healthy = "headscale" in state["active"] and "headscale-unhealthy" not in scenario
        return 0 if healthy else 7
    elif url.endswith(".deb"):
        body = DEB_BYTES
    elif url.endswith("/checksums.txt"):
        version = url.rsplit("/", 2)[-2].removeprefix("v")
        if "/litestream/" in url:
            tampered, arm, ours = "bad-litestream-checksum", "linux-arm64", "linux-x86_64"
            deb = f"litestream-{version}-{{}}.deb"
        else:
            tampered, arm, ours = "bad-checksum", "linux_arm64", "linux_amd64"
            deb = f"headscale_{version}_{{}}.deb"
        digest = hashlib.sha256(b"tampered" if tampered in scenario else DEB_BYTES).hexdigest()
        lines = [f"{'0' * 64}  {deb.format(arm)}", f"{digest}  {deb.format(ours)}"]
        body = ("\n".join(lines) + "\n").encode()
    else:
        body = b"-----BEGIN PGP PUBLIC KEY BLOCK-----\nfake\n"
        if "keyring-cut-off" in scenario:  # the connection drops half-way: curl exit 18
            if out:
                Path(out).write_bytes(body[:10])
            return 18
    if out:
        if out != "/dev/null":
            Path(out).write_bytes(body)
    else:
        print(body.decode(), end="")
    return 0


def systemctl(args: list[str], state: dict[str, Any]) -> int:
    verb = next(arg for arg in args if not arg.startswith("-"))
    units = [arg for arg in args[args.index(verb) + 1 :] if not arg.startswith("-")]
    unit = units[0].removesuffix(".service") if units else ""
    if verb == "is-enabled":
        return 0 if unit in state["enabled"] else 1
    if verb == "is-active":
        return 0 if unit in state["active"] else 3
    if verb == "enable" and unit not in state["enabled"]:
        state["enabled"].append(unit)
    if verb in ("start", "restart") and unit not in state["active"]:
        state["active"].append(unit)
    if verb == "stop" and unit in state["active"]:
        state["active"].remove(unit)
    return 0


def apt_get(args: list[str], state: dict[str, Any], root: Path) -> int:
    """Installs; each package's postinst starts its service (through deb-systemd-invoke)
    unless policy-rc.d says no, as Debian's does."""
    if "install" not in args:
        return 0
    policy = root / "usr/sbin/policy-rc.d"
    starts = not policy.exists() or "exit 101" not in policy.read_text()
    state.setdefault("started_by_packages", [])
    rest = args[args.index("install") + 1 :]
    for index, arg in enumerate(rest):
        if arg.startswith("-") or (index and rest[index - 1] == "-o"):
            continue
        service = ""
        if Path(arg).name.startswith("litestream-"):
            state["packages"]["litestream"] = Path(arg).name.split("-")[1]
        elif arg.endswith(".deb"):
            version = Path(arg).name.split("_")[1]
            state["packages"]["headscale"] = version
            service = "headscale"
        else:
            state["packages"][arg] = {"tailscale": "1.90.2", "caddy": "2.11.7"}.get(arg, "1.0")
            service = {"caddy": "caddy", "tailscale": "tailscaled"}.get(arg, "")
        if service and starts and service not in state["active"]:
            state["active"].append(service)
            state["started_by_packages"].append(service)
    return 0


def dpkg_query(args: list[str], state: dict[str, Any]) -> int:
    package = args[-1]
    version = state["packages"].get(package)
    if version is None:
        print(f"dpkg-query: no packages found matching {package}", file=sys.stderr)
        return 1
    fmt = next((a.removeprefix("--showformat=") for a in args if a.startswith("--showformat=")), "")
    print(fmt.replace("${Status}", "install ok installed").replace("${Version}", version), end="")
    return 0


def headscale(args: list[str], state: dict[str, Any]) -> int:
    if args[:2] == ["users", "list"]:
        print(json.dumps([{"id": str(i + 1), "name": n} for i, n in enumerate(state["users"])]))
    elif args[:2] == ["users", "create"]:
        state["users"].append(args[2])
    elif args[:2] == ["preauthkeys", "create"]:
        assert option(args, "--user") == str(state["users"].index("edge") + 1), args
        print(json.dumps({"key": "hskey-auth-0123456789abcdef", "reusable": False}))
    elif args[:2] == ["nodes", "list"]:
        print(json.dumps(state.get("nodes", [])))
    elif args[:2] == ["nodes", "delete"]:
        wanted = int(option(args, "--identifier") or 0)
        state["nodes"] = [n for n in state.get("nodes", []) if n["id"] != wanted]
    return 0


def tailscale(args: list[str], state: dict[str, Any], scenario: set[str]) -> int:
    if args[:1] == ["status"]:
        state["status_calls"] += 1
        if "restored-node" in scenario and state["status_calls"] < 3:
            backend = "Starting"  # still connecting to Headscale
        else:
            backend = "Running" if state["logged_in"] else "NeedsLogin"
        print(json.dumps({"BackendState": backend}))
    elif args[:1] == ["up"]:
        state["logged_in"] = True
    elif args[:1] == ["version"]:
        print("1.90.2\n  tailscale commit: 0123456789\n  go version: go1.25")
    return 0


def litestream(args: list[str], state_dir: Path) -> int:
    """restore from <state>/replica.sqlite (the bucket's copy, if a test put one there); ltx."""
    replica = state_dir / "replica.sqlite"
    if args[0] == "ltx":
        print("level  min_txid  max_txid  size  created")
        if replica.exists():
            print("9  0000000000000001  0000000000000001  4096  2026-11-28T10:00:00Z")
            print("0  0000000000000002  0000000000000007  512  2026-11-29T21:59:58Z")
        return 0
    output = option(args, "-o") or args[-1]
    if Path(output).exists() and "-if-db-not-exists" in args:
        return 0
    if not replica.exists():
        print("no matching backups found")
        return 0 if "-if-replica-exists" in args else 1
    shutil.copyfile(replica, output)
    return 0


def age(name: str, args: list[str]) -> int:
    """age-keygen -y prints a recipient; age -R encrypts, age -d decrypts what it encrypted."""
    if name == "age-keygen":
        identity = Path(args[-1]).read_bytes()
        print("age1" + hashlib.sha256(identity).hexdigest()[:58])
        return 0
    data = Path(args[-1]).read_bytes()
    out = option(args, "-o")
    if "-d" not in args:
        Path(out or "/dev/null").write_bytes(AGE_HEADER + data)
        return 0
    if not data.startswith(AGE_HEADER):
        print("age: error: no identity matched any of the recipients", file=sys.stderr)
        return 1
    if out:
        Path(out).write_bytes(data.removeprefix(AGE_HEADER))
    else:  # to stdout: the tests' key files are text
        print(data.removeprefix(AGE_HEADER).decode(), end="")
    return 0


def mount_state(name: str, args: list[str], state: dict[str, Any], root: Path) -> int:
    mounts: dict[str, str] = state["mounts"]
    if name == "mountpoint":
        return 0 if args[-1] in mounts else 32
    if name == "findmnt":
        source = option(args, "--source")
        targets = [target for target, src in mounts.items() if src == source]
        if not targets:
            return 1
        print(targets[0])
        return 0
    if "--bind" in args:
        mounts[args[-1]] = args[-2]
        return 0
    target = args[-1]
    for line in (root / "etc/fstab").read_text().splitlines():
        fields = line.split()
        if len(fields) > 1 and fields[1] == target:
            mounts[target] = fields[0]
            return 0
    print(f"mount: {target}: can't find in /etc/fstab", file=sys.stderr)
    return 1


class FakeSystem:
    """The machine the fakes share: state on disk, one call at a time."""

    def __init__(self, state_dir: Path, root: Path) -> None:
        self.state_dir = state_dir
        self.root = root
        self._lock = threading.Lock()

    def load(self, scenario: set[str]) -> dict[str, Any]:
        path = self.state_dir / "state.json"
        if path.exists():
            return dict(json.loads(path.read_text()))
        return {
            "formatted": "blank-volume" not in scenario,
            "mounts": {},
            "packages": {},
            "enabled": [],
            "active": [],
            "users": [],
            # A replaced droplet finds tailscaled's node on the volume.
            "logged_in": "restored-node" in scenario,
            "status_calls": 0,
            # Headscale's nodes: a restored database still lists the edge's old node.
            "nodes": (
                [
                    {"id": 7, "name": "homelab-edge", "online": False, "user": {"name": "edge"}},
                    {"id": 8, "name": "homelab", "online": False, "user": {"name": "homelab"}},
                ]
                if "stale-edge-node" in scenario
                else []
            ),
            "reserved_ip_checks": 0,
        }

    def save(self, state: dict[str, Any]) -> None:
        (self.state_dir / "state.json").write_text(json.dumps(state, indent=1, sort_keys=True))

    def call(
        self, name: str, args: list[str], stdin: bytes, scenario: set[str]
    ) -> tuple[int, str, str]:
        """Run one fake command: (exit code, stdout, stderr)."""
        out, err = io.StringIO(), io.StringIO()
        with self._lock, redirect_stdout(out), redirect_stderr(err):
            with (self.state_dir / "calls.jsonl").open("a") as handle:
                handle.write(json.dumps([name, *args]) + "\n")
            state = self.load(scenario)
            code = self._dispatch(name, args, stdin, state, scenario)
            self.save(state)
        return code, out.getvalue(), err.getvalue()

    def _dispatch(
        self, name: str, args: list[str], stdin: bytes, state: dict[str, Any], scenario: set[str]
    ) -> int:
        if name == "blkid":  # `blkid -p -o export DEVICE`, as bootstrap probes
            if state["formatted"]:
                print(f"DEVNAME={args[-1]}\nTYPE=ext4")
            return 0 if state["formatted"] else 2
        if name == "mkfs.ext4":
            state["formatted"] = True
            return 0
        if name in ("mount", "mountpoint", "findmnt"):
            return mount_state(name, args, state, self.root)
        if name == "curl":
            return curl(args, state, scenario)
        if name == "gpg":
            source = Path(args[-1]) if Path(args[-1]).is_file() else None
            data = source.read_bytes() if source else stdin
            Path(option(args, "-o") or "/dev/null").write_bytes(data)
            return 0
        if name == "systemctl":
            return systemctl(args, state)
        if name == "apt-get":
            return apt_get(args, state, self.root)
        if name == "dpkg-query":
            return dpkg_query(args, state)
        if name == "dpkg":
            print("amd64")
            return 0
        if name == "headscale":
            return headscale(args, state)
        if name == "tailscale":
            return tailscale(args, state, scenario)
        if name == "litestream":
            return litestream(args, self.state_dir)
        if name in ("age", "age-keygen"):
            return age(name, args)
        if name == "setpriv":  # only ever a non-root process asking the metadata service
            return 0 if "metadata-open" in scenario else 7
        return 0  # chown, caddy, sleep, nft, iptables: nothing to simulate


class _Handler(socketserver.StreamRequestHandler):
    """Request: name, scenario, argc lines; NUL-terminated args; a base64 stdin line.

    Answer: exit code, stdout length and stderr length lines, then both bodies.
    """

    server: _Server

    def handle(self) -> None:
        name = self.rfile.readline().decode().rstrip("\n")
        scenario = set(self.rfile.readline().decode().rstrip("\n").split(",")) - {""}
        count = int(self.rfile.readline())
        args = [self._arg() for _ in range(count)]
        stdin = base64.b64decode(self.rfile.readline().strip())
        try:
            unknown = scenario - SCENARIOS
            if unknown:
                raise ValueError(
                    f"unknown FAKE_SCENARIO {sorted(unknown)}; known: {sorted(SCENARIOS)}"
                )
            code, out, err = self.server.machine.call(name, args, stdin, scenario)
        except Exception:  # a broken fake must fail the run loudly, not hang it
            code, out, err = 70, "", traceback.format_exc()
        stdout, stderr = out.encode(), err.encode()
        self.wfile.write(f"{code}\n{len(stdout)}\n{len(stderr)}\n".encode() + stdout + stderr)

    def _arg(self) -> str:
        data = bytearray()
        while (byte := self.rfile.read(1)) not in (b"\0", b""):
            data += byte
        return data.decode()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, machine: FakeSystem) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.machine = machine


# bash reads sockets a byte at a time, so `read -N` takes exactly one body.
WRAPPER = """#!/bin/bash
exec 3<>/dev/tcp/127.0.0.1/{port} || exit 99
stdin=""
[ "{name}" = gpg ] && stdin="$(base64 -w0)"
{{ printf '%s\\n%s\\n%s\\n' "{name}" "${{FAKE_SCENARIO:-}}" "$#"
  [ "$#" -gt 0 ] && printf '%s\\0' "$@"
  printf '%s\\n' "$stdin"; }} >&3
read -r code <&3; read -r olen <&3; read -r elen <&3
export LC_ALL=C
[ "$olen" -gt 0 ] && IFS= read -r -d '' -N "$olen" out <&3 && printf '%s' "$out"
[ "$elen" -gt 0 ] && IFS= read -r -d '' -N "$elen" err <&3 && printf '%s' "$err" >&2
exit "$code"
"""


@contextlib.contextmanager
def fake_system(
    state_dir: Path, root: Path, bin_dir: Path, commands: tuple[str, ...]
) -> Iterator[FakeSystem]:
    """Serve the fakes and put one wrapper per command in `bin_dir`, for the block's duration."""
    machine = FakeSystem(state_dir, root)
    server = _Server(machine)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    port = server.server_address[1]
    for command in commands:
        wrapper = bin_dir / command
        wrapper.write_text(WRAPPER.format(port=port, name=command))
        wrapper.chmod(0o755)
    try:
        yield machine
    finally:
        server.shutdown()
        server.server_close()
