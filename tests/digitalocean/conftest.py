"""The fake DigitalOcean API over TLS, with the client trusting its throwaway certificate."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.fake_digitalocean import FakeDigitalOcean


@pytest.fixture
def fake(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeDigitalOcean]:
    cert, key = certificate
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # trust the throwaway certificate
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with FakeDigitalOcean(cert, key) as server:
        yield server
