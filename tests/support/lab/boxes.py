"""A box: one network namespace, and for anything but a router its own mount namespace.

The mount namespace is what lets every daemon use its real paths
(/etc/headscale, /var/lib/tailscale, /run/tailscale/tailscaled.sock, ...)
without touching the host: a "holder" process keeps it alive, and inside it
/run, /var/lib, /usr/local/bin and /usr/local/lib/homelab-tunnel (where
user_data unpacks the edge's bundle) are fresh tmpfs, /etc is an overlay
whose changes land in the box's own directory (its root disk), and /sys is
the namespace's own. Every command in the box runs through `nsenter` into both
namespaces; files are written through /proc/<holder>/root.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from support.lab.processes import Daemon, RunState
from support.lab.shell import BASE_ENV, LabError, run, wait_for

# The names every box resolves, from /etc/hosts: no DNS server, nothing to leak.
RESOLV_CONF = (
    "# homelab-tunnel lab: names come from /etc/hosts; nothing answers here.\n"
    "nameserver 127.0.0.1\n"
)


class Box:
    """A network namespace; after `private_mounts`, also a mount namespace of its own."""

    def __init__(self, state: RunState, role: str) -> None:
        self.state = state
        self.role = role
        self.netns = f"{state.prefix}-{role}"
        self.holder: subprocess.Popen[bytes] | None = None
        self.daemons: dict[str, Daemon] = {}

    @property
    def logs(self) -> Path:
        return self.state.directory / "logs"

    @property
    def disk(self) -> Path:
        """The box's root disk: what its /etc overlay wrote. Gone when the box is wiped."""
        return self.state.directory / "disks" / self.role

    # -- network namespace ---------------------------------------------------

    def create(self) -> None:
        self.state.add_netns(self.netns)
        run(["ip", "netns", "add", self.netns])
        self.ip("link", "set", "lo", "up")
        for key in ("all", "default"):
            self.sysctl(f"net.ipv4.conf.{key}.rp_filter", "0")

    def ip(self, *args: str) -> str:
        return run(["ip", "-n", self.netns, *args]).stdout

    def sysctl(self, key: str, value: str) -> None:
        run(["nsenter", f"--net=/run/netns/{self.netns}", "sysctl", "-qw", f"{key}={value}"])

    def nft(self, ruleset: str) -> None:
        self.run(["nft", "-f", "-"], input=ruleset)

    # -- mount namespace -----------------------------------------------------

    def private_mounts(
        self,
        *,
        hosts: str,
        tools: Mapping[str, Path],
        binds: Mapping[str, Path] | None = None,
    ) -> None:
        """Start the holder and give the box its own /run, /var/lib, /etc, /usr/local/bin."""
        (self.disk / "etc-upper").mkdir(parents=True)
        (self.disk / "etc-work").mkdir()
        self.holder = subprocess.Popen(
            [
                "nsenter",
                f"--net=/run/netns/{self.netns}",
                "--",
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "--",
                "sleep",
                "infinity",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.state.add_pid(self.holder.pid)
        host_ns = Path("/proc/self/ns/mnt").readlink()
        holder = self.holder.pid
        wait_for(
            f"{self.role}: mount namespace",
            lambda: Path(f"/proc/{holder}/ns/mnt").readlink() != host_ns,
            5,
            0.005,
        )
        script = [
            "mount -t sysfs sysfs /sys",
            "mount -t tmpfs -o mode=0755 lab-run /run",
            "mount -t tmpfs -o mode=0755 lab-varlib /var/lib",
            "mount -t tmpfs -o mode=0755 lab-bin /usr/local/bin",
            # user_data unpacks the edge's bundle here: the box's own, never the host's.
            "mkdir -p /usr/local/lib/homelab-tunnel",
            "mount -t tmpfs -o mode=0755 lab-lib /usr/local/lib/homelab-tunnel",
            f"mount -t overlay lab-etc -o lowerdir=/etc,upperdir={self.disk}/etc-upper,"
            f"workdir={self.disk}/etc-work /etc",
            "rm -f /etc/resolv.conf /etc/hosts",
        ]
        for target, source in (binds or {}).items():
            script += [f"mkdir -p {target}", f"mount --bind {source} {target}"]
        self.run(["sh", "-ec", "\n".join(script)])
        self.write("/etc/hosts", hosts)
        self.write("/etc/resolv.conf", RESOLV_CONF)
        for name, target in tools.items():
            self.path(f"/usr/local/bin/{name}").symlink_to(target)

    def install_program(self, name: str, program: Path) -> None:
        """`program` at /usr/local/bin/`name` for every user: a bind mount, not a symlink, since
        the lab's builds live under /root, which other users cannot enter."""
        inside = f"/usr/local/bin/{name}"
        link = self.path(inside)
        if link.is_symlink():
            link.unlink()
        else:
            self.run(["umount", inside], check=False)
        link.touch()
        self.run(["mount", "--bind", program, inside])

    def path(self, inside: str) -> Path:
        """A path as the box sees it, reachable from the host."""
        if self.holder is None:
            raise LabError(f"{self.role} has no mount namespace")
        return Path(f"/proc/{self.holder.pid}/root{inside}")

    def write(self, inside: str, content: str | bytes, mode: int = 0o644) -> None:
        target = self.path(inside)
        target.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode() if isinstance(content, str) else content
        target.write_bytes(data)
        target.chmod(mode)

    # -- processes -----------------------------------------------------------

    def command(self, argv: Sequence[object]) -> list[str]:
        args = [str(arg) for arg in argv]
        if self.holder is None:  # a router: its network namespace only
            return ["nsenter", f"--net=/run/netns/{self.netns}", "--", *args]
        return ["nsenter", "-t", str(self.holder.pid), "-m", "-n", "--", *args]

    def run(
        self,
        argv: Sequence[object],
        *,
        check: bool = True,
        timeout: float = 60,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**BASE_ENV, **(env or {})}
        return run(self.command(argv), check=check, timeout=timeout, env=full_env, input=input)

    def spawn(
        self, name: str, argv: Sequence[object], env: Mapping[str, str] | None = None
    ) -> Daemon:
        """Start a daemon in its own process group; its output goes to logs/<role>-<name>.log."""
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{self.role}-{name}.log"
        with log.open("ab") as handle:
            process = subprocess.Popen(
                self.command(argv),
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**BASE_ENV, **(env or {})},
                start_new_session=True,
            )
        self.state.add_pid(process.pid)
        daemon = Daemon(name, process, log)
        self.daemons[name] = daemon
        return daemon

    def stop(self, name: str) -> int | None:
        daemon = self.daemons.pop(name, None)
        return daemon.stop() if daemon else None

    def log(self, name: str) -> str:
        path = self.logs / f"{self.role}-{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def destroy(self) -> None:
        """Stop its daemons, end the mount namespace, delete the network namespace."""
        for name in reversed(list(self.daemons)):
            self.stop(name)
        if self.holder is not None:
            self.holder.kill()
            self.holder.wait(timeout=10)
            self.holder = None
        run(["ip", "netns", "del", self.netns], check=False)
