"""DNS records for every public name, pointing at the reserved addresses."""

from __future__ import annotations

from cdktf_cdktf_provider_digitalocean.data_digitalocean_domain import DataDigitaloceanDomain
from cdktf_cdktf_provider_digitalocean.domain import Domain
from cdktf_cdktf_provider_digitalocean.record import Record
from constructs import Construct

APEX = "@"


def record_labels(record_names: list[str]) -> dict[str, str]:
    """The logical-id label of each record name: unique, and unchanged for configs that worked.

    Dots become underscores ("blog.dev" -> "blog_dev") and the zone apex ("@")
    is "apex". Record names are DNS labels of a-z, 0-9 and '-' joined by dots,
    so underscores never occur in them and the mapping is one-to-one, except
    for a record literally named "apex" next to the zone apex: both map to
    "apex", which crashed synthesis. Each alone keeps "apex" (their addresses
    must not move); together, the apex keeps it and the literal name gets
    "apex_", which no record name can produce (none ends with a dot).
    """
    labels = {name: "apex" if name == APEX else name.replace(".", "_") for name in record_names}
    if APEX in labels and "apex" in labels:
        labels["apex"] = "apex_"
    return labels


class EdgeDns(Construct):
    """A (and AAAA) plus CAA records for each name, in a created or existing zone.

    The CAA record lets only the configured CA (Let's Encrypt unless
    tls.acme_ca says otherwise) issue for the name.

    An existing zone is read through a data source so a typo in the zone fails
    at plan time, not halfway through an apply.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        zone: str,
        create_zone: bool,
        ttl: int,
        caa_issuer: str,
        record_names: list[str],
        ipv4: str,
        ipv6: str | None,
    ) -> None:
        super().__init__(scope, id_)
        self.domain: Domain | None = None
        if create_zone:
            self.domain = Domain(self, "zone", name=zone)
            self.domain.override_logical_id("zone")
            zone_name = self.domain.name
        else:
            existing = DataDigitaloceanDomain(self, "zone", name=zone)
            existing.override_logical_id("zone")
            zone_name = existing.name

        self.records: list[Record] = []
        for name, label in record_labels(record_names).items():
            values: list[tuple[str, str]] = [("A", ipv4)]
            if ipv6 is not None:
                values.append(("AAAA", ipv6))
            for record_type, value in values:
                self._record(
                    f"{record_type.lower()}_{label}",
                    zone_name,
                    name,
                    ttl,
                    record_type=record_type,
                    value=value,
                )
            self._record(
                f"caa_{label}",
                zone_name,
                name,
                ttl,
                record_type="CAA",
                # DigitalOcean wants the trailing dot.
                value=f"{caa_issuer}.",
                flags=0,
                tag="issue",
            )

    def _record(
        self,
        logical_id: str,
        zone: str,
        name: str,
        ttl: int,
        *,
        record_type: str,
        value: str,
        flags: int | None = None,
        tag: str | None = None,
    ) -> None:
        record = Record(
            self,
            logical_id,
            domain=zone,
            name=name,
            ttl=ttl,
            type=record_type,
            value=value,
            flags=flags,
            tag=tag,
        )
        record.override_logical_id(logical_id)
        self.records.append(record)
