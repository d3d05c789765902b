"""Scenario 3: the visitor gets each site by name through the edge, and nothing else."""

from __future__ import annotations

from support.lab.addresses import RESERVED_IP, VISITOR
from support.lab.lab import Lab
from support.lab.probes import WebsocketSession, curl, probe


def test_each_site_serves_the_homelab_app_through_the_tailnet(lab: Lab) -> None:
    for site in lab.config.sites:
        done = curl(lab.visitor, f"https://{site.domain}/", "-w", "%{remote_ip}", roots=lab.roots)
        name = site.domain.split(".")[0]
        assert done.stdout == (
            f"{name} app on homelab port {site.port}; peer 100.64.0.1; host {site.domain}; "
            f"x-forwarded-for {VISITOR.address}\n{RESERVED_IP}"
        )


def test_a_websocket_stays_open_across_a_caddy_reload(lab: Lab) -> None:
    # The admin API logs each load; the old server itself stops only once its
    # connections (this websocket) close.
    reloads = lab.edge.box.log("caddy").count('"msg":"load complete"')
    with WebsocketSession(lab.visitor, "blog.lab.example", lab.roots, ["before", "after"]) as ws:
        assert ws.handshake == {"handshake": "HTTP/1.1 101 Switching Protocols"}
        assert ws.send() == {"sent": "before", "echo": "echo: before"}
        lab.edge.reload_caddy()
        assert lab.edge.box.log("caddy").count('"msg":"load complete"') == reloads + 1
        assert ws.send() == {"sent": "after", "echo": "echo: after"}


def test_an_unknown_name_gets_no_certificate(lab: Lab) -> None:
    for name in ("nope.lab.example", RESERVED_IP):
        seen = probe(lab.visitor, "tls", RESERVED_IP, name, lab.roots)
        assert seen["verified"] is False
        assert "TLSV1_ALERT_INTERNAL_ERROR" in seen["error"], seen


def test_an_unknown_host_is_refused(lab: Lab) -> None:
    # Caddy's catch-all `abort`: HTTP/2 gets its stream reset, HTTP/1.1 a closed connection.
    refusals = {
        "https://blog.lab.example/": (92, "HTTP/2 stream 1 was not closed cleanly: INTERNAL_ERROR"),
        "http://blog.lab.example/": (52, "Empty reply from server"),
    }
    for url, (code, message) in refusals.items():
        done = curl(lab.visitor, url, "-H", "Host: nope.lab.example", roots=lab.roots)
        assert (done.returncode, done.stdout) == (code, ""), done.stderr
        assert message in done.stderr


def test_http_redirects_to_https(lab: Lab) -> None:
    done = curl(
        lab.visitor,
        "http://photos.lab.example/some/path?q=1",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{redirect_url}",
    )
    assert done.stdout == "308 https://photos.lab.example/some/path?q=1"


def test_the_certificates_came_from_pebble_for_exactly_the_allowlisted_names(lab: Lab) -> None:
    assert sorted(lab.edge.certificates()) == sorted(lab.config.domains)
    assert lab.pebble.issued() == len(lab.config.domains)
    for domain in lab.config.domains:
        # Verified against Pebble's issuance root alone: no other CA could have signed it.
        seen = probe(lab.visitor, "tls", RESERVED_IP, domain, lab.pebble.issuance_root)
        assert seen["verified"] is True, seen
        assert seen["names"] == [domain]
        assert seen["issuer"].startswith("Pebble Intermediate CA")
