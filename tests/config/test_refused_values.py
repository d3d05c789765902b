"""Bad values, one table per class of defect: each is refused with exit 2, naming the field.

Every table has a positive twin (the same field with a good value passes), so
a table cannot pass because the config was broken in some other way.
"""

from __future__ import annotations

import copy
import re
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from support.config import DATA, example_raw, write_config
from typer.testing import CliRunner

from homelab_tunnel.cli import app
from homelab_tunnel.config import TunnelConfig, parse_config

runner = CliRunner()
BCRYPT = "$2a$14$ajq8Q7fbtFRQvXpdCq7Jcuy.Rx1h/L4J60Otx.gyNLbAYctGMJ9tK"

# Every string field of the config with a good value; the base config below has
# all of them set, so each can be spoiled on its own.
GOOD: dict[str, str] = {
    "name": "homelab-edge",
    "region": "fra1",
    "size": "s-1vcpu-1gb",
    "image": "ubuntu-24-04-x64",
    "ssh_keys.0": "homelab-admin",
    "ssh_allowed_cidrs.0": "203.0.113.7/32",
    "alert_email": "ops@example.com",
    "dns.zone": "example.com",
    "headscale.domain": "headscale.example.com",
    "headscale.base_domain": "tail.example.net",
    "headscale.version": "0.29.2",
    "headscale.deb_sha256": "ab" * 32,
    "headscale.derp_urls.0": "https://controlplane.tailscale.com/derpmap/default",
    "homelab.tailscale_version": "1.90.2",
    "tls.email": "certs@example.com",
    "tls.acme_ca": "https://acme.example.net/directory",
    "tls.caa_issuer": "example.net",
    "backend.type": "spaces",
    "backend.bucket": "homelab-state",
    "backend.key": "edge/terraform.tfstate",
    "backend.region": "fra1",
    "backup.bucket": "homelab-edge-backup",
    "backup.region": "ams3",
    "channel.bucket": "homelab-edge-config",
    "channel.region": "fra1",
    "backup.recipients.0": "age1qllq5y79pfkevgcwmywkhns8c4n9jxd80ts8m2ajktu5edma3vlq7creqp",
    "sites.0.domain": "blog.example.com",
    "sites.0.upstream": "homelab",
    "sites.0.scheme": "http",
    "metrics.scrapers.0": "monitor",
    "sites.0.allow_cidrs.0": "198.51.100.0/24",
    "sites.0.crawlers": "block-ai",
    "sites.0.auth.basic.0.user": "alice",
    "sites.0.auth.basic.0.password_hash": BCRYPT,
    # A site has one gate: forward auth is on the second site.
    "sites.1.auth.forward.upstream": "auth",
    "sites.1.auth.forward.path": "/api/authz/forward-auth",
    "sites.1.auth.forward.copy_headers.0": "Remote-User",
    "ports.0.protocol": "udp",
    "ports.0.port": "27015-27020",
    "ports.0.upstream": "homelab",
}


# The one multi-line string: PEM certificates, line breaks between their lines.
MULTILINE: dict[str, str] = {
    "tls.ca_roots": (DATA / "tls" / "test-root.pem").read_text(),
}


def _set(raw: dict[str, Any], path: str, value: Any) -> None:
    """`raw[path] = value`, making the tables and arrays on the way (`a.0.b`)."""
    parts = path.split(".")
    target: Any = raw
    for part, after in zip(parts, [*parts[1:], None], strict=True):
        key: Any = int(part) if part.isdigit() else part
        if isinstance(target, list):
            target.extend(None for _ in range(key + 1 - len(target)))
        if after is None:
            target[key] = value
        elif isinstance(target, list):
            if target[key] is None:
                target[key] = [] if after.isdigit() else {}
            target = target[key]
        else:
            target = target.setdefault(key, [] if after.isdigit() else {})


