"""The lab: the real Headscale, tailscaled, Caddy and Pebble in network namespaces.

    acme     192.0.2.50     Pebble (ACME), validating through the router like any client
    visitor  203.0.113.34   a browser on the internet that trusts Pebble's roots
        \\       |
         inet (router)      DNATs the reserved IP 192.0.2.10 to the droplet's anchor,
        /       |           SNATs the anchor back; drops and counts anything else
    edge     203.0.113.2 + anchor 198.51.100.2: Headscale, tailscaled, Caddy
    homert   203.0.113.18, masquerading 198.51.100.64/26
      home   198.51.100.66: the app (one port per site) and tailscaled

    mirror   192.0.2.98     the package mirror: Tailscale's, Caddy's and Debian's
                            repositories, GitHub's release downloads
    store    192.0.2.82     Spaces (the config bucket; the backup bucket)

The edge is a booted Debian droplet (droplet_edge.py, on tests/support/droplet/)
that gets user_data rendered from a lab config by the project's own code,
byte for byte, through cloud-init; bootstrap.sh runs every step under its
systemd, installing from the mirror; DigitalOcean's metadata service and the
cloud firewall synthesized from the same config sit on the router. The
homelab is also the operator's machine (its address is the one in
`ssh_allowed_cidrs`): it joins with the script `join-command` prints, and
`lab.cli` runs the tool there, over real ssh. With `backups=True` the config
turns backups on. Every name a box knows is in its private /etc/hosts.
`Lab().up()` returns a lab with the homelab joined and the sites served over
a direct path; `down()` (also run at exit, on SIGTERM, and by the next run if
this process is killed) removes every namespace, droplet, loop device and
process it made.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import secrets
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.edge.config_status import STATUS_PATH as CONFIG_STATUS
from homelab_tunnel.edge.versions import HEADSCALE_VERSION
from homelab_tunnel.payload import edge_config_object, software_object
from homelab_tunnel.tailnet.join import MINT_KEY
from homelab_tunnel.tailnet.ssh import known_hosts_file
from support.channel import config_metadata
from support.droplet.cloud import Cloud
from support.droplet.firewall import from_stack
from support.droplet.rootfs import DropletUnavailable
from support.lab.addresses import (
    ACME,
    ACME_NAME,
    OLD_CLIENT,
    RELAY,
    RELAY_NAME,
    RESERVED_IP,
    STORE,
    VISITOR,
    Host,
)
from support.lab.bootstrap import BootstrapRun
from support.lab.boxes import Box
from support.lab.deploy import (
    LAB_NAME,
    POLICY_SITES,
    SITES,
    SPACES_REGION,
    ZONE,
    droplet_user_data,
    first_domains,
    hosts_file,
    lab_config_document,
    write_lab_config,
)
from support.lab.droplet_edge import WEBHOOK_URL, DropletEdge, image_files
from support.lab.gates import AuthServer
from support.lab.home import Home
from support.lab.network import Internet
from support.lab.nodes import TailscaleNode
from support.lab.pebble import Pebble
from support.lab.probes import curl
from support.lab.processes import (
    RunState,
    down_at_exit,
    forget_at_exit,
    reap_orphans,
)
from support.lab.requirements import (
    LabUnavailable,
    auth_server_program,
    backup_programs,
    check_machine,
    find_programs,
    headscale_release,
)
from support.lab.shell import BASE_ENV, LabError, run, wait_for
from support.lab.shims import write_shims
from support.lab.store import Store, age_identity, spaces_host
from support.mirror.box import MirrorBox
from support.mirror.build import contents
from support.mirror.cache import MirrorUnavailable


class Lab:
    """One run of the lab; `up()` builds it, `down()` removes every trace but its logs."""

    # Facts a scenario names, as attributes (the config's are on `lab.config`).
    reserved_ip = RESERVED_IP
    zone = ZONE

    def __init__(
        self,
        prefix: str | None = None,
        *,
        headscale: Path | None = None,
        release: str | None = None,
        backups: bool = False,
        policy: bool = False,
    ) -> None:
        """`headscale`: another Headscale binary for the edge than the pinned one; `release`:
        another Headscale release, set in the config too; `backups`: on, with a store box;
        `policy`: the policy sites too, and a real auth server (oauth2-proxy) on the homelab."""
        check_machine()
        self.programs = find_programs()
        if release is not None:
            headscale = headscale_release(release)
        if headscale is not None:
            self.programs = dataclasses.replace(self.programs, headscale=headscale)
        self.release = release or HEADSCALE_VERSION
        self.backup_tools = backup_programs() if backups else {}
        self.policy = policy
        auth_binary = auth_server_program() if policy else None
        try:
            self.cloud = Cloud(prefix or f"hl{secrets.token_hex(2)}")
            mirrored = contents()
        except (DropletUnavailable, MirrorUnavailable) as exc:
            raise LabUnavailable(str(exc)) from exc
        self.state: RunState = self.cloud.state
        self.directory = self.state.directory
        self.internet: Internet = self.cloud.internet
        self.mirror = MirrorBox(self.state, mirrored)
        self.acme = Box(self.state, "acme")
        self.visitor = Box(self.state, "visitor")
        self.roots = self.directory / "ca-roots.pem"
        self.home = Home(self.state, self.roots)
        self.auth_server = AuthServer(self.home.box, auth_binary, ZONE) if auth_binary else None
        self.pebble = Pebble(self.acme, self.programs.pebble, self.directory / "pki")
        names = {ACME_NAME: ACME.address, RELAY_NAME: RELAY.address}
        # The config bucket always (the in-place channel); the backup bucket with backups.
        self.store = Store(
            self.state,
            region=SPACES_REGION,
            config_bucket=f"{LAB_NAME}-config",
            backup_bucket=f"{LAB_NAME}-backup" if backups else None,
        )
        self.backups = backups
        names[spaces_host(SPACES_REGION)] = STORE.address
        self.names = names  # the lab's own names, beside the edge's records
        self.hosts = hosts_file(first_domains(), names)
        self.more_boxes: list[Box] = []  # internet boxes added by scenarios
        self.owner_key = self.directory / "owner.key"  # the owner's age identity, off the edge
        # What DigitalOcean generates for the edge secret's Spaces key: no bucket credential.
        self.edge_secret = secrets.token_urlsafe(32)
        self.owner_recipient: str | None = None
        self.shims = self.directory / "shims"
        self.timings: dict[str, float] = {}
        self.config_path = self.directory / "lab.toml"
        self.config: TunnelConfig
        self.edge: DropletEdge
        self.operator_ssh = self.directory / "operator-ssh"  # the homelab's ~/.ssh
        self.stack: dict[str, Any] = {}
        self.join_script = ""
        self.join: subprocess.CompletedProcess[str]

    # -- bring-up ------------------------------------------------------------

    def up(self) -> Lab:
        reap_orphans()
        down_at_exit(self.state.prefix, self.down)
        started = time.monotonic()
        try:
            self._network()
            self._step("pebble, visitor, home app, store, mirror", self._parallel(
                self.pebble.start, self._visitor, self._home_app, self.store.start,
                self.mirror.start))  # fmt: skip
            self._step("config, firewall", self._config)
            self._step("droplet ready, home tailscaled", self._parallel(
                self._edge, self.home.node.start))  # fmt: skip
            self._step("certificate for Headscale's name", self._await_certificate)
            self._step("homelab joined", self._join_home)
            if self.auth_server:
                self._step("auth server on the homelab", self._start_auth_server)
            self._step("sites served, path direct", self._await_direct)
        except BaseException:
            self.down()
            raise
        self.timings["total"] = time.monotonic() - started
        return self

    def _step(self, name: str, action: Callable[[], object]) -> None:
        started = time.monotonic()
        action()
        self.timings[name] = time.monotonic() - started

    @staticmethod
    def _parallel(*actions: Callable[[], object]) -> Callable[[], None]:
        def run_all() -> None:
            with ThreadPoolExecutor(len(actions)) as pool:
                for future in [pool.submit(action) for action in actions]:
                    future.result()

        return run_all

    def _network(self) -> None:
        started = time.monotonic()
        self.cloud.up()  # the router, the metadata service, the operator's ssh key
        for box, host, link in ((self.acme, ACME, "acme0"), (self.visitor, VISITOR, "visitor0")):
            box.create()
            self.internet.attach(box, host, link)
        self.acme.private_mounts(hosts=self.hosts, tools={})
        self.store.create(self.internet, self.hosts)
        self.mirror.create(self.internet)
        shims = write_shims(self.shims, logs=self.directory / "logs")
        tools = {"tailscale": self.programs.tailscale, "tailscaled": self.programs.tailscaled}
        self.operator_ssh.mkdir(mode=0o700)
        shutil.copy(self.cloud.ssh_key, self.operator_ssh / "id_ed25519")
        binds = {"/root/.ssh": self.operator_ssh}
        self.home.create(self.internet, hosts=self.hosts, tools={**tools, **shims}, binds=binds)
        self.timings["network"] = time.monotonic() - started

    def _visitor(self) -> None:
        self.visitor.private_mounts(hosts=self.hosts, tools={})

    def _home_app(self) -> None:
        sites = [*SITES, *((name, port) for name, port, _ in POLICY_SITES if self.policy)]
        self.home.start_app({port: name for name, port in sites})

    def _start_auth_server(self) -> None:
        assert self.auth_server is not None
        self.auth_server.start(edge_address=self.edge.node.cli("ip", "-4").stdout.strip())

    def _document(self, release: str, **changes: Any) -> dict[str, Any]:
        version = None if release == HEADSCALE_VERSION else release
        return lab_config_document(
            self.pebble.roots(),
            headscale_version=version,
            backup_recipient=self.owner_recipient,
            policy=self.policy,
            **changes,
        )

    def document(self, **changes: Any) -> dict[str, Any]:
        """The lab's config as the edge runs it, with `changes` (`lab_config_document`'s)."""
        return self._document(self.release, **changes)

    def _user_data(self) -> str:
        return droplet_user_data(self.config, self.store.keys, self.edge_secret)

    def apply(
        self,
        document: dict[str, Any] | None = None,
        *,
        webhook: str = WEBHOOK_URL,
        records: bool = True,
    ) -> str:
        """`terraform apply` of the lab config (or `document`): its DNS records, then the
        software and the config object written to the config bucket as Terraform writes them
        (the object depends on the records). The config's version.

        `records=False`: the records reach the resolvers only later (`publish_records()`),
        as when a resolver has not seen them yet.
        """
        if document is not None:
            self.config = write_lab_config(self.config_path, document)
        if records:
            self.publish_records()
        software = software_object(self.config)
        self.store.publish(software.key, base64.b64decode(software.base64), {})
        edge_config = edge_config_object(self.config)
        metadata = config_metadata(edge_config.body, secret=self.edge_secret, webhook=webhook)
        self.store.publish(edge_config.key, edge_config.body.encode(), metadata)
        return edge_config.version

    def publish_records(self) -> None:
        """Every box resolves exactly the config's names to the reserved IP, as DNS would once
        the apply's records are seen: names added resolve, names removed no longer do."""
        self.hosts = hosts_file(self.config.domains, self.names)
        if hasattr(self, "edge"):
            self.edge.publish_hosts(self.hosts)  # this droplet, and any booted later
        for box in self.boxes():
            box.write("/etc/hosts", self.hosts)

    def boxes(self) -> list[Box]:
        """Every box with a resolver of its own but the routers and the droplet."""
        boxes = [self.acme, self.visitor, self.store.box, self.home.box, *self.more_boxes]
        return [box for box in boxes if box.holder is not None]

    def apply_in_place(self, document: dict[str, Any], timeout: float = 45) -> str:
        """`apply(document)`, then wait until the running edge's config agent applied it."""
        version = self.apply(document)
        status = self.edge.box.path(str(CONFIG_STATUS))

        def applied() -> bool:
            try:
                return json.loads(status.read_text())["applied"]["version"] == version
            except (OSError, ValueError, KeyError, TypeError):
                return False

        wait_for(f"the edge applying config {version} in place", applied, timeout, 0.2)
        return version

    def _config(self) -> None:
        """The lab config, `terraform apply`'s objects in the bucket, and the cloud firewall
        synthesized from the same config."""
        self.roots.write_text(self.pebble.roots())
        if self.backups:
            self.owner_recipient = age_identity(self.owner_key)
        self.config = write_lab_config(self.config_path, self._document(self.release))
        assert self.config.channel_bucket == self.store.config_bucket
        assert self.config.backup.enabled is self.backups
        self.apply()
        out = self.directory / "cdktf.out"
        self.tool("synth", "--config", str(self.config_path), "--out", str(out))
        self.stack = json.loads((out / "stacks" / self.config.name / "cdk.tf.json").read_text())
        self.apply_firewall()

    def apply_firewall(self) -> None:
        """DigitalOcean's cloud firewall as the synthesized stack declares it."""
        self.cloud.apply_firewall(from_stack(self.stack))

    def _edge(self) -> None:
        image = image_files(
            hosts=self.hosts,
            name=self.config.name,
            mirror=self.mirror,
            roots={"mirror": self.mirror.ca.read_text(), "spaces": self.store.ca.read_text()},
            lower=self.cloud.lower,
        )
        self.edge = DropletEdge(
            cloud=self.cloud,
            user_data=self._user_data(),
            volume=self.cloud.volume(self.config.volume_name),
            image=image,
            name=self.config.name,
        )
        self.edge.start()

    def _await_certificate(self) -> None:
        url = f"https://{self.config.headscale.domain}/health"
        wait_for(
            "Caddy serving Headscale's name with a Pebble certificate",
            lambda: curl(self.visitor, url, "-f", roots=self.roots).returncode == 0,
            60,
            0.2,
        )

    def _join_home(self) -> None:
        self.join_script = self.cli(
            "join-command", "--config", str(self.config_path), "--edge", RESERVED_IP
        ).stdout
        self.join = self.home.join(self.join_script)
        if self.join.returncode != 0:
            raise LabError(f"the join script failed:\n{self.join.stdout}{self.join.stderr}")

    def _await_direct(self) -> None:
        for name, _ in SITES:  # the open ones: a policy site may refuse this visitor
            domain = f"{name}.{ZONE}"
            wait_for(
                f"{domain} through the edge",
                lambda d=domain, n=name: f"{n} app" in self.page(d),
                30,
                0.2,
            )
        # A new peer's home DERP region reaches the edge's netmap a moment after it joins.
        wait_for("the homelab's home DERP", lambda: self.edge.node.peer("homelab").get("Relay"), 20)
        self.edge.node.wait_direct("homelab")

    # -- using it ------------------------------------------------------------

    def deploy_headscale(self, release: str, *, check: bool = True) -> BootstrapRun:
        """headscale.version = `release` in the config, deployed: user_data changes, so a
        new droplet (the next addresses) boots on the same volume. Its bootstrap run."""
        self.apply(self._document(release))
        self.edge.user_data = self._user_data()
        return self.replace_edge(check=check)

    def replace_edge(self, *, blank_volume: bool = False, check: bool = True) -> BootstrapRun:
        """The next droplet, on the volume (or a blank one); its first boot's bootstrap."""
        return self.edge.replace(blank_volume=blank_volume, check=check)

    def join_machine(self, name: str, host: Host) -> TailscaleNode:
        """A machine on the internet joins as Headscale user `name`, its key minted on the edge."""
        tools = {"tailscale": self.programs.tailscale, "tailscaled": self.programs.tailscaled}
        node = TailscaleNode(self.internet_box(name, host, tools), str(self.roots))
        node.start()
        self.log_in(node, name)
        return node

    def log_in(self, node: TailscaleNode, name: str) -> None:
        """`tailscale up` on `node` as Headscale user `name`, with a key minted on the edge."""
        key = self.ssh(MINT_KEY, name, "10m").stdout.strip()
        node.cli(
            *("up", "--login-server", self.config.headscale_url, "--auth-key", key),
            *("--hostname", name, "--accept-dns=false", "--timeout", "60s"),
            timeout=90,
        )

    def rejoin(self, node: TailscaleNode, name: str) -> None:
        """`name` registered anew: its node deleted in Headscale and its state wiped, so it
        comes back as a new node, with the next address Headscale hands out."""
        (ident,) = [str(n["id"]) for n in self.edge.nodes() if n["name"] == name]
        node.box.stop("tailscaled")
        node.box.run(["rm", "-rf", "/var/lib/tailscale"])
        self.edge.headscale("nodes", "delete", "--identifier", ident, "--force")
        node.start()
        self.log_in(node, name)

    def default_routing(self) -> None:
        """DigitalOcean's default routing back after the egress script, the edge's tailscaled
        running, a direct path both ways."""
        edge = self.edge
        logged = len(edge.box.log("tailscaled"))
        running = edge.systemctl("is-active", "tailscaled", check=False).stdout.strip() == "active"
        edge.undo_egress()
        if running:
            # A route change tailscaled calls major resets its paths: let it happen before
            # waiting for one. (One it started under, it does; one it saw made, not always.)
            changed = lambda: "LinkChange: major" in edge.box.log("tailscaled")[logged:]  # noqa: E731
            with contextlib.suppress(LabError):
                wait_for("tailscaled to see the route change", changed, 5)
        else:
            edge.systemctl("start", "tailscaled")
        edge.node.wait_direct("homelab", timeout=60)
        self.home.node.wait_direct(self.config.name, timeout=60)

    def cli(
        self, *args: str, env: dict[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """`homelab-tunnel ARGS` on the operator's machine (the homelab), its ssh the real one."""
        return self.home.box.run(
            [self.programs.cli, *args],
            env={"COLUMNS": "200", "NO_COLOR": "1", **(env or {})},
            check=check,
            timeout=180,
        )

    def tool(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`homelab-tunnel ARGS` on this machine, for what needs no network (synth)."""
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "COLUMNS": "200", "NO_COLOR": "1"}
        return run([self.programs.cli, *args], env=env, timeout=180)

    def ssh(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`ssh root@<reserved IP> COMMAND` from the operator's machine, checking the host key
        against the tool's known_hosts beside the config."""
        argv = [
            *("ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"),
            *("-o", "StrictHostKeyChecking=accept-new"),
            *("-o", f"UserKnownHostsFile={self.known_hosts}", f"root@{RESERVED_IP}"),
            shlex.join(command),
        ]
        return self.home.box.run(argv, check=check, timeout=180)

    @property
    def known_hosts(self) -> Path:
        return known_hosts_file(self.config_path)

    def cli_session(self, *args: str) -> subprocess.Popen[str]:
        """`homelab-tunnel ARGS` started in a session of its own, to be killed like a dropped
        connection kills ssh (`os.killpg`)."""
        return subprocess.Popen(
            self.home.box.command([self.programs.cli, *args]),
            env={**BASE_ENV, "COLUMNS": "200", "NO_COLOR": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def doctor(self) -> subprocess.CompletedProcess[str]:
        """`homelab-tunnel doctor --ssh root@<reserved IP>`, as an operator runs it."""
        ssh = f"root@{RESERVED_IP}"
        return self.cli("doctor", "--config", str(self.config_path), "--ssh", ssh, check=False)

    def page(self, domain: str, path: str = "/") -> str:
        """What the visitor gets for https://domain/path ('' on any failure)."""
        done = curl(self.visitor, f"https://{domain}{path}", "-f", roots=self.roots)
        return done.stdout if done.returncode == 0 else ""

    def page_once_up(self, domain: str, timeout: float = 60) -> str:
        """The first page the visitor gets for https://domain/ ('' if none within `timeout`)."""
        deadline = time.monotonic() + timeout
        while not (page := self.page(domain)) and time.monotonic() < deadline:
            time.sleep(0.2)
        return page

    def internet_box(self, role: str, host: Host, tools: dict[str, Path]) -> Box:
        """One more box on the internet, with its own /28 and mount namespace."""
        box = Box(self.state, role)
        box.create()
        self.internet.attach(box, host, f"{role}0")
        box.private_mounts(hosts=self.hosts, tools=tools)
        self.more_boxes.append(box)
        return box

    @contextlib.contextmanager
    def old_client(self) -> Iterator[TailscaleNode]:
        """A box on the internet with the Tailscale release Headscale refuses; removed after."""
        tools = {
            "tailscale": self.programs.old_tailscale,
            "tailscaled": self.programs.old_tailscaled,
        }
        box = self.internet_box("old", OLD_CLIENT, tools)
        try:
            yield TailscaleNode(box, str(self.roots))
        finally:
            box.destroy()
            self.internet.detach("old0")

    # -- teardown ------------------------------------------------------------

    def down(self) -> None:
        self.cloud.down()

    def keep(self) -> None:
        """Leave it running after this process exits (tear down with `down PREFIX`)."""
        self.state.keep()
        forget_at_exit(self.state.prefix)

    def __enter__(self) -> Lab:
        return self.up()

    def __exit__(self, *_exc: object) -> None:
        self.down()
