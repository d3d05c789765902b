"""DigitalOcean's metadata service, as a droplet reaches it at 169.254.169.254 (stdlib only).

    python metadata_server.py ADDRESS PORT STATE_FILE

Each droplet gets its own answers, told apart by the address it asks from
(DigitalOcean routes the link-local range per droplet: cloud-init's
sources/helpers/digitalocean.py:20). STATE_FILE maps a droplet's addresses
to its record (support/droplet/metadata.py writes it) and is read on every
request, so a test changes answers by rewriting it. Paths and names follow
DigitalOcean's Metadata API: a path ending in a folder lists its entries (a
trailing "/" on the ones that are folders), a leaf returns its value as
plain text, and /metadata/v1.json is the whole record in the shape cloud-init's
DigitalOcean datasource reads.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

Tree = dict[str, Any]


def reserved_ip(record: dict[str, Any], now: float) -> dict[str, Any]:
    """{"active": bool, "ip_address": ...}; the address only while it is assigned."""
    ipv4 = record.get("reserved_ip", {}).get("ipv4", {})
    since = ipv4.get("active_from")
    active = since is not None and now >= since
    return {"active": True, "ip_address": ipv4["ip_address"]} if active else {"active": False}


def _interface(interface: dict[str, Any], naming: str) -> dict[str, Any]:
    """One interface; `naming` is what the address is called: "ip_address" in v1.json,
    "address" in the paths (interfaces/public/0/ipv4/address)."""
    shaped: dict[str, Any] = {"mac": interface["mac"], "type": interface["type"]}
    for family in ("ipv4", "anchor_ipv4", "ipv6"):
        if family in interface:
            fields = dict(interface[family])
            fields[naming] = fields.pop("ip_address")
            shaped[family] = fields
    return shaped


def tree(record: dict[str, Any], now: float) -> Tree:
    """The /metadata/v1/ paths: folders are dicts, values are str or bytes."""
    ip = reserved_ip(record, now)
    floating = {"active": "true" if ip["active"] else "false"}
    if ip["active"]:
        floating["ip_address"] = ip["ip_address"]
    return {
        "id": str(record["id"]),
        "hostname": record["hostname"],
        "user-data": base64.b64decode(record["user_data_b64"]),
        "vendor-data": record.get("vendor_data", ""),
        "public-keys": "\n".join(record.get("public_keys", [])),
        "region": record["region"],
        "tags": {tag: tag for tag in record.get("tags", [])},
        "interfaces": {
            kind: {str(n): _interface(i, "address") for n, i in enumerate(interfaces)}
            for kind, interfaces in record["interfaces"].items()
        },
        "floating_ip": {"ipv4": floating},
        "reserved_ip": {"ipv4": floating},
        "features": {"dhcp_enabled": "false"},
    }


def v1_json(record: dict[str, Any], now: float) -> dict[str, Any]:
    ip = reserved_ip(record, now)
    return {
        "droplet_id": record["id"],
        "hostname": record["hostname"],
        "user_data": base64.b64decode(record["user_data_b64"]).decode(),
        "vendor_data": record.get("vendor_data", ""),
        "public_keys": record.get("public_keys", []),
        "region": record["region"],
        "interfaces": {
            kind: [_interface(i, "ip_address") for i in interfaces]
            for kind, interfaces in record["interfaces"].items()
        },
        "floating_ip": {"ipv4": ip},
        "reserved_ip": {"ipv4": ip},
        "tags": record.get("tags", []),
        "features": {"dhcp_enabled": False},
    }


def answer(record: dict[str, Any], path: str, now: float) -> bytes | None:
    """The body for `path`, or None (404)."""
    if path == "/metadata/v1.json":
        return json.dumps(v1_json(record, now)).encode()
    if path != "/metadata/v1" and not path.startswith("/metadata/v1/"):
        return None
    node: Tree | str | bytes = tree(record, now)
    for part in [p for p in path.removeprefix("/metadata/v1").split("/") if p]:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    if isinstance(node, dict):
        return "\n".join(f"{k}/" if isinstance(v, dict) else k for k, v in node.items()).encode()
    return node if isinstance(node, bytes) else node.encode()


class Handler(BaseHTTPRequestHandler):
    state: Path

    def do_GET(self) -> None:
        droplets = json.loads(self.state.read_text())["droplets"]
        record = droplets.get(self.client_address[0])
        body = answer(record, self.path, time.time()) if record else b"not a droplet\n"
        status = 200 if record and body is not None else 404
        body = body if body is not None else b"not found\n"
        self.send_response(status)
        kind = "application/json" if self.path.endswith(".json") else "text/plain"
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.client_address[0]} {format % args}\n")
        sys.stderr.flush()


def main(address: str, port: str, state: str) -> None:
    Handler.state = Path(state)
    server = ThreadingHTTPServer((address, int(port)), Handler)
    print(f"metadata service on {address}:{port}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:])
