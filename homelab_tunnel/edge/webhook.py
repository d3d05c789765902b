"""The health agent's webhook: tell a person when findings change, and when they clear.

Slack-compatible (`text`) and ntfy both take the JSON body. A broken webhook
must never hide findings already written to the journal, so nothing here raises.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from homelab_tunnel.findings import Finding, Severity

WEBHOOK_TIMEOUT = 10.0


def notify(url: str, host: str, findings: Sequence[Finding], state_dir: Path | None) -> bool:
    """POST the findings; with a state directory, only when they changed (and on recovery)."""
    reported = [f for f in findings if f.severity in (Severity.PROBLEM, Severity.WARNING)]
    lines = [finding.line() for finding in reported]
    marker = state_dir / "last-notified.json" if state_dir else None
    previous = _read_marker(marker)
    if not lines and not previous:
        return False
    if marker is not None and lines == previous:
        print("webhook: findings unchanged since the last notification, not sent")
        return False
    problems = [f.text for f in reported if f.severity is Severity.PROBLEM]
    warnings = [f.text for f in reported if f.severity is Severity.WARNING]
    headline = f"{host}: homelab-tunnel health: " + (
        f"{len(problems)} problem(s), {len(warnings)} warning(s)" if lines else "all clear"
    )
    message = {
        "host": host,
        "ok": not problems,
        "problems": problems,
        "warnings": warnings,
        "text": "\n".join([headline, *(f"- {line}" for line in lines)]),
    }
    if not post_json(url, message):
        return False
    if marker is not None:
        try:
            marker.write_text(json.dumps(lines), encoding="utf-8")
        except OSError as exc:
            print(f"webhook: cannot remember what was sent ({exc})")
    return True


def _read_marker(marker: Path | None) -> list[str]:
    if marker is None:
        return []
    try:
        stored = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return []
    return [str(item) for item in stored] if isinstance(stored, list) else []


def post_json(url: str, message: Mapping[str, Any], timeout: float = WEBHOOK_TIMEOUT) -> bool:
    """POST `message` as JSON; log and return False on any failure instead of raising.

    The URL is a credential for most services (Slack, Discord): no log line
    quotes it, even when a library error would.
    """
    if not url.startswith(("https://", "http://")):
        print("webhook: HEALTH_WEBHOOK_URL is not an http(s) URL, not sent")
        return False
    try:
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            url,
            data=json.dumps(message).encode(),
            headers={"Content-Type": "application/json", "User-Agent": "homelab-tunnel-health"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            status = response.status
    except urllib.error.HTTPError as exc:
        print(f"webhook: POST failed with HTTP {exc.code}")
        return False
    except (http.client.InvalidURL, ValueError):
        print(
            "webhook: HEALTH_WEBHOOK_URL is not a valid URL (not shown: it is a secret), not sent"
        )
        return False
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = str(getattr(exc, "reason", exc))
        print(f"webhook: POST failed: {_without(url, reason)}")
        return False
    print(f"webhook: sent (HTTP {status})")
    return True


def _without(url: str, text: str) -> str:
    """`text` with the URL, and its path (where the secret usually is), taken out."""
    path = url.split("://", 1)[-1].partition("/")[2]
    for secret in (url, path):
        if len(secret) >= 4:
            text = text.replace(secret, "<HEALTH_WEBHOOK_URL>")
    return text
