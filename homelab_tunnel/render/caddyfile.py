"""The edge's Caddyfile: TLS for an allowlist of names, everything else refused.

Each site's policy is enforced here, by stock Caddy, in this order inside the
site's `route` (which keeps the written order): sources outside allow_cidrs
get 403, then AI crawlers get the managed robots.txt or 403, then the gate
(basic auth or forward auth) asks for a login, and only then does the request
travel to the homelab, carrying the visitor's real address.
"""

from __future__ import annotations

from dataclasses import dataclass

from homelab_tunnel.config import ForwardAuth, Site, TunnelConfig
from homelab_tunnel.render.crawlers import SNIPPET, AiCrawlers, crawler_snippet
from homelab_tunnel.render.headscale import HEADSCALE_LISTEN

MAGICDNS_RESOLVER = "100.100.100.100"
LETS_ENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
# tls.ca_roots, written there by user_data: Caddy trusts them for the ACME CA.
CA_ROOTS_PATH = "/etc/homelab-tunnel/ca-roots.pem"
# How long an upgraded connection (websocket) may outlive a config reload.
STREAM_CLOSE_DELAY = "5m"
# How long Caddy keeps retrying an upstream that does not answer. When UDP
# breaks, each side keeps sending on the lost direct path for up to 6.5 s
# (Tailscale's trustUDPAddrDuration, wgengine/magicsock) before relaying; with
# Caddy's 3 s dial timeout, 5 s ran out one attempt short and the visitor got a
# 502 (the lab's blocked-UDP scenario). 10 s leaves a third attempt after 6.5 s.
LB_TRY_DURATION = "10s"
# hsts = true: browsers then refuse plain HTTP for the name for a year.
HSTS = "max-age=31536000"
# The header a basic-auth site's homelab reads the user from.
REMOTE_USER = "Remote-User"
# The snippet of what every proxy to the homelab does (reverse_proxy, forward_auth).
TAILNET_SNIPPET = "tailnet"


@dataclass(frozen=True)
class CaddyRuntime:
    """Where this Caddy listens and whom it asks; the defaults are the edge's.

    Tests run the same Caddyfile on high ports, with Caddy's internal CA
    instead of ACME and a local DNS server instead of MagicDNS.
    """

    http_port: int = 80
    https_port: int = 443
    magicdns: str = MAGICDNS_RESOLVER
    headscale: str = HEADSCALE_LISTEN
    local_ca: bool = False
    storage_dir: str | None = None
    admin: str | None = None


def render_caddyfile(
    config: TunnelConfig, crawlers: AiCrawlers, runtime: CaddyRuntime | None = None
) -> str:
    """`crawlers`: the AI crawler list (crawlers.py reads it), used by block-ai sites."""
    runtime = runtime or CaddyRuntime()
    snippets = (
        [crawler_snippet(crawlers)]
        if any(site.crawlers == "block-ai" for site in config.sites)
        else []
    )
    blocks = [
        # caddy fmt keeps the header comment on the global block, no blank line between.
        _header(config) + _global_options(config, runtime),
        _tailnet_snippet(),
        *snippets,
        *(_site(config, site, runtime) for site in config.sites),
        _headscale(config, runtime),
        _catch_all_http(),
        _catch_all_https(),
    ]
    return "\n".join(blocks)


def _header(config: TunnelConfig) -> str:
    return (
        f"# Caddy on the {config.name} edge, written by homelab-tunnel from its config file.\n"
        "# Only the names below get certificates and content; any other Host is refused.\n"
        "# Changes here are replaced on the next deploy: edit the homelab-tunnel config instead.\n"
    )


