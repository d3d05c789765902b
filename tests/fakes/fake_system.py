#!/usr/bin/env python3
"""Stand-in for the system commands bootstrap.sh calls, for sandboxed runs.

Installed on PATH as one small wrapper per command name, which passes its
name as the first argument. Every call is appended to
$FAKE_STATE/calls.jsonl; what a real machine would remember (mounts,
packages, units, tailnet login) is kept in $FAKE_STATE/state.json so a second
run sees the first run's effects. $FAKE_SCENARIO tweaks behaviour per test.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

STATE_DIR = Path(os.environ["FAKE_STATE"])
SCENARIO = set(os.environ.get("FAKE_SCENARIO", "").split(","))
DEB_BYTES = b"fake headscale package\n"
METADATA = {
    "interfaces/public/0/ipv4/address": "203.0.113.10",
    "interfaces/public/0/ipv6/address": "2001:db8::10",
    "reserved_ip/ipv4/ip_address": "198.51.100.7",
}


def load() -> dict[str, Any]:
    path = STATE_DIR / "state.json"
    if path.exists():
        return dict(json.loads(path.read_text()))
    return {
        "formatted": "blank-volume" not in SCENARIO,
        "mounts": {},
        "packages": {},
        "enabled": [],
        "active": [],
        "users": [],
        # A replaced droplet finds tailscaled's node on the volume.
        "logged_in": "restored-node" in SCENARIO,
        "status_calls": 0,
        "reserved_ip_checks": 0,
    }


def save(state: dict[str, Any]) -> None:
    (STATE_DIR / "state.json").write_text(json.dumps(state, indent=1, sort_keys=True))


def record(name: str, args: list[str]) -> None:
    with (STATE_DIR / "calls.jsonl").open("a") as handle:
        handle.write(json.dumps([name, *args]) + "\n")


def option(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def curl(args: list[str], state: dict[str, Any]) -> int:
    url = next(arg for arg in args if arg.startswith("http"))
    out = option(args, "-o")
    body: bytes
    if url.startswith("http://169.254.169.254/metadata/v1/"):
        path = url.removeprefix("http://169.254.169.254/metadata/v1/")
        if path == "reserved_ip/ipv4/active":
            state["reserved_ip_checks"] += 1
            active = "reserved-ip-never-active" not in SCENARIO and state["reserved_ip_checks"] > 1
            body = b"true" if active else b"false"
        elif path in METADATA:
            body = METADATA[path].encode()
        else:
            return 22
    elif url == "http://127.0.0.1:8080/health":
        return 0 if "headscale" in state["active"] else 7
    elif url.endswith(".deb"):
        body = DEB_BYTES
    elif url.endswith("/checksums.txt"):
        name = url.rsplit("/", 2)[-2].removeprefix("v")
        digest = hashlib.sha256(
            b"tampered" if "bad-checksum" in SCENARIO else DEB_BYTES
        ).hexdigest()
        lines = [
            f"{'0' * 64}  headscale_{name}_linux_arm64.deb",
            f"{digest}  headscale_{name}_linux_amd64.deb",
        ]
        body = ("\n".join(lines) + "\n").encode()
    else:
        body = b"-----BEGIN PGP PUBLIC KEY BLOCK-----\nfake\n"
    if out:
        if out != "/dev/null":
            Path(out).write_bytes(body)
    else:
        sys.stdout.buffer.write(body)
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


def apt_get(args: list[str], state: dict[str, Any]) -> int:
    if "install" not in args:
        return 0
    rest = args[args.index("install") + 1 :]
    for index, arg in enumerate(rest):
        if arg.startswith("-") or (index and rest[index - 1] == "-o"):
            continue
        if arg.endswith(".deb"):
            version = Path(arg).name.split("_")[1]
            state["packages"]["headscale"] = version
            state["active"].append("headscale")
        else:
            state["packages"][arg] = {"tailscale": "1.90.2", "caddy": "2.11.7"}.get(arg, "1.0")
            if arg in ("caddy", "tailscale"):
                state["active"].append(arg if arg == "caddy" else "tailscaled")
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
    return 0


def tailscale(args: list[str], state: dict[str, Any]) -> int:
    if args[:1] == ["status"]:
        state["status_calls"] += 1
        if "restored-node" in SCENARIO and state["status_calls"] < 3:
            backend = "Starting"  # still connecting to Headscale
        else:
            backend = "Running" if state["logged_in"] else "NeedsLogin"
        print(json.dumps({"BackendState": backend}))
    elif args[:1] == ["up"]:
        state["logged_in"] = True
    elif args[:1] == ["version"]:
        print("1.90.2\n  tailscale commit: 0123456789\n  go version: go1.25")
    return 0


def mount_state(name: str, args: list[str], state: dict[str, Any]) -> int:
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
    root = os.environ.get("HOMELAB_TUNNEL_ROOT", "")
    for line in Path(root, "etc/fstab").read_text().splitlines():
        fields = line.split()
        if len(fields) > 1 and fields[1] == target:
            mounts[target] = fields[0]
            return 0
    print(f"mount: {target}: can't find in /etc/fstab", file=sys.stderr)
    return 1


def main() -> int:
    name, args = sys.argv[1], sys.argv[2:]
    # Pipelines (curl | gpg) run two fakes at once: one at a time on the state,
    # and a reader drains its input first so the writer never waits on it.
    stdin = sys.stdin.buffer.read() if name == "gpg" else b""
    with (STATE_DIR / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return dispatch(name, args, stdin)


def dispatch(name: str, args: list[str], stdin: bytes) -> int:
    record(name, args)
    state = load()
    if name == "blkid":
        if state["formatted"]:
            print("ext4")
        code = 0 if state["formatted"] else 2
    elif name == "mkfs.ext4":
        state["formatted"] = True
        code = 0
    elif name in ("mount", "mountpoint", "findmnt"):
        code = mount_state(name, args, state)
    elif name == "curl":
        code = curl(args, state)
    elif name == "gpg":
        Path(option(args, "-o") or "/dev/null").write_bytes(stdin)
        code = 0
    elif name == "systemctl":
        code = systemctl(args, state)
    elif name == "apt-get":
        code = apt_get(args, state)
    elif name == "dpkg-query":
        code = dpkg_query(args, state)
    elif name == "dpkg":
        print("amd64")
        code = 0
    elif name == "headscale":
        code = headscale(args, state)
    elif name == "tailscale":
        code = tailscale(args, state)
    else:  # chown, caddy, sleep: nothing to simulate
        code = 0
    save(state)
    return code


if __name__ == "__main__":
    sys.exit(main())
