"""The metadata guard on a real kernel: a non-root process is refused, root is not.

DigitalOcean's metadata service hands user_data, and the secrets in it, to any
process that asks. Each test gets two network namespaces, a droplet and, across
a link-local veth as on DigitalOcean, a web server at 169.254.169.254 standing
in for the service; it runs the guard in the droplet exactly as user_data's
bootcmd carries it, and asks the server as root and as other users (setpriv),
through nftables and, on an image without nft, iptables.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from support.config import config_with

from homelab_tunnel.payload import user_data

METADATA = "169.254.169.254"
NOBODY = 65534
AGENT_UID = 4242
COMMANDS = ("ip", "nft", "iptables", "setpriv", "curl", "unshare")


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "the metadata guard needs root for network namespaces and firewall rules"
    missing = [name for name in COMMANDS if shutil.which(name) is None]
    if missing:
        return f"the metadata guard test needs {', '.join(missing)} (make test-tools)"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


def bootcmd_script() -> str:
    """The guard as the droplet runs it: the first bootcmd of the rendered user_data."""
    document = yaml.safe_load(user_data(config_with()))
    argv = document["bootcmd"][0]
    assert argv[:2] == ["sh", "-c"], argv
    return str(argv[2])


@dataclass
class Namespace:
    name: str
    directory: Path

    def run(self, argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *argv],
            capture_output=True,
            text=True,
            timeout=30,
            check=check,
            stdin=subprocess.DEVNULL,
        )

    def guard(self, *, path: str | None = None, passwd: Path | None = None) -> str:
        """Run the guard as bootcmd does (sh -c), optionally with another PATH or /etc/passwd."""
        script = bootcmd_script()
        argv = ["sh", "-c", script]
        if path is not None:
            argv = ["env", f"PATH={path}", "/bin/sh", "-c", script]
        if passwd is not None:
            # A private mount namespace: the machine's own /etc/passwd is never touched.
            argv = ["unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/passwd && exec "$@"',
                    str(passwd), *argv]  # fmt: skip
        return self.run(argv).stdout

    def read_user_data(self, uid: int) -> int:
        """curl's exit code fetching user-data as `uid` (0: read it; 7: refused)."""
        command = ["curl", "-fsS", "--max-time", "5", "-o", "/dev/null",
                   f"http://{METADATA}/metadata/v1/user-data"]  # fmt: skip
        if uid != 0:
            command = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *command]
        return self.run(command, check=False).returncode


@pytest.fixture
def namespace(tmp_path: Path) -> Iterator[Namespace]:
    name = f"hltmg-{secrets.token_hex(3)}"
    service = f"{name}-md"
    for each in (name, service):
        subprocess.run(["ip", "netns", "add", each], check=True)
    server = None
    try:
        box = Namespace(name, tmp_path)
        metadata = Namespace(service, tmp_path)
        # The kernel answers a rejected connection over loopback, as on any droplet.
        box.run(["ip", "link", "set", "lo", "up"])
        box.run(["ip", "link", "add", "eth0", "type", "veth", "peer", "md0", "netns", service])
        for side, link, address in ((box, "eth0", "169.254.0.2"), (metadata, "md0", METADATA)):
            side.run(["ip", "addr", "add", f"{address}/16", "dev", link])
            side.run(["ip", "link", "set", link, "up"])
        served = tmp_path / "served" / "metadata" / "v1"
        served.mkdir(parents=True)
        (served / "user-data").write_text("#cloud-config\n# the edge's secrets\n")
        tmp_path.chmod(0o755)
        server = subprocess.Popen(
            ["ip", "netns", "exec", service, sys.executable, "-m", "http.server", "80",
             "--bind", METADATA, "--directory", str(tmp_path / "served")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(50):
            if box.read_user_data(0) == 0:
                break
            subprocess.run(["sleep", "0.1"], check=True)
        assert box.read_user_data(0) == 0, "the stand-in metadata service never answered"
        yield box
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        for each in (name, service):
            subprocess.run(["ip", "netns", "delete", each], check=False)


def test_without_the_guard_any_local_user_reads_user_data(namespace: Namespace) -> None:
    """The hole itself: the negative twin of every test below."""
    assert namespace.read_user_data(NOBODY) == 0


def test_the_guard_refuses_a_non_root_process_and_serves_root(namespace: Namespace) -> None:
    said = namespace.guard()
    assert namespace.read_user_data(NOBODY) == 7  # connection refused (TCP reset)
    assert namespace.read_user_data(0) == 0
    assert "metadata service closed to non-root processes" in said


def test_a_second_run_replaces_the_rules_instead_of_doubling_them(namespace: Namespace) -> None:
    namespace.guard()
    namespace.guard()
    rules = namespace.run(["nft", "list", "table", "inet", "homelab_tunnel_metadata"]).stdout
    assert rules.count("reject") == 1
    assert namespace.read_user_data(NOBODY) == 7


def test_the_monitoring_agent_keeps_its_access(namespace: Namespace, tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_text(
        Path("/etc/passwd").read_text()
        + f"do-agent:x:{AGENT_UID}:{AGENT_UID}::/nonexistent:/usr/sbin/nologin\n"
    )
    said = namespace.guard(passwd=passwd)
    assert f"but do-agent, uid {AGENT_UID}" in said
    assert namespace.read_user_data(AGENT_UID) == 0
    assert namespace.read_user_data(NOBODY) == 7


def test_without_nft_iptables_closes_it_the_same_way(namespace: Namespace, tmp_path: Path) -> None:
    """An image without the nft command: the guard falls back to iptables."""
    tools = tmp_path / "tools"
    tools.mkdir()
    for command in ("id", "iptables"):
        (tools / command).symlink_to(shutil.which(command) or command)
    namespace.guard(path=str(tools))
    namespace.guard(path=str(tools))
    assert namespace.run(["nft", "list", "tables"]).stdout.count("homelab_tunnel_metadata") == 0
    jumps = namespace.run(["iptables", "-w", "-S", "OUTPUT"]).stdout
    assert jumps.count("-j HOMELAB_TUNNEL_METADATA") == 1
    assert namespace.read_user_data(NOBODY) == 7
    assert namespace.read_user_data(0) == 0
