"""Spaces' S3 side, for the provider: moto over TLS as `*.digitaloceanspaces.com`, behind a proxy.

The provider's Spaces client is aws-sdk-go v1 on its default endpoint
template `https://{{.Region}}.digitaloceanspaces.com` (provider.go,
`spaces_endpoint`, at v2.71.0). It addresses a bucket by its own host,
`https://<bucket>.<region>.digitaloceanspaces.com`, whenever the name is
DNS-compatible (aws-sdk-go service/s3/host_style_bucket.go,
hostCompatibleBucketName), over http.DefaultClient (aws/defaults), which
takes HTTPS_PROXY from the environment and never proxies a loopback address
(Go's httpproxy useProxy), so the fake API on 127.0.0.1 stays direct. The
provider therefore keeps its real endpoint here: HTTPS_PROXY names a CONNECT
proxy that lets through only `<anything>.digitaloceanspaces.com:443`, to
moto's TLS port, whose certificate (from a CA of this run, in SSL_CERT_FILE
beside the fake API's) names every Spaces host. moto takes a host it does
not know for `<bucket>.<rest>` (moto/s3/utils.py, bucket_name_from_url).

Signatures are checked (support/moto_s3.py): the operator's key
(SPACES_ACCESS_KEY_ID) may do anything; a key made through /v2/spaces/keys
(spaces_keys.py) opens exactly what its grants say. Nothing leaves the machine.
"""

from __future__ import annotations

import json
import re
import select
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from socketserver import BaseRequestHandler, ThreadingTCPServer
from typing import Any

from support.moto_s3 import GRANTS, enforce_signatures

SPACES_DOMAIN = "digitaloceanspaces.com"
# Provider 2.71.0's SpacesRegions (digitalocean/spaces/spaces_entities.go:16).
REGIONS = ("ams3", "atl1", "blr1", "fra1", "lon1", "nyc3", "sfo2", "sfo3", "sgp1", "syd1", "tor1")
ALLOWED = re.compile(rf"[a-z0-9][a-z0-9.-]*\.{re.escape(SPACES_DOMAIN)}:443")


