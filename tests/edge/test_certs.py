"""Certificate expiry read from Caddy's storage, checked against openssl's own reading."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from homelab_tunnel.edge.certs import CertificateError, certificates, leaf, not_after

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl here")


def _certificate(directory: Path, name: str, days: int) -> Path:
    """A self-signed certificate for `name`, valid `days` from now, as a PEM file."""
    directory.mkdir(parents=True, exist_ok=True)
    pem = directory / f"{name}.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(directory / f"{name}.key"), "-out", str(pem),
         "-days", str(days), "-subj", f"/CN={name}"],
        check=True, capture_output=True,
    )  # fmt: skip
    return pem


def _openssl_end(pem: Path) -> datetime:
    said = subprocess.run(
        ["openssl", "x509", "-in", str(pem), "-noout", "-enddate"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    value = said.strip().removeprefix("notAfter=")
    return datetime.strptime(value, "%b %d %H:%M:%S %Y %Z").replace(tzinfo=UTC)


@needs_openssl
@pytest.mark.parametrize("days", [30, 40000])  # UTCTime, and GeneralizedTime after 2049
def test_not_after_is_what_openssl_reads(tmp_path: Path, days: int) -> None:
    pem = _certificate(tmp_path, "blog.example.com", days)
    assert not_after(leaf(pem.read_bytes())) == _openssl_end(pem)


@needs_openssl
def test_the_leaf_of_a_chain_is_the_first_certificate(tmp_path: Path) -> None:
    first = _certificate(tmp_path / "a", "blog.example.com", 10)
    second = _certificate(tmp_path / "b", "issuer.example", 400)
    chain = first.read_bytes() + second.read_bytes()
    assert not_after(leaf(chain)) == _openssl_end(first)


@needs_openssl
def test_storage_is_read_per_name_newest_first_and_strays_skipped(tmp_path: Path) -> None:
    storage = tmp_path / "caddy"
    issued = storage / "certificates"
    old = _certificate(issued / "acme-v02.api.letsencrypt.org-directory" / "blog.example.com",
                       "blog.example.com", 5)  # fmt: skip
    new = _certificate(issued / "acme.zerossl.com-v2-dv90" / "blog.example.com",
                       "blog.example.com", 80)  # fmt: skip
    _certificate(issued / "acme-v02.api.letsencrypt.org-directory" / "photos.example.com",
                 "photos.example.com", 60)  # fmt: skip
    # Not a certificate Caddy wrote for that name: left out, never an error.
    (issued / "x" / "wiki.example.com").mkdir(parents=True)
    (issued / "x" / "wiki.example.com" / "wiki.example.com.crt").write_text("not a pem\n")
    (issued / "x" / "other.example.com").mkdir(parents=True)
    shutil.copy(old, issued / "x" / "other.example.com" / "stray.crt")
    found = certificates(storage)
    assert [(cert.name, cert.issuer_directory) for cert in found] == [
        ("blog.example.com", "acme.zerossl.com-v2-dv90"),
        ("photos.example.com", "acme-v02.api.letsencrypt.org-directory"),
    ]
    assert found[0].not_after == _openssl_end(new)


def test_no_storage_is_no_certificates(tmp_path: Path) -> None:
    assert certificates(tmp_path / "missing") == []


@pytest.mark.parametrize(
    "der",
    [b"", b"\x30\x82\xff\xff", b"\x30\x03\x02\x01\x01", b"\x04\x00"],
)
def test_bytes_that_are_no_certificate_are_refused(der: bytes) -> None:
    with pytest.raises(CertificateError):
        not_after(der)


def test_a_file_without_pem_is_refused() -> None:
    with pytest.raises(CertificateError, match="no PEM certificate"):
        leaf(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