def _global_options(config: TunnelConfig, runtime: CaddyRuntime) -> str:
    lines = [
        "# Request counts, latencies and sizes per site, read from the admin endpoint\n"
        "# (localhost:2019/metrics) by `homelab-tunnel status` and the edge's exporter.\n"
        "metrics {\n\tper_host\n}"
    ]
    if config.acme_email:
        lines.append(
            f"# ACME account; Let's Encrypt writes here before certificates expire.\n"
            f"email {config.acme_email}"
        )
    if config.tls.staging:
        lines.append(
            "# Staging CA: untrusted certificates, but no rate limits while testing.\n"
            f"acme_ca {LETS_ENCRYPT_STAGING}"
        )
    if config.tls.acme_ca:
        lines.append(
            "# Certificates from the CA in tls.acme_ca, not Let's Encrypt.\n"
            f"acme_ca {config.tls.acme_ca}"
        )
    if config.tls.ca_roots:
        lines.append(
            f"# The roots in tls.ca_roots, trusted for that CA.\nacme_ca_root {CA_ROOTS_PATH}"
        )
    if runtime.local_ca:
        lines.append("local_certs\nskip_install_trust")
    if runtime.http_port != 80:
        lines.append(f"http_port {runtime.http_port}")
    if runtime.https_port != 443:
        lines.append(f"https_port {runtime.https_port}")
    if runtime.storage_dir:
        lines.append(f"storage file_system {runtime.storage_dir}")
    if runtime.admin:
        lines.append(f"admin {runtime.admin}")
    body = "\n".join(lines)
    return "{\n" + _indent(body) + "\n}\n"


def _site(config: TunnelConfig, site: Site, runtime: CaddyRuntime) -> str:
    host = config.upstream_host(site)
    directives = _upstream(host, site.port, runtime, address=site.upstream_is_address)
    if site.auth and site.auth.basic:
        directives.append(
            f"# The user basic_auth let in (a {REMOTE_USER} the visitor sends is replaced);\n"
            "# the password stops here.\n"
            f"header_up {REMOTE_USER} {{http.auth.user.id}}\n"
            "header_up -Authorization"
        )
    if site.scheme == "https":
        directives.append(
            "# The tailnet authenticates the peer (WireGuard); homelab services\n"
            "# usually present self-signed certificates.\n"
            "transport http {\n" + _indent("tls\ntls_insecure_skip_verify") + "\n}"
        )
    proxy = "reverse_proxy {\n" + _indent("\n".join(directives)) + "\n}"
    policy = _policy(config, site, runtime)
    body = "route {\n" + _indent("\n".join([*policy, proxy])) + "\n}" if policy else proxy
    if site.hsts:
        body = f'# hsts = true\nheader >Strict-Transport-Security "{HSTS}"\n' + body
    comment = f"# {site.domain} -> {site.scheme}://{host}:{site.port} over the tailnet\n"
    return comment + f"{site.domain} {{\n" + _indent(body) + "\n}\n"


def _upstream(host: str, port: int, runtime: CaddyRuntime, *, address: bool) -> list[str]:
    """Where a proxy (reverse_proxy or forward_auth) finds a tailnet service."""
    if address:
        found = f"to {host}:{port}"
    else:
        # Ask MagicDNS directly: the edge's tailscaled runs with --accept-dns=false
        # so the system resolver of the box that runs Headscale is never rewritten.
        found = (
            "dynamic a {\n"
            + _indent(f"name {host}\nport {port}\nresolvers {runtime.magicdns}\nrefresh 1m")
            + "\n}"
        )
    return [found, f"import {TAILNET_SNIPPET}"]


def _tailnet_snippet() -> str:
    # reverse_proxy sets X-Forwarded-For/-Proto/-Host itself and, with no
    # trusted_proxies, drops what the visitor sent in them (reverseproxy.go,
    # addForwardedHeaders). X-Real-IP and Forwarded it would pass on as sent.
    body = (
        "# Keep dialing while the tailnet path moves (direct -> relay): Tailscale trusts a\n"
        "# lost direct path for 6.5 s, and each dial waits 3 s.\n"
        f"lb_try_duration {LB_TRY_DURATION}\n"
        "# Reloads keep websockets open this long.\n"
        f"stream_close_delay {STREAM_CLOSE_DELAY}\n"
        "# The visitor's address: X-Forwarded-For, which Caddy sets (dropping what the visitor\n"
        "# sent in it), and X-Real-IP; a Forwarded header the visitor sent is removed.\n"
        "header_up X-Real-IP {remote_host}\n"
        "header_up -Forwarded"
    )
    return (
        "# What every proxy to the homelab does (each site's reverse_proxy and forward_auth).\n"
        f"({TAILNET_SNIPPET}) {{\n" + _indent(body) + "\n}\n"
    )


