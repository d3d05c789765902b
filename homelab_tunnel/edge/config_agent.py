"""The config agent: new versions from the config bucket, validated, then applied gracefully.

    python3 -m homelab_tunnel.edge.config_agent boot     bootstrap's edge-config step
    python3 -m homelab_tunnel.edge.config_agent watch    homelab-tunnel-config.service
    python3 -m homelab_tunnel.edge.config_agent status   the status, as JSON

`watch` asks the bucket every few seconds (a HEAD: ETag and MAC) and fetches
only a version it has not seen. A version is applied whole or not at all:
every changed file is written beside its target and checked by the real tool
(`caddy validate`, `headscale policy check` against the running Headscale,
the forwarding table the port list makes through `nft -c`) before any is
installed; then the machines' Headscale users are made, Headscale re-reads its
policy (SIGHUP), Caddy reloads (open connections stay) and the port agent
replaces its nftables table. A new
site's name must resolve to the reserved IP first, so its first certificate
request cannot fail against a name that does not point here yet (Let's
Encrypt allows 5 failures per name and hour); until it does, the version
waits and is tried again at the next check. A refused version changes
nothing: the previous one keeps serving, and the health agent is run at once
to report it; the same object is not looked at again, and the refusal ends
when the bucket holds the applied version again. An object is known by its
ETag and MAC, so a body swapped under a MAC kept is looked at, and refused.
The last applied version is kept on the state volume, so a reboot, a new
droplet or a bucket outage keeps serving it; checks the bucket does not
answer are counted, and the health agent hears at the third in a row.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from homelab_tunnel.edge import s3
from homelab_tunnel.edge.channel import (
    SETTINGS_PATH,
    Channel,
    ChannelError,
    EdgeConfig,
    Signed,
    verify,
)
from homelab_tunnel.edge.config_status import UNREACHABLE_POLLS, bucket_unreachable
from homelab_tunnel.edge.derive import read_secret
from homelab_tunnel.edge.envfile import EnvFileError, read
from homelab_tunnel.edge.filelock import locked

STATE_DIR = "/var/lib/homelab-tunnel/config"  # on the state volume (bootstrap's bind mount)
APPLIED = "applied.json"
STATUS = "status.json"
LOCK = "/run/homelab-tunnel/config.lock"
EDGE_ENV = "/etc/homelab-tunnel/edge.env"
WEBHOOK_ENV = "/etc/homelab-tunnel/health-webhook.env"
METADATA = os.environ.get("HOMELAB_TUNNEL_METADATA", "http://169.254.169.254/metadata/v1")
INTERVAL = 10.0
DNS_WAIT = 300.0
HEALTH_UNIT = "homelab-tunnel-health.service"

Runner = Callable[[Sequence[str]], subprocess.CompletedProcess[str]]


@dataclass(frozen=True)
class Part:
    """A file of the config: where it goes, the real tool that checks it, who re-reads it."""

    name: str
    path: str
    check: tuple[str, ...] = ()
    reload: str = ""
    # Headscale's policy check asks the running server (0.29: over gRPC); before
    # Headscale first starts, its own start-up is the check.
    needs_running: str = ""
    tool: str = ""  # what a refusal names; default: the check's first two words


PARTS = (
    Part(
        "policy.hujson",
        "/etc/headscale/policy.hujson",
        ("headscale", "policy", "check", "--file", "{file}"),
        reload="headscale",
        needs_running="headscale",
    ),
    Part(
        "Caddyfile",
        "/etc/caddy/Caddyfile",
        ("caddy", "validate", "--config", "{file}", "--adapter", "caddyfile"),
        reload="caddy",
    ),
    Part("health.env", "/etc/homelab-tunnel/health.env"),
    Part("metrics.env", "/etc/homelab-tunnel/metrics.env", reload="homelab-tunnel-metrics"),
    Part(
        "ports.json",
        "/etc/homelab-tunnel/ports.json",
        ("python3", "-m", "homelab_tunnel.edge.port_agent", "check", "{file}"),
        reload="homelab-tunnel-ports",
        tool="nft -c",
    ),
)


class Refused(Exception):
    """A version that must not be applied; the message is the one line the operator sees."""


class NotYet(Refused):
    """A version that can be applied once something outside the edge catches up (DNS)."""


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_command(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    # caddy validate provisions its apps: give it a home of its own, never /root's or Caddy's.
    with tempfile.TemporaryDirectory(prefix="homelab-tunnel-check.") as home:
        env = {**os.environ, "HOME": home, "XDG_DATA_HOME": home, "XDG_CONFIG_HOME": home}
        return subprocess.run(
            list(argv), capture_output=True, text=True, timeout=120, env=env, check=False
        )


def _last_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = (done.stderr or done.stdout or "").strip().splitlines()
    return lines[-1][:300] if lines else f"exit code {done.returncode}"


class Agent:
    """One edge's view of its config: what it applied, what the bucket holds, and why not."""

    def __init__(
        self,
        *,
        channel: Channel | None,
        secret: str,
        edge_name: str,
        root: Path = Path("/"),
        run: Runner = run_command,
        resolve: Callable[[str], set[str]] | None = None,
        reserved_ip: Callable[[], str] | None = None,
        dns_wait: float = DNS_WAIT,
    ) -> None:
        self.channel = channel
        self.secret = secret
        self.edge_name = edge_name
        self.root = root
        self.run = run
        self.resolve = resolve or _resolve
        self.reserved_ip = reserved_ip or _reserved_ip
        self.dns_wait = dns_wait
        self.state = self.path(STATE_DIR)
        self.seen: tuple[str, str] | None = None

    def path(self, inside: str) -> Path:
        return self.root / inside.lstrip("/")

    # -- what is on the volume -----------------------------------------------

    def applied(self) -> EdgeConfig | None:
        """The last applied version, proven again: the volume is trusted no more than the bucket."""
        try:
            data = json.loads((self.state / APPLIED).read_text())
            return verify(Signed.from_json(data), self.secret, self.edge_name)
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, ChannelError):
            return None

    def status(self) -> dict[str, Any]:
        try:
            return dict(json.loads((self.state / STATUS).read_text()))
        except (FileNotFoundError, ValueError):
            return {}

    def _update_status(self, **changes: Any) -> dict[str, Any]:
        status = {**self.status(), **changes}
        _write(self.state / STATUS, json.dumps(status, indent=1, sort_keys=True) + "\n", 0o644)
        return status

    # -- one version -------------------------------------------------------------

    def apply(self, config: EdgeConfig, *, boot: bool = False) -> list[str]:
        """Install `config` whole or not at all; the names of the files that changed."""
        previous = self.applied()
        changed = [
            part
            for part in PARTS
            if _read(self.path(part.path)) != config.files.get(part.name)
            or part.name not in config.files
        ]
        missing = [part.name for part in changed if part.name not in config.files]
        if missing:
            raise Refused(f"config {config.version} has no {', '.join(missing)}")
        webhook = f"HEALTH_WEBHOOK_URL={config.webhook}\n"
        if (
            not changed
            and previous is not None
            and previous.signed.mac == config.signed.mac
            and _read(self.path(WEBHOOK_ENV)) == webhook
        ):
            if previous.signed != config.signed:  # the same version uploaded again: its ETag
                _write(self.state / APPLIED, json.dumps(config.signed.to_json()) + "\n", 0o600)
            return []
        candidates: dict[Part, Path] = {}
        before = {part: _read(self.path(part.path)) for part in changed}
        try:
            for part in changed:
                candidates[part] = self._candidate(part, config.files[part.name])
            for part, candidate in candidates.items():
                self._check(part, candidate)
            if not boot:
                self._await_dns(config, previous)
            self._make_users(config)
            for part, candidate in candidates.items():
                candidate.replace(self.path(part.path))
        finally:
            for candidate in candidates.values():
                candidate.unlink(missing_ok=True)
        units = list(dict.fromkeys(part.reload for part in changed if part.reload))
        try:
            for unit in units:
                self._reload(unit)
        except Refused:
            # Checked, yet not taken: the previous files back, and re-read once more.
            for part, content in before.items():
                if content is not None:
                    _write(self.path(part.path), content, 0o644)
            for unit in units:
                self._reload(unit, check=False)
            raise
        _write(self.path(WEBHOOK_ENV), webhook, 0o600)
        _write(self.state / APPLIED, json.dumps(config.signed.to_json()) + "\n", 0o600)
        self._update_status(
            applied={"version": config.version, "at": now()}, refused=None, waiting=None
        )
        return [part.name for part in changed]

    def _candidate(self, part: Part, content: str) -> Path:
        target = self.path(part.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed into place by apply
            "w", dir=target.parent, prefix=f".{target.name}.", delete=False, encoding="utf-8"
        )
        with handle:
            handle.write(content)
        candidate = Path(handle.name)
        candidate.chmod(0o644)
        return candidate

    def _check(self, part: Part, candidate: Path) -> None:
        if not part.check or (part.needs_running and not self._active(part.needs_running)):
            return
        argv = [str(candidate) if word == "{file}" else word for word in part.check]
        done = self.run(argv)
        if done.returncode != 0:
            tool = part.tool or " ".join(part.check[:2])
            raise Refused(f"{part.name} refused by `{tool}`: {_last_line(done)}")

    def _active(self, unit: str) -> bool:
        return self.run(["systemctl", "is-active", "--quiet", unit]).returncode == 0

    def _reload(self, unit: str, *, check: bool = True) -> None:
        """Re-read the config if the service runs; bootstrap starts it otherwise."""
        if not self._active(unit):
            return
        done = self.run(["systemctl", "reload", unit])
        if check and done.returncode != 0:
            raise Refused(f"{unit} did not reload: {_last_line(done)}")

    def _make_users(self, config: EdgeConfig) -> None:
        """Each upstream machine joins as the Headscale user of its name; make the missing ones."""
        if not config.machines or not self._active("headscale"):
            return
        listed = self.run(["headscale", "users", "list", "-o", "json"])
        if listed.returncode != 0:
            raise Refused(f"cannot list Headscale's users: {_last_line(listed)}")
        existing = {user.get("name") for user in json.loads(listed.stdout or "null") or []}
        for machine in config.machines:
            if machine not in existing:
                done = self.run(["headscale", "users", "create", machine])
                if done.returncode != 0:
                    raise Refused(f"cannot create Headscale user {machine}: {_last_line(done)}")

    def _await_dns(self, config: EdgeConfig, previous: EdgeConfig | None) -> None:
        """New names only once they resolve to the reserved IP, within `dns_wait` seconds."""
        new = [name for name in config.domains if previous is None or name not in previous.domains]
        if not new:
            return
        address = self.reserved_ip()
        deadline = time.monotonic() + self.dns_wait
        while True:
            pending = [name for name in new if address not in self.resolve(name)]
            if not pending:
                return
            if time.monotonic() >= deadline:
                raise NotYet(
                    f"{', '.join(pending)} still not resolving to the reserved IP {address} after "
                    f"{self.dns_wait:g} s; not asking for certificates that would fail (check the "
                    "DNS records); trying again"
                )
            self._update_status(waiting=f"DNS of {', '.join(pending)} -> {address}")
            time.sleep(min(5.0, self.dns_wait))

    # -- the bucket ---------------------------------------------------------------

    def refuse(self, signed: Signed, version: str, reason: str) -> None:
        """Never applied; the object (its ETag and MAC) is not looked at again."""
        self._update_status(
            refused={"version": version, "etag": signed.etag, "mac": signed.mac,
                     "reason": reason, "at": now()},
            waiting=None,
        )  # fmt: skip
        self._tell_health()

    def _refused_before(self, etag: str, mac: str) -> bool:
        refused = self.status().get("refused") or {}
        return (refused.get("etag"), refused.get("mac")) == (etag, mac)

    def poll(self) -> str:
        """One look at the bucket; what happened, in words."""
        assert self.channel is not None
        try:
            current = self.channel.head()
        except s3.S3Error as exc:
            return self._unreachable(str(exc))
        status = self.status()
        if bucket_unreachable(status):
            self._tell_health()  # its warning clears
        status = self._update_status(checked=now(), unreachable=None)
        if current == self.seen:
            return "unchanged"
        applied = self.applied()
        # The ETag too: a body changed under a MAC kept (tampering) is looked at, and refused.
        if applied is not None and current == (applied.signed.etag, applied.signed.mac):
            self.seen = current
            return self._holds_applied(applied, status)
        if self._refused_before(*current):
            self.seen = current
            return "refused before"
        try:
            signed = self.channel.fetch()
        except s3.S3Error as exc:
            return self._unreachable(str(exc))
        try:
            config = verify(signed, self.secret, self.edge_name)
        except ChannelError as exc:
            self.refuse(signed, "?", str(exc))
            self.seen = current
            return f"refused: {exc}"
        self._saw(config)
        self.seen = current
        try:
            changed = self.apply(config)
        except NotYet as exc:
            self.seen = None  # the next poll tries this version again
            return f"not yet {config.version}: {exc}"
        except Refused as exc:
            self.refuse(config.signed, config.version, str(exc))
            return f"refused {config.version}: {exc}"
        return f"applied {config.version} ({', '.join(changed) or 'settings only'})"

    def _holds_applied(self, applied: EdgeConfig, status: Mapping[str, Any]) -> str:
        """The bucket holds the applied version: after a refused one was replaced by it (an
        apply of the config before), nothing is refused or pending any more."""
        latest = (status.get("latest") or {}).get("version")
        if not status.get("refused") and latest in (None, applied.version):
            return "unchanged"
        self._update_status(
            refused=None, waiting=None, latest={"version": applied.version, "seen": now()}
        )
        return f"the bucket holds config {applied.version} again, the one applied"

    def _tell_health(self) -> None:
        """The health agent runs now, so the journal and the webhook hear of it at once."""
        self.run(["systemctl", "start", "--no-block", HEALTH_UNIT])

    def _saw(self, config: EdgeConfig) -> None:
        """The newest version in the bucket, and since when it is there."""
        if (self.status().get("latest") or {}).get("version") != config.version:
            self._update_status(latest={"version": config.version, "seen": now()})

    def _unreachable(self, error: str) -> str:
        """Counted poll by poll: the health agent warns after UNREACHABLE_POLLS in a row."""
        before = self.status().get("unreachable") or {}
        polls = int(before.get("polls") or 0) + 1
        since = before.get("since") or now()
        self._update_status(unreachable={"since": since, "polls": polls, "error": error})
        if polls == UNREACHABLE_POLLS:
            self._tell_health()
        return f"bucket unreachable: {error}"

    def boot(self) -> str:
        """At every boot, before the services start: the newest good version, installed."""
        fetched: EdgeConfig | None = None
        problem = ""
        if self.channel is not None:
            for attempt in range(3):
                try:
                    fetched = verify(self.channel.fetch(), self.secret, self.edge_name)
                    break
                except (s3.S3Error, ChannelError) as exc:
                    problem = str(exc)
                    time.sleep(2**attempt)
        if fetched is not None and not self._refused_before(
            fetched.signed.etag, fetched.signed.mac
        ):
            self._saw(fetched)
            try:
                changed = self.apply(fetched, boot=True)
                return f"config {fetched.version} from the bucket ({_changed(changed)})"
            except Refused as exc:
                self.refuse(fetched.signed, fetched.version, str(exc))
                problem = f"config {fetched.version} refused: {exc}"
        kept = self.applied()
        if kept is None:
            raise Refused(
                f"no config to serve: {problem or 'the bucket holds none'}, and none was "
                f"applied before on this volume ({self.state / APPLIED})"
            )
        changed = self.apply(kept, boot=True)
        return f"config {kept.version} kept from the volume ({problem}; {_changed(changed)})"

    def watch(self, interval: float = INTERVAL) -> None:
        # Headscale may not have run when bootstrap applied the config at boot:
        # the users the machines join as are made now that it does.
        kept = self.applied()
        if kept is not None:
            with locked(self.path(LOCK)):
                try:
                    self._make_users(kept)
                except Refused as exc:
                    print(f"homelab-tunnel config: {exc}", flush=True)
        while True:
            with locked(self.path(LOCK)):
                said = self.poll()
            if said not in ("unchanged", "refused before"):
                print(f"homelab-tunnel config: {said}", flush=True)
            time.sleep(interval)