def _base() -> dict[str, Any]:
    raw = copy.deepcopy(example_raw())
    raw["ports"] = [{}]  # the example forwards none; GOOD fills one in
    for path, value in {**GOOD, **MULTILINE}.items():
        _set(raw, path, value)
    raw["sites"][1]["auth"]["forward"]["port"] = 9091
    return raw


def _check(tmp_path: Path, raw: dict[str, Any]) -> tuple[int, str, Path]:
    path = write_config(tmp_path, raw)
    result = runner.invoke(app, ["check", "--config", str(path)])
    assert "Traceback" not in result.output
    return result.exit_code, result.stderr, path


def _refused(tmp_path: Path, field: str, value: Any, *expected: str) -> None:
    raw = _base()
    _set(raw, field, value)
    code, stderr, path = _check(tmp_path, raw)
    assert code == 2, f"{field} = {value!r} was accepted"
    lines = stderr.splitlines()
    assert all(line.startswith(f"{path}: ") for line in lines), stderr
    assert any(
        line.startswith(f"{path}: {field}: ") and all(text in line for text in expected)
        for line in lines
    ), f"no line for {field} with {expected!r}:\n{stderr}"


def test_the_base_config_with_every_field_set_is_valid(tmp_path: Path) -> None:
    code, stderr, _ = _check(tmp_path, _base())
    assert code == 0, stderr