class FakeSpaces:
    """`with FakeSpaces(directory) as spaces:` moto over TLS and the proxy, both on loopback."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca, self._ca_key = _ca(directory)
        self._cert, self._key = _server_certificate(directory, self.ca, self._ca_key)
        self.admin: tuple[str, str] = ("", "")
        self.minted: dict[str, tuple[str, str]] = {}  # key name -> (access key, secret)
        self._moto: subprocess.Popen[bytes] | None = None
        self._proxy = _Proxy(self)
        self.port = 0

    @property
    def endpoint(self) -> str:
        """moto itself, for this harness's own calls (IAM, setup)."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def proxy(self) -> str:
        return f"http://127.0.0.1:{self._proxy.server_address[1]}"

    def __enter__(self) -> FakeSpaces:
        # A process of its own: moto keeps its state per process, and a test process may
        # run other moto servers (their IAM users and buckets would be this one's too).
        self.port = _free_port()
        argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port),
                "-c", str(self._cert), "-k", str(self._key)]  # fmt: skip
        with (self.directory / "moto.log").open("wb") as log:
            moto = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        self._moto = moto
        threading.Thread(target=self._proxy.serve_forever, daemon=True).start()
        try:
            self._await_moto(moto)
            self.admin = enforce_signatures(self.endpoint, str(self.ca))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self._proxy.shutdown()
        self._proxy.server_close()
        if self._moto is not None:
            self._moto.terminate()
            self._moto.wait(timeout=10)

    def _await_moto(self, moto: subprocess.Popen[bytes], timeout: float = 30) -> None:
        context = ssl.create_default_context(cafile=str(self.ca))
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as raw:
                    context.wrap_socket(raw, server_hostname="127.0.0.1").close()
                return
            except OSError:
                if moto.poll() is not None or time.monotonic() > deadline:
                    log = (self.directory / "moto.log").read_text(errors="replace")
                    raise RuntimeError(f"moto did not start on {self.endpoint}:\n{log}") from None
                time.sleep(0.1)

    # -- for the provider ---------------------------------------------------

    def env(self) -> dict[str, str]:
        """The provider's environment: the proxy, and the operator's Spaces key."""
        return {
            "HTTPS_PROXY": self.proxy,
            "SPACES_ACCESS_KEY_ID": self.admin[0],
            "SPACES_SECRET_ACCESS_KEY": self.admin[1],
        }

    def bundle(self, *more: Path) -> Path:
        """One file of trusted certificates (SSL_CERT_FILE): this CA and `more`."""
        path = self.directory / "trusted.pem"
        path.write_text("".join(p.read_text() for p in (self.ca, *more)))
        return path

    def attach(self, api: Any) -> None:
        """Keys the fake API makes are made here, with their grants."""
        api.state.spaces_minter = self.mint

    def mint(self, name: str, grants: list[dict[str, str]]) -> tuple[str, str]:
        """An IAM user allowed what the grants allow; its key pair (remembered by name)."""
        iam = self._client("iam", self.admin)
        user = f"spaces-{len(self.minted)}-{name}"[:64]
        iam.create_user(UserName=user)
        statements = [
            {"Effect": "Allow", "Action": ["s3:*"], "Resource": "*"}
            if grant["permission"] == "fullaccess"
            else {
                "Effect": "Allow",
                "Action": GRANTS[grant["permission"]],
                "Resource": [
                    f"arn:aws:s3:::{grant['bucket']}",
                    f"arn:aws:s3:::{grant['bucket']}/*",
                ],
            }
            for grant in grants
        ]
        policy = {"Version": "2012-10-17", "Statement": statements}
        iam.put_user_policy(UserName=user, PolicyName="grants", PolicyDocument=json.dumps(policy))
        made = iam.create_access_key(UserName=user)["AccessKey"]
        pair = (str(made["AccessKeyId"]), str(made["SecretAccessKey"]))
        self.minted[name] = pair
        return pair

    # -- for tests ----------------------------------------------------------

    def client(self, key: tuple[str, str] | None = None, region: str = "ams3") -> Any:
        """boto3 as the provider asks: the bucket's own host, through the proxy."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=f"https://{region}.{SPACES_DOMAIN}", region_name="us-east-1",
            aws_access_key_id=(key or self.admin)[0], aws_secret_access_key=(key or self.admin)[1],
            verify=str(self.ca),
            config=Config(s3={"addressing_style": "virtual"}, proxies={"https": self.proxy}),
        )  # fmt: skip

    def _client(self, service: str, key: tuple[str, str]) -> Any:
        import boto3

        return boto3.client(
            service, endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=key[0], aws_secret_access_key=key[1], verify=str(self.ca),
        )  # fmt: skip


class _Proxy(ThreadingTCPServer):
    """CONNECT to `*.digitaloceanspaces.com:443` only, tunnelled to moto; 403 for anything else."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, spaces: FakeSpaces) -> None:
        self.spaces = spaces
        self.refused: list[str] = []
        super().__init__(("127.0.0.1", 0), _Tunnel)


class _Tunnel(BaseRequestHandler):
    server: _Proxy

    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 8192:
            chunk = self.request.recv(1024)
            if not chunk:
                return
            head += chunk
        request_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
        method, _, rest = request_line.partition(" ")
        target = rest.split(" ", 1)[0]
        if method != "CONNECT" or not ALLOWED.fullmatch(target):
            self.server.refused.append(request_line)
            self.request.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        with socket.create_connection(("127.0.0.1", self.server.spaces.port), timeout=10) as up:
            self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            _pipe(self.request, up)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _pipe(one: socket.socket, other: socket.socket) -> None:
    sockets = [one, other]
    while True:
        readable, _, _ = select.select(sockets, [], [], 60)
        if not readable:
            return
        for source in readable:
            data = source.recv(65536)
            if not data:
                return
            (other if source is one else one).sendall(data)


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


def _ca(directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    ca, key = directory / "spaces-ca.pem", directory / "spaces-ca.key"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-days", "1", "-subj", "/CN=homelab-tunnel test Spaces CA",
             "-keyout", str(key), "-out", str(ca))  # fmt: skip
    return ca, key


def _server_certificate(directory: Path, ca: Path, ca_key: Path) -> tuple[Path, Path]:
    """For every region's endpoint, every bucket host under it, and 127.0.0.1."""
    cert, key, csr = (directory / f"spaces.{kind}" for kind in ("crt", "key", "csr"))
    names = [f"DNS:{region}.{SPACES_DOMAIN},DNS:*.{region}.{SPACES_DOMAIN}" for region in REGIONS]
    extensions = directory / "spaces.cnf"
    extensions.write_text(
        f"subjectAltName={','.join(names)},IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-subj", f"/CN={SPACES_DOMAIN}", "-keyout", str(key), "-out", str(csr))  # fmt: skip
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
             "-CAcreateserial", "-out", str(cert), "-days", "1",
             "-extfile", str(extensions))  # fmt: skip
    return cert, key