def _changed(names: list[str]) -> str:
    return f"changed: {', '.join(names)}" if names else "nothing changed"


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def _write(path: Path, content: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed into place below
        "w", dir=path.parent, prefix=f".{path.name}.", delete=False, encoding="utf-8"
    )
    with handle:
        handle.write(content)
    Path(handle.name).chmod(mode)
    Path(handle.name).replace(path)


def _resolve(name: str) -> set[str]:
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(name, 443, socket.AF_INET)}
    except OSError:
        return set()


def _reserved_ip() -> str:
    with urllib.request.urlopen(f"{METADATA}/reserved_ip/ipv4/ip_address", timeout=5) as answer:  # noqa: S310 - the metadata service
        return str(answer.read().decode().strip())


def agent_from_files(root: Path = Path("/")) -> Agent:
    edge = read(root / EDGE_ENV.lstrip("/"))
    settings = read(root / str(SETTINGS_PATH).lstrip("/"))
    return Agent(
        channel=Channel.from_env(settings),
        secret=read_secret(root),
        edge_name=edge["EDGE_NAME"],
        root=root,
    )


def main(argv: Sequence[str], env: Mapping[str, str]) -> int:
    if len(argv) != 1 or argv[0] not in ("boot", "watch", "status"):
        print(
            "usage: python3 -m homelab_tunnel.edge.config_agent boot|watch|status", file=sys.stderr
        )
        return 2
    root = Path(env.get("HOMELAB_TUNNEL_ROOT") or "/")
    try:
        agent = agent_from_files(root)
        if argv[0] == "status":
            print(json.dumps(agent.status(), indent=1, sort_keys=True))
        elif argv[0] == "boot":
            with locked(agent.path(LOCK)):
                print(agent.boot())
        else:
            agent.watch()
    except Refused as exc:
        print(f"config: {exc}", file=sys.stderr)
        return 1
    except (OSError, KeyError, ValueError, s3.UsageError, EnvFileError) as exc:
        print(f"config: cannot start: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