def _string_fields(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Paths of every string-valued field in the model tree (list items as `.0`)."""
    found: set[str] = set()
    for name, field in model.model_fields.items():
        found |= _strings_in(field.annotation, f"{prefix}{name}")
    return found


def _strings_in(annotation: Any, path: str) -> set[str]:
    origin = typing.get_origin(annotation)
    if annotation is str or origin is typing.Literal:
        return {path}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _string_fields(annotation, f"{path}.")
    if origin is list:
        return _strings_in(typing.get_args(annotation)[0], f"{path}.0")
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        args = typing.get_args(annotation)
        members = args[:1] if origin is typing.Annotated else args
        return set().union(*(_strings_in(arg, path) for arg in members))
    return set()


def test_the_tables_cover_every_string_field() -> None:
    # Field paths name a list's items `.0`; the second site is one of them.
    covered = {re.sub(r"^sites\.\d+\.", "sites.0.", path) for path in {*GOOD, *MULTILINE}}
    assert _string_fields(TunnelConfig) == covered


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda pem: pem.replace("\n", "\0\n", 2), id="NUL"),
        pytest.param(
            lambda pem: pem.replace("CERTIFICATE-----\n", "CERTIFICATE-----\n\u202e", 1), id="bidi"
        ),
        pytest.param(lambda pem: pem + "\nextra text\n", id="text after"),
        pytest.param(lambda pem: pem.replace("-----\n", "-----\r\x1b[31m\n", 1), id="escape"),
    ],
)
def test_control_characters_are_refused_in_the_pem_field(tmp_path: Path, spoil: Any) -> None:
    _refused(tmp_path, "tls.ca_roots", spoil(MULTILINE["tls.ca_roots"]), "PEM certificates")


# ---------------------------------------------------------------------------
# Class 1: values are validated whole; no control characters anywhere
# ---------------------------------------------------------------------------

SPOILERS = [
    ("trailing newline", lambda good: good + "\n"),
    ("newline inside", lambda good: good[:3] + "\n-state" + good[3:]),
    ("NUL", lambda good: good[:2] + "\0" + good[2:]),
    ("leading tab", lambda good: "\t" + good),
    ("carriage return", lambda good: good + "\r"),
    ("unicode line separator", lambda good: good + "\u2028"),
    ("bidi override", lambda good: "\u202e" + good),
]


@pytest.mark.parametrize("field", sorted(GOOD))
@pytest.mark.parametrize("spoil", [pytest.param(spoil, id=case) for case, spoil in SPOILERS])
def test_control_characters_are_refused_in_every_string_field(
    tmp_path: Path, field: str, spoil: Any
) -> None:
    _refused(tmp_path, field, spoil(GOOD[field]))


def test_a_refused_control_character_is_shown_escaped_on_one_line(tmp_path: Path) -> None:
    raw = _base()
    raw["name"] = "homelab-edge\n-state"
    code, stderr, path = _check(tmp_path, raw)
    assert code == 2
    assert stderr == (
        f"{path}: name: 'homelab-edge\\n-state' contains a control character (newline) "
        "at position 12; values are one line of printable text\n"
    )


# ---------------------------------------------------------------------------
# Class 2: characters that mean something in a target (Caddyfile placeholders,
# Terraform templates, YAML, bash) are refused per field
# ---------------------------------------------------------------------------

UNSAFE: list[tuple[str, str, str]] = [
    ("alert_email", "{$HOME}@example.com", "not an email address"),
    ("alert_email", "ops@{env.HOME}.example.com", "not a domain name"),
    ("alert_email", "ops{x}@example.com", "not an email address"),
    ("alert_email", "o#ps@example.com", "not an email address"),
    ("alert_email", "`id`@example.com", "not an email address"),
    ("alert_email", "${data.x.y}@example.com", "not an email address"),
    ("alert_email", "%{if true}x%{endif}@example.com", "not an email address"),
    ("alert_email", "o'ps@example.com", "not an email address"),
    ("alert_email", 'o"ps@example.com', "not an email address"),
    ("alert_email", "ops @example.com", "not an email address"),
    ("alert_email", "ops@example.com;reboot", "not a domain name"),
    ("tls.email", "{$CADDY_ADMIN}@example.com", "not an email address"),
    ("tls.email", "certs@example.com}", "not a domain name"),
    ("ssh_keys.0", "laptop ${data.x.y}", "key name"),
    ("ssh_keys.0", "laptop %{ if true }x%{ endif }", "key name"),
    ("ssh_keys.0", "laptop $HOME", "key name"),
    ("ssh_keys.0", 'laptop "work"', "key name"),
    ("ssh_keys.0", "laptop\\work", "key name"),
    ("ssh_keys.0", "{laptop}", "key name"),
    ("ssh_keys.0", "laptop`id`", "key name"),
    ("ssh_keys.0", "laptop;reboot", "key name"),
    ("ssh_keys.0", "-laptop", "key name"),
    ("name", "edge;reboot", "not a valid name"),
    ("name", "edge${x}", "not a valid name"),
    ("size", "s-1vcpu-1gb;x", "slug"),
    ("image", "ubuntu-24-04-x64 ", "slug"),
    ("image", "debian-12-x64", "needs Ubuntu 24.04 or later"),
    ("image", "ubuntu-22-04-x64", "needs Ubuntu 24.04 or later"),
    ("image", "ubuntu-24-04-x64-old", "needs Ubuntu 24.04 or later"),
    ("image", "docker-20-04", "needs Ubuntu 24.04 or later"),
    ("headscale.derp_urls.0", "https://derp.example.com/${var.x}", "https:// URL"),
    ("headscale.derp_urls.0", "https://derp.example.com/{$HOME}", "https:// URL"),
    ("headscale.derp_urls.0", "https://derp.example.com/a b", "https:// URL"),
    ("headscale.derp_urls.0", "https://derp.example.com/'x'", "https:// URL"),
    ("headscale.derp_urls.0", 'https://derp.example.com/"x"', "https:// URL"),
    ("headscale.derp_urls.0", "https://derp.example.com/#x", "https:// URL"),
    ("headscale.derp_urls.0", "https://user:pw@derp.example.com/", "https:// URL"),
    ("headscale.derp_urls.0", "http://derp.example.com/", "https:// URL"),
    ("headscale.derp_urls.0", "https://derp.example.com:99999/", "https:// URL"),
    ("headscale.derp_urls.0", "https://[::1]/derp", "https:// URL"),
    ("headscale.derp_urls.0", "https://derp/", "https:// URL"),
    ("backend.key", "edge/${x}.tfstate", ".tfstate"),
    ("backend.key", "edge/%{x}.tfstate", ".tfstate"),
    ("backend.key", "edge/../other.tfstate", ".tfstate"),
    ("backend.key", "edge//terraform.tfstate", ".tfstate"),
    ("backend.key", "/edge/terraform.tfstate", ".tfstate"),
    ("backend.key", "edge/my state.tfstate", ".tfstate"),
    ("backend.bucket", "homelab.state", "bucket name"),
    ("headscale.version", "0.29.2;reboot", "not a version"),
    ("headscale.version", "\u0660.\u0662\u0669.\u0662", "not a version"),
    ("headscale.version", "0.29.2-rc1", "not a version"),
    ("homelab.tailscale_version", "1.90.2 ", "not a version"),
    ("headscale.deb_sha256", "ab" * 31 + "a$", "sha256"),
    ("sites.0.domain", "{$HOST}.example.com", "fully qualified"),
    ("sites.0.domain", "blog.example.com:443", "fully qualified"),
    ("sites.0.domain", "blog.example.com{", "fully qualified"),
    ("sites.0.upstream", "homelab:8080", "tailnet machine name"),
    ("sites.0.upstream", "{$X}", "tailnet machine name"),
    ("metrics.scrapers.0", "monitor:9090", "tailnet machine name"),
    ("metrics.scrapers.0", "$(id)", "tailnet machine name"),
    ("dns.zone", "example.com;", "fully qualified"),
    ("headscale.base_domain", "tail.example.net/", "fully qualified"),
]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [pytest.param(*case, id=f"{case[0]}={case[1]!r}") for case in UNSAFE],
)
def test_characters_unsafe_in_a_target_are_refused(
    tmp_path: Path, field: str, value: str, message: str
) -> None:
    _refused(tmp_path, field, value, message)


# The edges of each shape: accepted, and (tests/render, tests/infra) literal in every target.
SAFE_EDGES: list[tuple[str, str, str]] = [
    ("alert_email", "ops.team+alerts-2_x@Mail.Example.com", "ops.team+alerts-2_x@Mail.Example.com"),
    ("ssh_keys.0", "Jane's laptop (2024), v1.0: a+b@c", "Jane's laptop (2024), v1.0: a+b@c"),
    ("ssh_keys.0", "3B:16:BF:E4:8B:00:8B:B8:59:8C:A9:D3:F0:19:45:FA", "3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa"),
    ("headscale.derp_urls.0", "https://Derp.example.com:8443/map/x_y~z?a=1&b=%20,c:d@e!f+g", "https://Derp.example.com:8443/map/x_y~z?a=1&b=%20,c:d@e!f+g"),
    ("backend.key", "edge/sub_dir/terraform-1.2.tfstate", "edge/sub_dir/terraform-1.2.tfstate"),
    ("headscale.deb_sha256", "AB" * 32, "ab" * 32),
    ("headscale.version", "v0.29.2", "0.29.2"),
    ("sites.0.domain", " Blog.Example.com. ", "blog.example.com"),
    ("image", "ubuntu-25-10-x64", "ubuntu-25-10-x64"),
    ("image", "187654321", "187654321"),  # your own snapshot or custom image
]  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value", "stored"),
    [pytest.param(*case, id=f"{case[0]}={case[1]!r}") for case in SAFE_EDGES],
)
def test_the_edges_of_each_shape_are_accepted(field: str, value: str, stored: str) -> None:
    raw = _base()
    _set(raw, field, value)
    document = parse_config(raw, "edge.toml").model_dump()
    for part in field.split("."):
        document = document[int(part)] if part.isdigit() else document[part]
    assert document == stored


# ---------------------------------------------------------------------------
# Class 3: upstream machine names are valid Headscale user names
# ---------------------------------------------------------------------------

HEADSCALE_USERS: list[tuple[str, bool]] = [
    ("1nas", False),  # Headscale: must start with a letter
    ("9", False),
    ("n", False),  # Headscale: at least 2 characters
    ("-nas", False),
    ("nas-", False),
    ("nas1", True),
    ("na", True),
    ("n-1", True),
    ("100.64.0.7", True),  # an address joins no user: fine
]


@pytest.mark.parametrize(("upstream", "accepted"), HEADSCALE_USERS)
def test_upstream_names_are_headscale_user_names(
    tmp_path: Path, upstream: str, accepted: bool
) -> None:
    if accepted:
        raw = _base()
        raw["sites"][0]["upstream"] = upstream
        assert _check(tmp_path, raw)[0] == 0
    else:
        _refused(tmp_path, "sites.0.upstream", upstream)


def test_a_headscale_user_name_refusal_says_why(tmp_path: Path) -> None:
    _refused(tmp_path, "sites.0.upstream", "1nas", "Headscale refuses user names", "letter")


# ---------------------------------------------------------------------------
# Class 4: strict types (TOML's own types, never coerced)
# ---------------------------------------------------------------------------

WRONG_TYPES: list[tuple[str, Any, str]] = [
    ("sites.0.port", True, "whole number, unquoted (e.g. 8080), not a boolean (true)"),
    ("sites.0.port", "8080", "whole number, unquoted (e.g. 8080), not a string ('8080')"),
    ("sites.0.port", 8080.0, "whole number, unquoted (e.g. 8080), not a float (8080.0)"),
    ("dns.ttl", "300", "whole number"),
    ("dns.ttl", 300.5, "whole number"),
    ("volume.size_gb", False, "whole number"),
    ("reserved_ipv6", "on", "true or false, unquoted, not a string ('on')"),
    ("reserved_ipv6", 1, "true or false, unquoted, not an integer (1)"),
    ("egress_via_reserved_ip", "true", "true or false"),
    ("dns.create_zone", 0, "true or false"),
    ("tls.staging", "yes", "true or false"),
    ("name", 42, 'string in quotes (e.g. "fra1"), not an integer (42)'),
    ("region", ["fra1"], "not an array"),
    ("sites.0.upstream", 100, "string in quotes"),
    ("alert_email", True, "string in quotes"),
    ("ssh_keys", "homelab-admin", "must be an array"),
    ("ssh_allowed_cidrs.0", 22, "CIDR string"),
    ("dns", "example.com", "must be a table"),
]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [pytest.param(*case, id=f"{case[0]}={case[1]!r}") for case in WRONG_TYPES],
)
def test_values_of_the_wrong_type_are_refused(
    tmp_path: Path, field: str, value: Any, message: str
) -> None:
    _refused(tmp_path, field, value, message)


def test_the_same_values_with_their_own_types_are_accepted(tmp_path: Path) -> None:
    raw = _base()
    raw["sites"][0]["port"] = 8080
    raw["dns"]["ttl"] = 300
    raw["reserved_ipv6"] = True
    raw["dns"]["create_zone"] = False
    assert _check(tmp_path, raw)[0] == 0


# ---------------------------------------------------------------------------
# Class 7: a value listed twice
# ---------------------------------------------------------------------------

DUPLICATES: list[tuple[str, list[str], str]] = [
    ("ssh_allowed_cidrs", ["203.0.113.7/32", "203.0.113.7/32"], "ssh_allowed_cidrs.1: '203.0.113.7/32' is already listed as ssh_allowed_cidrs.0"),
    ("ssh_allowed_cidrs", ["203.0.113.7", "198.51.100.0/24", "203.0.113.7/32"], "ssh_allowed_cidrs.2: '203.0.113.7/32' is already listed as ssh_allowed_cidrs.0"),
    ("ssh_allowed_cidrs", ["2001:db8::1", "2001:DB8:0::1/128"], "ssh_allowed_cidrs.1: '2001:db8::1/128' is already listed"),
    ("ssh_keys", ["homelab-admin", "homelab-admin"], "ssh_keys.1: 'homelab-admin' is already listed as ssh_keys.0"),
    ("ssh_keys", ["3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa", "3B:16:BF:E4:8B:00:8B:B8:59:8C:A9:D3:F0:19:45:FA"], "ssh_keys.1: '3b:16:bf"),
    ("headscale.derp_urls", ["https://derp.example.com/map", "https://derp.example.com/map"], "headscale.derp_urls.1: 'https://derp.example.com/map' is already listed"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("field", "values", "message"),
    [pytest.param(*case, id=f"{case[0]}={case[1]!r}") for case in DUPLICATES],
)
def test_a_value_listed_twice_is_refused(
    tmp_path: Path, field: str, values: list[str], message: str
) -> None:
    raw = _base()
    _set(raw, field, values)
    code, stderr, path = _check(tmp_path, raw)
    assert code == 2
    assert f"{path}: {message}" in stderr


def test_distinct_values_are_accepted(tmp_path: Path) -> None:
    raw = _base()
    raw["ssh_allowed_cidrs"] = ["203.0.113.7/32", "203.0.113.8/32", "2001:db8::/64"]
    raw["ssh_keys"] = ["homelab-admin", "homelab-admin-2"]
    assert _check(tmp_path, raw)[0] == 0


# ---------------------------------------------------------------------------
# Class 8: site policy, one line each for what makes no sense
# ---------------------------------------------------------------------------

POLICY_REFUSALS: list[tuple[str, Any, tuple[str, ...]]] = [
    ("sites.0.allow_cidrs.0", "198.51.100.0/33", ("not an IPv4 or IPv6 network",)),
    ("sites.0.allow_cidrs.0", "198.51.100.7/24", ("host bits set", "198.51.100.0/24")),
    ("sites.0.allow_cidrs.0", "office", ("not an IPv4 or IPv6 network",)),
    ("sites.0.crawlers", "block", ("'allow' or 'block-ai'",)),
    ("sites.0.auth.basic.0.password_hash", "hunter2", ("not a bcrypt hash", "caddy hash-password")),
    ("sites.0.auth.basic.0.password_hash", "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=", ("not a bcrypt hash",)),
    ("sites.0.auth.basic.0.password_hash", "$argon2id$v=19$m=47104,t=1,p=1$c2FsdA$aGFzaA", ("not a bcrypt hash",)),
    ("sites.0.auth.basic.0.password_hash", BCRYPT[:-1], ("not a bcrypt hash",)),
    ("sites.0.auth.basic.0.password_hash", BCRYPT.replace("$14$", "$03$"), ("not a bcrypt hash",)),
    ("sites.0.auth.basic.0.user", "al ice", ("user name for basic auth",)),
    ("sites.0.auth.basic.0.user", "al:ice", ("user name for basic auth",)),
    ("sites.0.auth.basic.0.user", "{http.request.uri}", ("user name for basic auth",)),
    ("sites.1.auth.forward.upstream", "100.64.0.9", ("not a tailnet machine name", "MagicDNS")),
    ("sites.1.auth.forward.upstream", "auth.example.com", ("not a tailnet machine name",)),
    ("sites.1.auth.forward.upstream", "1auth", ("Headscale refuses user names",)),
    ("sites.1.auth.forward.path", "api/verify", ("check endpoint", "starts with '/'")),
    ("sites.1.auth.forward.path", "/api/{http.request.uri}", ("check endpoint",)),
    ("sites.1.auth.forward.path", "/api/verify?rd=a b", ("check endpoint",)),
    ("sites.1.auth.forward.copy_headers.0", "Remote User", ("HTTP header name",)),
    ("sites.1.auth.forward.copy_headers.0", "Remote-User>X", ("HTTP header name",)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [pytest.param(*case, id=f"{case[0]}={case[1]!r}") for case in POLICY_REFUSALS],
)
def test_nonsense_in_a_sites_policy_is_refused(
    tmp_path: Path, field: str, value: Any, expected: tuple[str, ...]
) -> None:
    _refused(tmp_path, field, value, *expected)


def test_a_hash_that_is_not_bcrypt_is_never_shown(tmp_path: Path) -> None:
    """What was pasted may be the password itself: the error line must not carry it."""
    raw = _base()
    raw["sites"][0]["auth"]["basic"][0]["password_hash"] = "hunter2-my-real-password"
    code, stderr, _ = _check(tmp_path, raw)
    assert code == 2
    assert "hunter2" not in stderr


def test_a_plain_password_is_refused_with_how_to_make_a_hash(tmp_path: Path) -> None:
    raw = _base()
    raw["sites"][0]["auth"]["basic"][0] = {"user": "alice", "password": "hunter2"}
    code, stderr, path = _check(tmp_path, raw)
    assert code == 2
    assert stderr == (
        f"{path}: sites.0.auth.basic.0: password: a plain password is not accepted (and not "
        "shown); give its bcrypt hash as password_hash: `caddy hash-password` prints one (or "
        "`htpasswd -nB USER`, the part after the colon)\n"
    )


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        (
            {"basic": [{"user": "alice", "password_hash": BCRYPT}], "forward": {"upstream": "auth", "port": 9091, "path": "/x"}},
            "sites.0.auth: give basic or forward, not both: a site has one gate",
        ),
        ({}, "sites.0.auth: give basic = [{ user, password_hash }, ...] or forward"),
        ({"basic": []}, "sites.0.auth: basic: list at least one user, or drop [sites.auth]"),
        (
            {"basic": [{"user": "bob", "password_hash": BCRYPT}, {"user": "bob", "password_hash": BCRYPT}]},
            "sites.0.auth.basic.1.user: 'bob' is already listed as sites.0.auth.basic.0",
        ),
        (
            {"forward": {"upstream": "edge", "port": 9091, "path": "/x"}},
            "sites.0.auth.forward.upstream: 'edge' is the edge itself",
        ),
        (
            {"forward": {"upstream": "auth", "port": 9091, "path": "/x", "copy_headers": ["Remote-User", "remote-user"]}},
            "sites.0.auth.forward.copy_headers.1: 'remote-user' is already listed",
        ),
    ],
)  # fmt: skip
def test_a_gate_that_makes_no_sense_is_refused(
    tmp_path: Path, auth: dict[str, Any], message: str
) -> None:
    raw = _base()
    raw["sites"][0]["auth"] = auth
    code, stderr, path = _check(tmp_path, raw)
    assert code == 2
    assert f"{path}: {message}" in stderr


def test_an_allow_cidrs_network_listed_twice_is_refused(tmp_path: Path) -> None:
    raw = _base()
    raw["sites"][0]["allow_cidrs"] = ["198.51.100.0/24", "2001:db8::/32", "198.51.100.0/24"]
    code, stderr, path = _check(tmp_path, raw)
    assert code == 2
    assert (
        f"{path}: sites.0.allow_cidrs.2: '198.51.100.0/24' is already listed as "
        "sites.0.allow_cidrs.0" in stderr
    )


def test_every_gate_and_key_of_a_good_policy_is_accepted(tmp_path: Path) -> None:
    """The twin of the refusals: each shape above with sensible values passes."""
    raw = _base()
    raw["sites"][0] |= {
        "allow_cidrs": ["198.51.100.0/24", "203.0.113.7/32", "2001:db8::/32"],
        "crawlers": "allow",
        "hsts": True,
    }
    raw["sites"][0]["auth"]["basic"] = [
        {"user": "alice", "password_hash": BCRYPT},
        {
            "user": "bob.smith+home@example.com",
            "password_hash": BCRYPT.replace("$2a$14$", "$2y$05$"),
        },
    ]
    raw["sites"][1]["auth"]["forward"] = {
        "upstream": "auth",
        "port": 9091,
        "path": "/api/verify?rd=https://login.example.com/&x=1",
        "copy_headers": ["Remote-User", "Remote-Groups", "X-Auth-Request-Email"],
    }
    code, stderr, _ = _check(tmp_path, raw)
    assert code == 0, stderr
