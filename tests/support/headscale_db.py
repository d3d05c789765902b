"""Real Headscale state directories, made by the real release binaries on 127.0.0.1.

`headscale serve` creates and migrates its database at start; once /health
answers it is stopped again (SIGTERM), leaving the database exactly as that
release leaves it on a volume: WAL mode, its own migrations table, and from
0.29 on its database_versions row.
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from support.loopback import free_port


def _config(directory: Path, http: int) -> str:
    return f"""\
server_url: http://127.0.0.1:{http}
listen_addr: 127.0.0.1:{http}
metrics_listen_addr: 127.0.0.1:{free_port()}
grpc_listen_addr: 127.0.0.1:{free_port()}
grpc_allow_insecure: false
noise:
  private_key_path: {directory}/noise_private.key
prefixes:
  v4: 100.64.0.0/10
  v6: fd7a:115c:a1e0::/48
  allocation: sequential
derp:
  server:
    enabled: true
    region_id: 999
    region_code: headscale
    region_name: test
    stun_listen_addr: 127.0.0.1:{free_port(socket.SOCK_DGRAM)}
    private_key_path: {directory}/derp_server_private.key
    automatically_add_embedded_derp_region: true
    ipv4: 127.0.0.1
  urls: []
  paths: []
  auto_update_enabled: false
disable_check_updates: true
database:
  type: sqlite
  sqlite:
    path: {directory}/db.sqlite
    write_ahead_log: true
log:
  level: warn
policy:
  mode: file
  path: ""
dns:
  magic_dns: true
  base_domain: tail.example.net
  override_local_dns: false
  nameservers:
    global: []
unix_socket: {directory}/headscale.sock
unix_socket_permission: "0770"
logtail:
  enabled: false
"""


def _healthy(http: int) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{http}/health", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def run_once(binary: Path, directory: Path, timeout: float = 60) -> Path:
    """Start `binary` on `directory` (created or reused) until healthy, stop it: the database."""
    directory.mkdir(parents=True, exist_ok=True)
    http = free_port()
    config = directory / "config.yaml"
    config.write_text(_config(directory, http))
    log = (directory / f"{binary.parent.parent.name}.log").open("w")
    with log:
        process = subprocess.Popen(
            [str(binary), "-c", str(config), "serve"], stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + timeout
            while not _healthy(http):
                if process.poll() is not None:
                    raise RuntimeError(f"{binary} exited {process.returncode}: see {log.name}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{binary} not healthy within {timeout}s: see {log.name}")
                time.sleep(0.1)
        finally:
            process.terminate()
            process.wait(timeout=30)
    return directory / "db.sqlite"


# The newest migration each release writes (hscontrol/db/db.go at its tag).
NEWEST_MIGRATION = {
    "0.27.1": "202511101554-drop-old-idx",
    "0.28.0": "202601121700-migrate-hostinfo-request-tags",
    "0.29.2": "202606181200-recover-null-tags-node-user-id",
}


def shaped_database(path: Path, release: str) -> Path:
    """A database with the tables the upgrade guard reads, as `release` leaves them."""
    import sqlite3

    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path)
    with connection:
        connection.execute("CREATE TABLE migrations (id text PRIMARY KEY)")
        connection.execute(
            "INSERT INTO migrations VALUES ('SCHEMA_INIT'), (?)", (NEWEST_MIGRATION[release],)
        )
        connection.execute("CREATE TABLE users (id integer PRIMARY KEY, name text)")
        connection.execute("INSERT INTO users (name) VALUES ('homelab')")
        if release >= "0.29":
            connection.execute(
                "CREATE TABLE database_versions (id integer PRIMARY KEY, version text)"
            )
            connection.execute("INSERT INTO database_versions VALUES (1, ?)", (f"v{release}",))
    connection.close()
    return path