def _policy(config: TunnelConfig, site: Site, runtime: CaddyRuntime) -> list[str]:
    """The site's checks, in the order they run, before the request is proxied."""
    checks: list[str] = []
    if site.allow_cidrs:
        checks.append(
            "# allow_cidrs: any other source gets 403 and the homelab never sees it.\n"
            f"@outside not remote_ip {' '.join(site.allow_cidrs)}\n"
            "respond @outside 403"
        )
    if site.crawlers == "block-ai":
        checks.append(f'# crawlers = "block-ai"\nimport {SNIPPET}')
    if site.auth and site.auth.basic:
        logins = "\n".join(f"{login.user} {login.password_hash}" for login in site.auth.basic)
        checks.append(
            "# Basic auth: bcrypt hashes; Caddy caches each checked password in memory.\n"
            "basic_auth {\n" + _indent(logins) + "\n}"
        )
    if site.auth and site.auth.forward:
        if site.auth.forward.copy_headers:
            checks.append(_dropped(site.auth.forward.copy_headers))
        checks.append(_forward_auth(config, site.auth.forward, runtime))
    return checks


def _dropped(headers: list[str]) -> str:
    # forward_auth drops them itself since Caddy 2.11.2 (GHSA-7r4p-vjf4-gxv4); saying so
    # here keeps that true on an edge whose Caddy is older.
    return "# What the auth server may say, never the visitor.\n" + "\n".join(
        f"request_header -{header}" for header in headers
    )


def _forward_auth(config: TunnelConfig, forward: ForwardAuth, runtime: CaddyRuntime) -> str:
    host = config.machine_host(forward.upstream)
    directives = [
        *_upstream(host, forward.port, runtime, address=False),
        f"uri {forward.path}",
        *(
            [
                "# Copied from a 2xx answer; the visitor's own values of these are dropped.\n"
                f"copy_headers {' '.join(forward.copy_headers)}"
            ]
            if forward.copy_headers
            else []
        ),
    ]
    return (
        f"# Forward auth: {host}:{forward.port}{forward.path} answers 2xx to let the\n"
        "# request on; any other answer (a redirect to its login, 401) goes to the visitor.\n"
        "forward_auth {\n" + _indent("\n".join(directives)) + "\n}"
    )


def _headscale(config: TunnelConfig, runtime: CaddyRuntime) -> str:
    return (
        "# Headscale (control server and embedded DERP relay) on this edge.\n"
        f"{config.headscale.domain} {{\n" + _indent(f"reverse_proxy {runtime.headscale}") + "\n}\n"
    )


def _catch_all_http() -> str:
    # Tailscale probes DERP servers for captive portals at http://<IPv4>/generate_204
    # and expects its challenge echoed back; anything else on port 80 that is not
    # an allowlisted name (those get Caddy's redirect to HTTPS) is dropped.
    return (
        "# Port 80, any other Host: answer Tailscale's captive-portal probe, drop the rest.\n"
        "http:// {\n"
        + _indent(
            "@probe {\n"
            + _indent(
                "path /generate_204\n"
                "header_regexp challenge X-Tailscale-Challenge ^[A-Za-z0-9._-]{1,64}$"
            )
            + "\n}\n"
            "handle @probe {\n"
            + _indent('header X-Tailscale-Response "response {re.challenge.0}"\nrespond 204')
            + "\n}\n"
            "handle /generate_204 {\n" + _indent("respond 204") + "\n}\n"
            "handle {\n" + _indent("abort") + "\n}"
        )
        + "\n}\n"
    )


def _catch_all_https() -> str:
    return (
        "# Port 443, any other name: no certificate, no content.\n"
        "https:// {\n" + _indent("abort") + "\n}\n"
    )


def _indent(text: str) -> str:
    return "\n".join(f"\t{line}" if line else line for line in text.splitlines())
